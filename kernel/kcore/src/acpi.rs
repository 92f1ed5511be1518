//! ACPI: finding a system description table, parsing the MADT, and reading
//! a sleep state from the DSDT.
//!
//! References are to the ACPI 6.5 specification, sections 5.2.5 to 5.2.12.
//!
//! The kernel gets the RSDP from the bootloader (multiboot2 has already
//! checked its checksum) and hands over the address of the root table it
//! points to, as a [`RootTable`]: the XSDT (64-bit entries, ACPI 2.0+) or
//! the RSDT (32-bit entries, ACPI 1.0). [`find_table`] walks the root table
//! and returns where a table with a given signature lives; the kernel then
//! reads those bytes and hands them to a parser such as [`parse_madt`].
//!
//! Firmware tables are input from outside the kernel and are treated like
//! any other untrusted input:
//!
//! - Memory is reached only through [`PhysMemory`], which the kernel
//!   implements over its direct map and which may refuse (unmapped memory is
//!   an error, not a fault). The host tests implement it over a `Vec`.
//! - Every length is checked before it is used: a table must hold at least
//!   its header and at most [`MAX_TABLE_LEN`] bytes, and a table is used only
//!   if its checksum is right. Checksums are computed in fixed-size chunks
//!   over a small stack buffer, so a lying length costs reads, never memory.
//! - Nothing panics, loops forever or indexes out of bounds on any input;
//!   the MADT walker is fuzzed to keep it that way (see the tests and
//!   `kernel/kcore/fuzz`).

mod aml;
mod madt;
mod timers;

#[cfg(test)]
mod tests;

use core::fmt;

pub use aml::{sleep_type, SleepType};
pub use madt::{
    parse_madt, CpuEntry, CpuList, CpuSource, IoApic, IsaRoute, LocalNmi, Madt, ISA_IRQS, MADT_FIXED_LEN, MAX_IO_APICS,
    MAX_NMI_ENTRIES,
};
pub use timers::{
    parse_fadt, parse_hpet, parse_spcr, Fadt, GenericAddress, PmTimer, PmTimerBlock, ResetRegister, PM_TIMER_HZ,
};

/// The signature of the MADT ("Multiple APIC Description Table").
pub const MADT_SIGNATURE: [u8; 4] = *b"APIC";

/// The largest table [`find_table`] accepts, in bytes. Real tables are far
/// smaller (an MADT listing 4096 x2APIC CPUs is about 64 KiB); a bigger
/// length is taken to be garbage rather than checksummed byte by byte.
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// Bytes read at a time when checksumming a table in memory.
const CHUNK: usize = 256;

/// The root of the table tree, as the RSDP names it: its kind and physical
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTable {
    /// The RSDT at this address (ACPI 1.0; 32-bit table addresses).
    Rsdt(u64),
    /// The XSDT at this address (ACPI 2.0+; 64-bit table addresses).
    Xsdt(u64),
}

impl RootTable {
    /// The root table's physical address.
    pub const fn address(self) -> u64 {
        match self {
            Self::Rsdt(phys) | Self::Xsdt(phys) => phys,
        }
    }

    /// The signature the root table must carry: `RSDT` or `XSDT`.
    pub const fn signature(self) -> [u8; 4] {
        match self {
            Self::Rsdt(_) => *b"RSDT",
            Self::Xsdt(_) => *b"XSDT",
        }
    }

    /// Size in bytes of one entry (a table address) in the root table.
    const fn entry_size(self) -> usize {
        match self {
            Self::Rsdt(_) => 4,
            Self::Xsdt(_) => 8,
        }
    }
}

/// Read access to physical memory, as the ACPI code needs it.
pub trait PhysMemory {
    /// Fills all of `buf` with the bytes at `phys..phys + buf.len()`, or
    /// fails, normally with [`AcpiError::Unreadable`] naming an address that
    /// cannot be read. A partial read must be an error. [`find_table`] never
    /// asks for more than a few hundred bytes at once.
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError>;
}

/// The header every system description table starts with (ACPI 6.5,
/// 5.2.6), decoded from its 36 little-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdtHeader {
    /// Which table this is, e.g. `APIC` for the MADT.
    pub signature: [u8; 4],
    /// Length of the whole table in bytes, this header included.
    pub length: u32,
    /// Revision of the table's layout (its meaning depends on the table).
    pub revision: u8,
    /// Makes all `length` bytes of the table sum to zero (mod 256).
    pub checksum: u8,
    /// Who made the firmware.
    pub oem_id: [u8; 6],
    /// The manufacturer's name for this table.
    pub oem_table_id: [u8; 8],
    /// The manufacturer's revision of this table.
    pub oem_revision: u32,
    /// Vendor ID of the tool that built the table.
    pub creator_id: u32,
    /// Revision of that tool.
    pub creator_revision: u32,
}

