//! The MADT (Multiple APIC Description Table, ACPI 6.5 section 5.2.12):
//! which CPUs exist, by local APIC ID.
//!
//! After the 36-byte header come the local APIC address (u32) and flags
//! (u32), then a list of variable-length entries, each starting with a type
//! byte and a length byte. The ones that matter here:
//!
//! | type | entry                       | used for                      |
//! |------|-----------------------------|-------------------------------|
//! | 0    | Processor Local APIC        | a CPU with an 8-bit APIC ID   |
//! | 1    | I/O APIC                    | where each I/O APIC is        |
//! | 2    | Interrupt Source Override   | how an ISA IRQ reaches it     |
//! | 4    | Local APIC NMI              | which LINT pin carries NMI    |
//! | 5    | Local APIC Address Override | the 64-bit local APIC address |
//! | 9    | Processor Local x2APIC      | a CPU with a 32-bit APIC ID   |
//! | 0Ah  | Local x2APIC NMI            | the same, 32-bit processor UID |
//!
//! Everything else is skipped by its length. Points that other parsers get
//! wrong, and that the tests pin down:
//!
//! - **x2APIC entries are CPUs too.** Firmware lists CPUs whose APIC ID does
//!   not fit 8 bits (and sometimes all CPUs) as type 9 only; a parser that
//!   reads just type 0 finds no CPU at all on such a machine.
//! - **Not every entry is a CPU that can run.** Flag bit 0 is Enabled; bit 1
//!   is Online Capable (hot-pluggable later), defined only from MADT
//!   revision 5 (ACPI 6.3) and ignored before. An entry with neither is not
//!   usable: QEMU lists its `maxcpus` beyond `cpus` that way. Online-capable
//!   CPUs are kept (with `enabled: false`) so the kernel can decide.
//! - **APIC IDs are not dense and not unique in practice.** IDs have gaps
//!   (topology rounding: 0, 1, 2, 4, 5, 6, ...), so a CPU's index in the
//!   list, not its ID, is what to size per-CPU arrays by; and the same ID
//!   can appear twice (as type 0 and again as type 9), so duplicates are
//!   dropped, the first one winning.
//! - **IDs 0xFF (type 0) and 0xFFFF_FFFF (type 9) are invalid**, never CPUs.
//!
//! The result has a fixed capacity, chosen by the kernel, and records what
//! it left out, so the log can say so.

use core::fmt;

use super::{checksum_ok, u32_at, u64_at, AcpiError, SdtHeader, MADT_SIGNATURE};

/// Size of the MADT's fixed part: the header, the local APIC address and
/// the flags. Entries start at this offset.
pub const MADT_FIXED_LEN: usize = SdtHeader::SIZE + 8;

/// Flag bit 0 of a processor entry: the CPU is usable now.
const ENABLED: u32 = 1 << 0;
/// Flag bit 1 of a processor entry: the CPU can be brought online later.
const ONLINE_CAPABLE: u32 = 1 << 1;
/// The first MADT revision (ACPI 6.3) that defines [`ONLINE_CAPABLE`].
const ONLINE_CAPABLE_REVISION: u8 = 5;

/// Which kind of MADT entry described a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuSource {
    /// Processor Local APIC entry (type 0): an 8-bit APIC ID.
    LocalApic,
    /// Processor Local x2APIC entry (type 9): a 32-bit APIC ID.
    LocalX2Apic,
}

impl CpuSource {
    /// The APIC ID that marks an entry of this kind as invalid.
    const fn invalid_id(self) -> u32 {
        match self {
            Self::LocalApic => 0xFF,
            Self::LocalX2Apic => u32::MAX,
        }
    }
}

/// One usable CPU from the MADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuEntry {
    /// Its local APIC ID: what INIT/SIPI are addressed to.
    pub apic_id: u32,
    /// Its ACPI processor UID (the 8-bit processor ID for a type 0 entry),
    /// which ties it to the processor objects in the DSDT.
    pub acpi_uid: u32,
    /// Which kind of entry described it.
    pub source: CpuSource,
    /// True if it is usable now; false if it is only Online Capable.
    pub enabled: bool,
}

