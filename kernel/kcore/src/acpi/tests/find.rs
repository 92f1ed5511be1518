//! `find_table`: walking the RSDT and XSDT over fake physical memory.

use super::{fix_checksum, qemu_like, rsdt, sdt, set_len, xsdt, FakeMemory};
use crate::acpi::{find_table, parse_madt, AcpiError, PhysMemory, RootTable, MADT_SIGNATURE, MAX_TABLE_LEN};

/// A table that is not the one searched for.
fn facp() -> Vec<u8> {
    sdt(b"FACP", 6, &[0x55; 240])
}

/// The same table with its checksum broken.
fn broken(mut table: Vec<u8>) -> Vec<u8> {
    table[9] = table[9].wrapping_add(1);
    table
}

#[test]
fn through_the_rsdt() {
    let madt = qemu_like(4).build();
    let mem = FakeMemory::new()
        .with(0xE_0000, rsdt(&[0x7FE_0000, 0x7FE_1000]))
        .with(0x7FE_0000, facp())
        .with(0x7FE_1000, madt.clone());
    let root = RootTable::Rsdt(0xE_0000);
    assert_eq!(find_table(&mem, root, &MADT_SIGNATURE), Ok((0x7FE_1000, madt.len() as u32)));
    assert_eq!(find_table(&mem, root, b"FACP"), Ok((0x7FE_0000, 276)));
}

#[test]
fn through_the_xsdt_above_4_gib() {
    let madt = qemu_like(2).build();
    let mem = FakeMemory::new()
        .with(0x1000, xsdt(&[0x1_0000_0000, 0x2_0000_0040]))
        .with(0x1_0000_0000, facp())
        .with(0x2_0000_0040, madt.clone());
    let (phys, length) = find_table(&mem, RootTable::Xsdt(0x1000), &MADT_SIGNATURE).unwrap();
    assert_eq!((phys, length), (0x2_0000_0040, madt.len() as u32));

    // What the kernel then does: read the bytes and parse them.
    let mut bytes = vec![0; length as usize];
    mem.read(phys, &mut bytes).unwrap();
    assert_eq!(parse_madt::<8>(&bytes).unwrap().cpus.len(), 2);
}

#[test]
fn null_and_unreadable_entries_are_skipped() {
    let madt = qemu_like(1).build();
    let mem = FakeMemory::new()
        .with(0x1000, xsdt(&[0, 0xDEAD_0000, u64::MAX - 10, 0x3000]))
        .with(0x3000, madt.clone())
        // A header at the very end of a mapping: readable header, no body.
        .with(0xDEAD_0000 - 20, vec![0; 20]);
    assert_eq!(find_table(&mem, RootTable::Xsdt(0x1000), &MADT_SIGNATURE), Ok((0x3000, madt.len() as u32)));
    assert_eq!(
        find_table(&mem, RootTable::Rsdt(0x1000), &MADT_SIGNATURE).unwrap_err(),
        AcpiError::BadSignature { expected: *b"RSDT", found: *b"XSDT" }
    );
}

#[test]
fn other_tables_are_not_validated() {
    // A broken table the kernel is not looking for does not get in the way.
    let madt = qemu_like(1).build();
    let mut huge = facp();
    set_len(&mut huge, u32::MAX);
    let mem = FakeMemory::new()
        .with(0x1000, rsdt(&[0x2000, 0x3000, 0x4000]))
        .with(0x2000, broken(facp()))
        .with(0x3000, huge)
        .with(0x4000, madt.clone());
    assert_eq!(find_table(&mem, RootTable::Rsdt(0x1000), &MADT_SIGNATURE), Ok((0x4000, madt.len() as u32)));
}

#[test]
fn first_valid_match_wins() {
    let good = qemu_like(4).build();
    let other_good = qemu_like(2).build();
    let mem = FakeMemory::new()
        .with(0x1000, rsdt(&[0x2000, 0x3000, 0x4000]))
        .with(0x2000, broken(qemu_like(8).build()))
        .with(0x3000, good.clone())
        .with(0x4000, other_good);
    assert_eq!(find_table(&mem, RootTable::Rsdt(0x1000), &MADT_SIGNATURE), Ok((0x3000, good.len() as u32)));
}