impl SdtHeader {
    /// Size of the header in bytes.
    pub const SIZE: usize = 36;

    /// Decodes the header from the first [`SIZE`](Self::SIZE) bytes of
    /// `bytes` (more may follow and are ignored). Checks nothing but the
    /// size: signature, length and checksum are the caller's to judge.
    pub fn parse(bytes: &[u8]) -> Result<Self, AcpiError> {
        let Some(bytes) = bytes.first_chunk::<{ Self::SIZE }>() else {
            return Err(AcpiError::Truncated { what: "table header", need: Self::SIZE, have: bytes.len() });
        };
        Ok(Self {
            signature: array_at(bytes, 0),
            length: u32_at(bytes, 4),
            revision: bytes[8],
            checksum: bytes[9],
            oem_id: array_at(bytes, 10),
            oem_table_id: array_at(bytes, 16),
            oem_revision: u32_at(bytes, 24),
            creator_id: u32_at(bytes, 28),
            creator_revision: u32_at(bytes, 32),
        })
    }
}

/// Why a table could not be found or parsed. The [`Display`](fmt::Display)
/// text is meant for the kernel log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// Physical memory at this address could not be read (not mapped).
    Unreadable(u64),
    /// A byte slice is shorter than what it must hold.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// A table does not carry the signature it must.
    BadSignature {
        /// The signature wanted.
        expected: [u8; 4],
        /// The signature there.
        found: [u8; 4],
    },
    /// A table's bytes do not sum to zero.
    BadChecksum {
        /// The table's signature.
        signature: [u8; 4],
        /// Its physical address; 0 when it was handed over as bytes (as to
        /// [`parse_madt`]) and the address is not known. No table lives at
        /// 0: a null root-table entry is skipped.
        phys: u64,
    },
    /// A table's length field is impossible: shorter than its fixed part,
    /// or longer than [`MAX_TABLE_LEN`].
    BadLength {
        /// The table's signature.
        signature: [u8; 4],
        /// The length it claims.
        length: u32,
    },
    /// No valid table with this signature is listed in the root table.
    NotFound([u8; 4]),
    /// An MADT entry is malformed: shorter than 2 bytes or than its type
    /// needs, or running past the end of the table.
    BadEntry {
        /// Offset of the entry from the start of the table.
        offset: usize,
        /// The entry's type byte.
        entry_type: u8,
        /// The entry's length byte (0 if the table ends before it).
        length: u8,
    },
    /// A table names a register the kernel cannot use: in an address space
    /// it does not support, at address 0, or misaligned.
    BadRegister {
        /// The table's signature.
        table: [u8; 4],
        /// The register's address space (0 memory, 1 I/O, ...).
        space: u8,
        /// The register's address.
        address: u64,
    },
    /// The DSDT's AML is malformed, or uses what the sleep-state reader
    /// does not follow, at this offset from the start of the table.
    BadAml {
        /// Offset from the start of the DSDT, header included.
        offset: usize,
        /// What is wrong there.
        why: &'static str,
    },
    /// The DSDT defines no package for this sleep state (`\_S5` for 5).
    NoSleepState(u8),
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unreadable(phys) => write!(f, "physical memory at {phys:#x} is not readable"),
            Self::Truncated { what, need, have } => write!(f, "{what} truncated: need {need} bytes, have {have}"),
            Self::BadSignature { expected, found } => {
                write!(f, "expected a '{}' table, found '{}'", Sig(&expected), Sig(&found))
            }
            Self::BadChecksum { signature, phys: 0 } => write!(f, "'{}' table has a bad checksum", Sig(&signature)),
            Self::BadChecksum { signature, phys } => {
                write!(f, "'{}' table at {phys:#x} has a bad checksum", Sig(&signature))
            }
            Self::BadLength { signature, length } => {
                write!(f, "'{}' table claims an impossible length of {length} bytes", Sig(&signature))
            }
            Self::NotFound(signature) => write!(f, "no valid '{}' table in the root table", Sig(&signature)),
            Self::BadEntry { offset, entry_type, length } => {
                write!(f, "bad MADT entry at offset {offset}: type {entry_type}, length {length}")
            }
            Self::BadRegister { table, space, address } => {
                write!(f, "'{}' table names an unusable register: space {space}, address {address:#x}", Sig(&table))
            }
            Self::BadAml { offset, why } => write!(f, "DSDT at offset {offset:#x}: {why}"),
            Self::NoSleepState(state) => write!(f, "the DSDT defines no \\_S{state} package"),
        }
    }
}

/// Shows a table signature as text, escaping bytes that are not printable
/// ASCII (`\xNN`), since garbage signatures are exactly what errors show.
struct Sig<'a>(&'a [u8; 4]);

