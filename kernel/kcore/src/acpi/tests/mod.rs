//! Host tests for the ACPI module: table headers and errors, finding tables
//! through the RSDT/XSDT, the MADT parser (directed cases), and a seeded
//! mutation fuzzer over both.
//!
//! Test tables are assembled byte by byte by the builders below, which set
//! the length and checksum fields the way firmware must, so each test can
//! break exactly one thing on purpose.

mod aml;
mod find;
mod fuzz;
mod header;
mod madt;
mod timers;

use std::cell::Cell;

use super::{AcpiError, PhysMemory, SdtHeader};

/// Processor entry flag bit 0.
const ENABLED: u32 = 1;
/// Processor entry flag bit 1 (MADT revision 5 and later).
const ONLINE_CAPABLE: u32 = 2;
/// The usual local APIC address, as in the MADT's fixed part.
const LAPIC_BASE: u32 = 0xFEE0_0000;

/// Sets the checksum byte so that the first `length` bytes of `table` (the
/// whole table if its length field says so) sum to zero.
fn fix_checksum(table: &mut [u8]) {
    let length = declared_len(table).min(table.len());
    table[9] = 0;
    let sum = table[..length].iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    table[9] = 0u8.wrapping_sub(sum);
}

/// The table's length field.
fn declared_len(table: &[u8]) -> usize {
    u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize
}

/// Overwrites the table's length field (and nothing else).
fn set_len(table: &mut [u8], length: u32) {
    table[4..8].copy_from_slice(&length.to_le_bytes());
}

/// A complete table: a header with recognisable OEM fields, then `body`,
/// with the length and checksum right.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut table = Vec::with_capacity(SdtHeader::SIZE + body.len());
    table.extend_from_slice(signature);
    table.extend_from_slice(&((SdtHeader::SIZE + body.len()) as u32).to_le_bytes());
    table.extend_from_slice(&[revision, 0]);
    table.extend_from_slice(b"FERRIT");
    table.extend_from_slice(b"TESTTABL");
    table.extend_from_slice(&0x0102_0304u32.to_le_bytes());
    table.extend_from_slice(b"FRTC");
    table.extend_from_slice(&7u32.to_le_bytes());
    table.extend_from_slice(body);
    fix_checksum(&mut table);
    table
}

/// An RSDT listing these table addresses.
fn rsdt(entries: &[u32]) -> Vec<u8> {
    sdt(b"RSDT", 1, &entries.iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<_>>())
}

/// An XSDT listing these table addresses.
fn xsdt(entries: &[u64]) -> Vec<u8> {
    sdt(b"XSDT", 1, &entries.iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<_>>())
}

/// Assembles an MADT entry by entry.
#[derive(Clone)]
struct MadtBuilder {
    revision: u8,
    local_apic_address: u32,
    flags: u32,
    entries: Vec<u8>,
}

impl MadtBuilder {
    /// An MADT of this revision with no entries, the usual local APIC
    /// address and the PCAT_COMPAT flag.
    fn new(revision: u8) -> Self {
        Self { revision, local_apic_address: LAPIC_BASE, flags: 1, entries: Vec::new() }
    }

    /// An entry of any type; the length byte is computed from `payload`.
    fn entry(mut self, entry_type: u8, payload: &[u8]) -> Self {
        self.entries.extend_from_slice(&[entry_type, (payload.len() + 2) as u8]);
        self.entries.extend_from_slice(payload);
        self
    }

