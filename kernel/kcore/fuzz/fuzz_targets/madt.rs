//! Coverage-guided fuzzing of the ACPI code with arbitrary bytes:
//!
//! 1. the bytes as an MADT, handed to `parse_madt`;
//! 2. the bytes as physical memory starting at `BASE`, with the root table
//!    (RSDT or XSDT) at its start, searched by `find_table` for the MADT,
//!    which is then read back and parsed.
//!
//! Nothing may panic, and whatever is returned must hold together.
#![no_main]

use ferrite_kcore::acpi::{checksum_ok, find_table, parse_madt, AcpiError, Madt, PhysMemory, RootTable};
use ferrite_kcore::acpi::{MADT_SIGNATURE, MAX_TABLE_LEN};
use libfuzzer_sys::fuzz_target;

/// Where the input is "mapped" in the fake physical memory.
const BASE: u64 = 0x1000;

/// The fuzz input as physical memory at `BASE..BASE + len`; everything else
/// is unmapped.
struct Memory<'a>(&'a [u8]);

impl PhysMemory for Memory<'_> {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        let src = phys
            .checked_sub(BASE)
            .and_then(|offset| usize::try_from(offset).ok())
            .and_then(|offset| self.0.get(offset..offset.checked_add(buf.len())?))
            .ok_or(AcpiError::Unreadable(phys))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The invariants of a parsed MADT.
fn check(madt: &Madt<64>) {
    let cpus = madt.cpus.as_slice();
    assert!(cpus.len() <= 64);
    assert_eq!(cpus.len(), madt.cpus.len());
    for (i, cpu) in cpus.iter().enumerate() {
        assert_eq!(madt.cpus.index_of(cpu.apic_id), Some(i), "duplicate APIC ID {}", cpu.apic_id);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(madt) = parse_madt::<64>(data) {
        check(&madt);
    }

    let mem = Memory(data);
    for root in [RootTable::Rsdt(BASE), RootTable::Xsdt(BASE)] {
        let Ok((phys, length)) = find_table(&mem, root, &MADT_SIGNATURE) else { continue };
        assert!((36..=MAX_TABLE_LEN).contains(&length));
        let mut table = vec![0; length as usize];
        mem.read(phys, &mut table).expect("a table that was found is readable");
        assert!(checksum_ok(&table));
        assert_eq!(table[..4], MADT_SIGNATURE);
        if let Ok(madt) = parse_madt::<64>(&table) {
            check(&madt);
        }
    }
});