impl CpuEntry {
    /// Filler for the unused slots of a [`CpuList`].
    const EMPTY: Self = Self { apic_id: 0, acpi_uid: 0, source: CpuSource::LocalApic, enabled: false };
}

/// The usable CPUs of an MADT, in table order, unique by APIC ID, at most
/// `N` of them, plus counts of the entries left out and why. Each processor
/// entry in the table lands in exactly one place, checked in this order:
/// [`disabled`](Self::disabled), [`invalid_ids`](Self::invalid_ids),
/// [`duplicates`](Self::duplicates),
/// [`beyond_capacity`](Self::beyond_capacity), or the list.
///
/// Firmware conventionally lists the boot CPU first, but nothing here
/// relies on that: the kernel should look up its own APIC ID with
/// [`index_of`](Self::index_of).
#[derive(Clone, PartialEq, Eq)]
pub struct CpuList<const N: usize> {
    entries: [CpuEntry; N],
    len: usize,
    /// Entries whose APIC ID was already in the list (the first one wins).
    /// Once the list is full a duplicate can no longer be told apart from a
    /// new CPU and is counted in [`beyond_capacity`](Self::beyond_capacity).
    pub duplicates: u32,
    /// Entries that are neither Enabled nor (from MADT revision 5) Online
    /// Capable: CPUs that are not there, like QEMU's `maxcpus` beyond `cpus`.
    pub disabled: u32,
    /// Usable entries with an invalid APIC ID (0xFF for type 0, 0xFFFF_FFFF
    /// for type 9).
    pub invalid_ids: u32,
    /// Usable CPUs that did not fit in the `N` slots.
    pub beyond_capacity: u32,
}

impl<const N: usize> CpuList<N> {
    /// An empty list with all counters at zero.
    pub const fn new() -> Self {
        Self { entries: [CpuEntry::EMPTY; N], len: 0, duplicates: 0, disabled: 0, invalid_ids: 0, beyond_capacity: 0 }
    }

    /// Number of CPUs in the list (at most `N`).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True if the list holds no CPU.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The CPUs, in table order.
    pub fn as_slice(&self) -> &[CpuEntry] {
        &self.entries[..self.len]
    }

    /// Iterates over the CPUs, in table order.
    pub fn iter(&self) -> core::slice::Iter<'_, CpuEntry> {
        self.as_slice().iter()
    }

    /// True if a CPU with this APIC ID is in the list.
    pub fn contains(&self, apic_id: u32) -> bool {
        self.index_of(apic_id).is_some()
    }

    /// The position in the list of the CPU with this APIC ID: a dense CPU
    /// number, unlike the APIC ID itself.
    pub fn index_of(&self, apic_id: u32) -> Option<usize> {
        self.iter().position(|cpu| cpu.apic_id == apic_id)
    }

    /// Files one processor entry: in the list or under one of the counters.
    fn add(&mut self, apic_id: u32, acpi_uid: u32, source: CpuSource, flags: u32, online_capable_defined: bool) {
        let enabled = flags & ENABLED != 0;
        let online_capable = online_capable_defined && flags & ONLINE_CAPABLE != 0;
        let counter = if !enabled && !online_capable {
            &mut self.disabled
        } else if apic_id == source.invalid_id() {
            &mut self.invalid_ids
        } else if self.contains(apic_id) {
            &mut self.duplicates
        } else if let Some(slot) = self.entries.get_mut(self.len) {
            *slot = CpuEntry { apic_id, acpi_uid, source, enabled };
            self.len += 1;
            return;
        } else {
            &mut self.beyond_capacity
        };
        *counter = counter.saturating_add(1);
    }
}

impl<const N: usize> Default for CpuList<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for CpuList<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuList")
            .field("cpus", &self.as_slice())
            .field("duplicates", &self.duplicates)
            .field("disabled", &self.disabled)
            .field("invalid_ids", &self.invalid_ids)
            .field("beyond_capacity", &self.beyond_capacity)
            .finish()
    }
}