#[test]
fn invalid_matches_report_the_first_error() {
    let mut too_short = qemu_like(1).build();
    set_len(&mut too_short, 20);
    fix_checksum(&mut too_short);
    let mut too_long = qemu_like(1).build();
    set_len(&mut too_long, MAX_TABLE_LEN + 1);
    // Header readable, but the rest of the claimed length is not mapped.
    let mut body_unmapped = qemu_like(1).build();
    set_len(&mut body_unmapped, 0x1_0000);
    let cases = [
        (broken(qemu_like(1).build()), AcpiError::BadChecksum { signature: *b"APIC", phys: 0x2000 }),
        (too_short, AcpiError::BadLength { signature: *b"APIC", length: 20 }),
        (too_long, AcpiError::BadLength { signature: *b"APIC", length: MAX_TABLE_LEN + 1 }),
        (body_unmapped, AcpiError::Unreadable(0x2000)),
    ];
    for (table, error) in &cases {
        // The invalid match, then a non-match, then another invalid match:
        // the first one's error is reported.
        let mem = FakeMemory::new()
            .with(0x1000, rsdt(&[0x2000, 0x3000, 0x4000]))
            .with(0x2000, table.clone())
            .with(0x3000, facp())
            .with(0x4000, broken(qemu_like(2).build()));
        assert_eq!(find_table(&mem, RootTable::Rsdt(0x1000), &MADT_SIGNATURE), Err(*error));
    }
}

#[test]
fn not_found() {
    let mem = FakeMemory::new().with(0x1000, xsdt(&[0x2000])).with(0x2000, facp());
    assert_eq!(find_table(&mem, RootTable::Xsdt(0x1000), b"HPET"), Err(AcpiError::NotFound(*b"HPET")));
    let mem = FakeMemory::new().with(0x1000, xsdt(&[]));
    assert_eq!(find_table(&mem, RootTable::Xsdt(0x1000), &MADT_SIGNATURE), Err(AcpiError::NotFound(*b"APIC")));
}

#[test]
fn root_table_errors() {
    let root = rsdt(&[0x2000]);
    let find = |mem: &FakeMemory| find_table(mem, RootTable::Rsdt(0x1000), &MADT_SIGNATURE);

    assert_eq!(find(&FakeMemory::new()), Err(AcpiError::Unreadable(0x1000)));
    let mem = FakeMemory::new().with(0x1000, broken(root.clone()));
    assert_eq!(find(&mem), Err(AcpiError::BadChecksum { signature: *b"RSDT", phys: 0x1000 }));

    for length in [0, 35, MAX_TABLE_LEN + 1, u32::MAX] {
        let mut bad = root.clone();
        set_len(&mut bad, length);
        fix_checksum(&mut bad);
        let mem = FakeMemory::new().with(0x1000, bad);
        assert_eq!(find(&mem), Err(AcpiError::BadLength { signature: *b"RSDT", length }));
    }
    // A length running past what is mapped.
    let mut long = root.clone();
    set_len(&mut long, 4096);
    let mem = FakeMemory::new().with(0x1000, long);
    assert_eq!(find(&mem), Err(AcpiError::Unreadable(0x1000)));
    // At the very top of the address space.
    let mem = FakeMemory::new();
    assert_eq!(find_table(&mem, RootTable::Xsdt(u64::MAX - 4), b"APIC"), Err(AcpiError::Unreadable(u64::MAX - 4)));
}

#[test]
fn partial_trailing_root_entry_is_ignored() {
    let madt = qemu_like(1).build();
    let mut root = rsdt(&[0x2000]);
    root.extend_from_slice(&[0x00, 0x30, 0x00]);
    set_len(&mut root, 36 + 4 + 3);
    fix_checksum(&mut root);
    let mem = FakeMemory::new().with(0x1000, root).with(0x2000, madt.clone());
    assert_eq!(find_table(&mem, RootTable::Rsdt(0x1000), &MADT_SIGNATURE), Ok((0x2000, madt.len() as u32)));
}

#[test]
fn big_tables_are_read_in_small_chunks() {
    let big = sdt(b"BIG!", 1, &vec![0xA5; 100_000]);
    let mem = FakeMemory::new().with(0x1000, rsdt(&[0x10_0000])).with(0x10_0000, big);
    assert_eq!(find_table(&mem, RootTable::Rsdt(0x1000), b"BIG!"), Ok((0x10_0000, 100_036)));
    assert!(mem.largest_read.get() <= 256, "largest read {}", mem.largest_read.get());
}