impl fmt::Display for Sig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            if byte.is_ascii_graphic() || byte == b' ' {
                write!(f, "{}", char::from(byte))?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// True if `bytes` sum to zero modulo 256, as every ACPI table's bytes must.
pub fn checksum_ok(bytes: &[u8]) -> bool {
    sum(0, bytes) == 0
}

fn sum(start: u8, bytes: &[u8]) -> u8 {
    bytes.iter().fold(start, |acc, &b| acc.wrapping_add(b))
}

/// Finds the table with `signature` through the root table and returns its
/// physical address and length.
///
/// The root table must carry the signature its kind calls for, a length
/// between the header size and [`MAX_TABLE_LEN`], and a valid checksum; any
/// failure there is returned as is. Its entries are then tried in order:
///
/// - null entries (address 0) are skipped, and so are entries whose header
///   cannot be read or whose signature is another one; such tables are not
///   checked any further (a broken table the kernel does not use is no
///   reason to fail);
/// - the first matching table with a sane length and a valid checksum is
///   the answer;
/// - if matching tables exist but none is valid, the error of the first
///   invalid one ([`AcpiError::BadLength`], [`AcpiError::BadChecksum`] or
///   [`AcpiError::Unreadable`]) is returned rather than a bare
///   [`AcpiError::NotFound`], because it says what is wrong with the
///   machine.
///
/// Trailing bytes in the root table that make up no whole entry are
/// ignored. No address arithmetic can overflow: an address past the end of
/// the 64-bit space is reported as unreadable.
pub fn find_table(mem: &impl PhysMemory, root: RootTable, signature: &[u8; 4]) -> Result<(u64, u32), AcpiError> {
    let root_phys = root.address();
    let header = read_header(mem, root_phys)?;
    if header.signature != root.signature() {
        return Err(AcpiError::BadSignature { expected: root.signature(), found: header.signature });
    }
    validate(mem, root_phys, &header)?;

    let entry_size = root.entry_size();
    let entries = (header.length as usize - SdtHeader::SIZE) / entry_size;
    let mut first_error = None;
    for i in 0..entries {
        let mut entry = [0u8; 8];
        read_at(mem, root_phys, (SdtHeader::SIZE + i * entry_size) as u64, &mut entry[..entry_size])?;
        let phys = u64::from_le_bytes(entry);
        if phys == 0 {
            continue;
        }
        let Ok(table) = read_header(mem, phys) else { continue };
        if table.signature != *signature {
            continue;
        }
        match validate(mem, phys, &table) {
            Ok(()) => return Ok((phys, table.length)),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(AcpiError::NotFound(*signature)))
}

/// Reads and decodes the header of the table at `phys`.
fn read_header(mem: &impl PhysMemory, phys: u64) -> Result<SdtHeader, AcpiError> {
    let mut bytes = [0u8; SdtHeader::SIZE];
    read_at(mem, phys, 0, &mut bytes)?;
    SdtHeader::parse(&bytes)
}

/// Checks the length and the checksum of the table at `phys`, whose header
/// is `header`, reading it [`CHUNK`] bytes at a time.
fn validate(mem: &impl PhysMemory, phys: u64, header: &SdtHeader) -> Result<(), AcpiError> {
    let length = header.length;
    if (length as usize) < SdtHeader::SIZE || length > MAX_TABLE_LEN {
        return Err(AcpiError::BadLength { signature: header.signature, length });
    }
    let mut buf = [0u8; CHUNK];
    let mut total = 0u8;
    let mut done = 0usize;
    while done < length as usize {
        let chunk = &mut buf[..CHUNK.min(length as usize - done)];
        read_at(mem, phys, done as u64, chunk)?;
        total = sum(total, chunk);
        done += chunk.len();
    }
    if total != 0 {
        return Err(AcpiError::BadChecksum { signature: header.signature, phys });
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `base + offset`, refusing ranges that would
/// wrap around the end of the address space.
fn read_at(mem: &impl PhysMemory, base: u64, offset: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
    let phys = base.checked_add(offset).ok_or(AcpiError::Unreadable(base))?;
    phys.checked_add(buf.len() as u64).ok_or(AcpiError::Unreadable(phys))?;
    mem.read(phys, buf)
}

/// The little-endian `u32` at `offset`; the caller has checked the length.
fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, offset))
}

/// The little-endian `u64` at `offset`; the caller has checked the length.
fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(array_at(bytes, offset))
}

/// The `L` bytes at `offset`; the caller has checked the length.
fn array_at<const L: usize>(bytes: &[u8], offset: usize) -> [u8; L] {
    let mut out = [0u8; L];
    out.copy_from_slice(&bytes[offset..offset + L]);
    out
}