impl<'a, const N: usize> IntoIterator for &'a CpuList<N> {
    type Item = &'a CpuEntry;
    type IntoIter = core::slice::Iter<'a, CpuEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The most Local APIC NMI entries kept (real tables have one for all
/// processors, or one per processor on old firmware; more are dropped).
pub const MAX_NMI_ENTRIES: usize = 16;

/// A Local APIC NMI entry: NMI arrives on `lint` (0 or 1) of the CPUs with
/// ACPI processor UID `uid` (`None`: every CPU), with the MPS INTI `flags`
/// (bits 0-1 polarity: 3 is active low; bits 2-3 trigger mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalNmi {
    /// The processor it is for, or every one.
    pub uid: Option<u32>,
    /// The pin: LINT0 or LINT1.
    pub lint: u8,
    /// MPS INTI flags.
    pub flags: u16,
}

impl LocalNmi {
    const EMPTY: Self = Self { uid: None, lint: 0, flags: 0 };

    /// Whether it is for the CPU with ACPI processor UID `uid`.
    pub fn applies_to(&self, uid: u32) -> bool {
        self.uid.is_none_or(|u| u == uid)
    }

    /// The pin is active low (polarity bits 11b); else active high (the
    /// bus default, 00b, is active high for ISA-style NMI).
    pub const fn active_low(&self) -> bool {
        self.flags & 3 == 3
    }

    /// The NMIs the kernel should program on the CPU with `uid`.
    pub fn for_cpu<const N: usize>(madt: &Madt<N>, uid: u32) -> impl Iterator<Item = &LocalNmi> {
        madt.nmis[..madt.nmi_count].iter().filter(move |n| n.applies_to(uid))
    }
}

/// At most this many I/O APICs are kept (a PC has one or two; the rest
/// are counted in [`Madt::io_apics`] and reported).
pub const MAX_IO_APICS: usize = 8;
/// The ISA interrupt lines, IRQ 0-15.
pub const ISA_IRQS: usize = 16;

/// An I/O APIC (type 1 entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// Its I/O APIC ID.
    pub id: u8,
    /// The physical address of its registers.
    pub address: u32,
    /// The global system interrupt of its first input.
    pub gsi_base: u32,
}

impl IoApic {
    const EMPTY: IoApic = IoApic { id: 0, address: 0, gsi_base: 0 };
}

/// Where an ISA IRQ arrives, and how it signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaRoute {
    /// The global system interrupt (I/O APIC input) it is wired to.
    pub gsi: u32,
    /// Active low (else high).
    pub active_low: bool,
    /// Level triggered (else edge).
    pub level: bool,
}

impl IsaRoute {
    /// From an override's MPS INTI flags: polarity in bits 0-1 and trigger
    /// mode in bits 2-3, each 00 meaning the bus's own (ISA: active high,
    /// edge), 01 high or edge, 11 low or level; 10 is reserved and taken
    /// as the bus's.
    pub const fn from_flags(gsi: u32, flags: u16) -> IsaRoute {
        IsaRoute { gsi, active_low: flags & 3 == 3, level: (flags >> 2) & 3 == 3 }
    }
}

/// What the kernel needs from the MADT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Madt<const N: usize> {
    /// Physical address of the local APIC registers: the 32-bit value from
    /// the fixed part, unless a type 5 entry overrides it (the last one
    /// wins).
    pub local_apic_address: u64,
    /// MADT flags; bit 0 (PCAT_COMPAT) means the machine also has dual 8259
    /// PICs, which must be masked.
    pub flags: u32,
    /// The usable CPUs.
    pub cpus: CpuList<N>,
    /// Number of I/O APIC entries (type 1), kept or not.
    pub io_apics: u32,
    /// The first [`MAX_IO_APICS`] of them (`io_apic_count` filled).
    pub io_apic_list: [IoApic; MAX_IO_APICS],
    /// How many of `io_apic_list` are filled.
    pub io_apic_count: usize,
    /// Interrupt source overrides (type 2), by ISA IRQ: where the IRQ is
    /// wired if not to the GSI of its own number (the last entry for an
    /// IRQ wins).
    pub isa_overrides: [Option<IsaRoute>; ISA_IRQS],
    /// Local APIC NMI entries (types 4 and 0Ah), at most [`MAX_NMI_ENTRIES`]
    /// of them (`nmi_count`): which LINT pin of which CPU the machine's NMI
    /// (button, watchdog) is wired to.
    pub nmis: [LocalNmi; MAX_NMI_ENTRIES],
    /// How many of `nmis` are filled.
    pub nmi_count: usize,
    /// Malformed entries skipped (or where the walk had to stop).
    pub malformed: u32,
    /// The first of them, as an [`AcpiError::BadEntry`], for the log.
    pub first_malformed: Option<AcpiError>,
}