    /// Raw bytes, for malformed entries.
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.entries.extend_from_slice(bytes);
        self
    }

    /// Type 0: Processor Local APIC.
    fn lapic(self, uid: u8, apic_id: u8, flags: u32) -> Self {
        let mut payload = vec![uid, apic_id];
        payload.extend_from_slice(&flags.to_le_bytes());
        self.entry(0, &payload)
    }

    /// Type 9: Processor Local x2APIC.
    fn x2apic(self, apic_id: u32, uid: u32, flags: u32) -> Self {
        let mut payload = vec![0, 0];
        for field in [apic_id, flags, uid] {
            payload.extend_from_slice(&field.to_le_bytes());
        }
        self.entry(9, &payload)
    }

    /// Type 1: I/O APIC.
    fn io_apic(self, id: u8, address: u32, gsi_base: u32) -> Self {
        let mut payload = vec![id, 0];
        payload.extend_from_slice(&address.to_le_bytes());
        payload.extend_from_slice(&gsi_base.to_le_bytes());
        self.entry(1, &payload)
    }

    /// Type 2: Interrupt Source Override (ISA bus).
    fn source_override(self, irq: u8, gsi: u32, flags: u16) -> Self {
        let mut payload = vec![0, irq];
        payload.extend_from_slice(&gsi.to_le_bytes());
        payload.extend_from_slice(&flags.to_le_bytes());
        self.entry(2, &payload)
    }

    /// Type 4: Local APIC NMI.
    fn lapic_nmi(self, uid: u8, flags: u16, lint: u8) -> Self {
        let [f0, f1] = flags.to_le_bytes();
        self.entry(4, &[uid, f0, f1, lint])
    }

    /// Type 0Ah: Local x2APIC NMI.
    fn x2apic_nmi(self, flags: u16, uid: u32, lint: u8) -> Self {
        let mut payload = flags.to_le_bytes().to_vec();
        payload.extend_from_slice(&uid.to_le_bytes());
        payload.extend_from_slice(&[lint, 0, 0, 0]);
        self.entry(0xa, &payload)
    }

    /// Type 5: Local APIC Address Override.
    fn lapic_address(self, address: u64) -> Self {
        let mut payload = vec![0, 0];
        payload.extend_from_slice(&address.to_le_bytes());
        self.entry(5, &payload)
    }

    /// The finished table, length and checksum right.
    fn build(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.local_apic_address.to_le_bytes());
        body.extend_from_slice(&self.flags.to_le_bytes());
        body.extend_from_slice(&self.entries);
        sdt(b"APIC", self.revision, &body)
    }
}

/// What QEMU's MADT for `-smp 4` looks like: four enabled type 0 CPUs
/// with APIC IDs and UIDs 0 to 3, one I/O APIC, the five ISA interrupt
/// source overrides and a local APIC NMI entry for all processors.
fn qemu_like(cpus: u8) -> MadtBuilder {
    let mut madt = MadtBuilder::new(3);
    for i in 0..cpus {
        madt = madt.lapic(i, i, ENABLED);
    }
    madt.io_apic(0, 0xFEC0_0000, 0)
        .source_override(0, 2, 0)
        .source_override(5, 5, 0xD)
        .source_override(9, 9, 0xD)
        .source_override(10, 10, 0xD)
        .source_override(11, 11, 0xD)
        .lapic_nmi(0xFF, 0, 1)
}

/// Physical memory for tests: a few blobs at chosen addresses; everything
/// else is unmapped. A read must lie wholly inside one blob.
#[derive(Default)]
struct FakeMemory {
    blobs: Vec<(u64, Vec<u8>)>,
    /// The largest single read so far, to check reads are chunked.
    largest_read: Cell<usize>,
    /// Number of reads so far.
    reads: Cell<usize>,
}

impl FakeMemory {
    fn new() -> Self {
        Self::default()
    }

    /// Maps `bytes` at `phys`.
    fn with(mut self, phys: u64, bytes: Vec<u8>) -> Self {
        self.blobs.push((phys, bytes));
        self
    }
}

impl PhysMemory for FakeMemory {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        self.largest_read.set(self.largest_read.get().max(buf.len()));
        self.reads.set(self.reads.get() + 1);
        for (base, bytes) in &self.blobs {
            let Some(start) = phys.checked_sub(*base) else { continue };
            let Some(src) = usize::try_from(start).ok().and_then(|s| bytes.get(s..s.checked_add(buf.len())?)) else {
                continue;
            };
            buf.copy_from_slice(src);
            return Ok(());
        }
        Err(AcpiError::Unreadable(phys))
    }
}