impl<const N: usize> Madt<N> {
    /// Keeps an NMI entry; one naming a pin other than LINT0/1 is malformed.
    fn add_nmi(&mut self, nmi: LocalNmi, offset: usize, entry_type: u8, length: u8) {
        if nmi.lint > 1 {
            self.note_malformed(AcpiError::BadEntry { offset, entry_type, length });
        } else if let Some(slot) = self.nmis.get_mut(self.nmi_count) {
            *slot = nmi;
            self.nmi_count += 1;
        }
    }

    fn note_malformed(&mut self, error: AcpiError) {
        self.malformed = self.malformed.saturating_add(1);
        self.first_malformed.get_or_insert(error);
    }

    /// The I/O APICs kept.
    pub fn io_apics(&self) -> &[IoApic] {
        &self.io_apic_list[..self.io_apic_count]
    }

    /// Where ISA IRQ `irq` (0-15) arrives: its override, else the GSI of
    /// its own number, edge triggered and active high (the ISA bus's way).
    ///
    /// None if that GSI is another ISA IRQ's: an IRQ without an override
    /// whose own number another IRQ's override targets (IRQ 2 on almost
    /// every PC, whose IRQ 0 arrives on GSI 2: IRQ 2 was the PICs'
    /// cascade and has no line), or, of two overrides onto one GSI, the
    /// higher IRQ's. So no two ISA IRQs ever share an input, as Linux
    /// (mp_config_acpi_legacy_irqs) arranges it too.
    pub fn isa_route(&self, irq: u8) -> Option<IsaRoute> {
        let own = self.isa_overrides.get(usize::from(irq)).copied().flatten();
        let route = own.unwrap_or(IsaRoute { gsi: u32::from(irq), active_low: false, level: false });
        let taken = self.isa_overrides.iter().enumerate().any(|(other, o)| {
            other != usize::from(irq)
                && o.is_some_and(|o| o.gsi == route.gsi)
                && (own.is_none() || other < usize::from(irq))
        });
        (!taken).then_some(route)
    }

    /// True if flag bit 0 (PCAT_COMPAT) is set: the machine also has the
    /// legacy dual 8259 PICs, which must be masked before using the APICs.
    pub const fn has_dual_8259(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// Parses an MADT given as bytes (at least its `length` field's worth;
/// anything after that is ignored), keeping at most `N` CPUs.
///
/// Checks, in order: the header fits, the signature is `APIC`, the length
/// covers the fixed part ([`MADT_FIXED_LEN`]) and fits in `table`, and the
/// checksum. Then walks the entries. A malformed entry does not cost the
/// table (a machine whose firmware got one entry wrong still has its other
/// CPUs): one shorter than its type needs (8 bytes for type 0, 12 for types
/// 1 and 5, 10 for type 2, 16 for type 9) is skipped by its length, as is
/// an override of a bus other than ISA or an IRQ past 15; one shorter than 2 bytes or
/// running past the end of the table ends the walk, since the next entry
/// can no longer be found. Either is counted in `malformed`, the first
/// kept as an [`AcpiError::BadEntry`] for the log.
///
/// Which entries become CPUs: type 0 (xAPIC) and type 9 (x2APIC) entries
/// alike, if Enabled, or Online Capable in an MADT of revision 5 or later;
/// not those with the invalid ID of their kind (0xFF, 0xFFFF_FFFF); and
/// only the first entry for each APIC ID. [`CpuList`] counts the others.
pub fn parse_madt<const N: usize>(table: &[u8]) -> Result<Madt<N>, AcpiError> {
    let header = SdtHeader::parse(table)?;
    if header.signature != MADT_SIGNATURE {
        return Err(AcpiError::BadSignature { expected: MADT_SIGNATURE, found: header.signature });
    }
    let length = header.length as usize;
    if length < MADT_FIXED_LEN {
        return Err(AcpiError::BadLength { signature: header.signature, length: header.length });
    }
    let Some(table) = table.get(..length) else {
        return Err(AcpiError::Truncated { what: "MADT", need: length, have: table.len() });
    };
    if !checksum_ok(table) {
        return Err(AcpiError::BadChecksum { signature: header.signature, phys: 0 });
    }

    let mut madt = Madt {
        local_apic_address: u64::from(u32_at(table, SdtHeader::SIZE)),
        flags: u32_at(table, SdtHeader::SIZE + 4),
        cpus: CpuList::new(),
        io_apics: 0,
        io_apic_list: [IoApic::EMPTY; MAX_IO_APICS],
        io_apic_count: 0,
        isa_overrides: [None; ISA_IRQS],
        nmis: [LocalNmi::EMPTY; MAX_NMI_ENTRIES],
        nmi_count: 0,
        malformed: 0,
        first_malformed: None,
    };
    let online_capable_defined = header.revision >= ONLINE_CAPABLE_REVISION;

    let mut offset = MADT_FIXED_LEN;
    // Every step advances by at least 2 bytes, so this ends.
    while let Some(rest) = table.get(offset..).filter(|rest| !rest.is_empty()) {
        let entry_type = rest[0];
        let entry_len = rest.get(1).copied().unwrap_or(0);
        let bad_entry = AcpiError::BadEntry { offset, entry_type, length: entry_len };
        let Some(entry) = rest.get(..usize::from(entry_len)).filter(|entry| entry.len() >= 2) else {
            madt.note_malformed(bad_entry);
            break;
        };
        let min_len = match entry_type {
            0 => 8,
            1 => 12,
            2 => 10,
            4 => 6,
            5 => 12,
            9 => 16,
            0xa => 12,
            _ => 2,
        };
        if entry.len() < min_len {
            madt.note_malformed(bad_entry);
            offset += entry.len();
            continue;
        }
        match entry_type {
            0 => {
                let (uid, apic_id, flags) = (entry[2], entry[3], u32_at(entry, 4));
                madt.cpus.add(apic_id.into(), uid.into(), CpuSource::LocalApic, flags, online_capable_defined);
            }
            1 => {
                madt.io_apics = madt.io_apics.saturating_add(1);
                if let Some(slot) = madt.io_apic_list.get_mut(madt.io_apic_count) {
                    *slot = IoApic { id: entry[2], address: u32_at(entry, 4), gsi_base: u32_at(entry, 8) };
                    madt.io_apic_count += 1;
                }
            }
            2 => {
                // Bus 0 is ISA, the only bus overrides are defined for.
                let (bus, source, gsi, flags) =
                    (entry[2], entry[3], u32_at(entry, 4), u16::from_le_bytes([entry[8], entry[9]]));
                match madt.isa_overrides.get_mut(usize::from(source)) {
                    Some(slot) if bus == 0 => *slot = Some(IsaRoute::from_flags(gsi, flags)),
                    _ => madt.note_malformed(bad_entry),
                }
            }
            4 => {
                let uid = (entry[2] != 0xff).then_some(u32::from(entry[2]));
                let flags = u16::from_le_bytes([entry[3], entry[4]]);
                madt.add_nmi(LocalNmi { uid, lint: entry[5], flags }, offset, entry_type, entry_len);
            }
            5 => madt.local_apic_address = u64_at(entry, 4),
            0xa => {
                let flags = u16::from_le_bytes([entry[2], entry[3]]);
                let uid = Some(u32_at(entry, 4)).filter(|&u| u != u32::MAX);
                madt.add_nmi(LocalNmi { uid, lint: entry[8], flags }, offset, entry_type, entry_len);
            }
            9 => {
                let (apic_id, flags, uid) = (u32_at(entry, 4), u32_at(entry, 8), u32_at(entry, 12));
                madt.cpus.add(apic_id, uid, CpuSource::LocalX2Apic, flags, online_capable_defined);
            }
            _ => {}
        }
        offset += entry.len();
    }
    Ok(madt)
}
