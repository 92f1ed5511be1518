//! Seeded mutation fuzzing, run by every `cargo test` on stable.
//!
//! Valid tables are mutated (bits flipped, bytes set to boundary values,
//! inserted, deleted, chunks duplicated, the end cut off), then half the
//! time the length field and the checksum are made right again, so the
//! mutations reach the entry walker instead of all dying at the checksum.
//! Whatever comes back, nothing may panic and every result must be
//! consistent. The generator is seeded, so a failure replays exactly; the
//! coverage-guided counterpart is the `cargo fuzz` target in
//! `kernel/kcore/fuzz`.

use super::{fix_checksum, qemu_like, rsdt, set_len, xsdt, FakeMemory, MadtBuilder, ENABLED, ONLINE_CAPABLE};
use crate::acpi::{
    checksum_ok, find_table, parse_madt, AcpiError, CpuList, CpuSource, Madt, PhysMemory, RootTable, MADT_SIGNATURE,
    MAX_TABLE_LEN,
};
use crate::rng::XorShift64 as XorShift;

/// Valid MADTs to start from, covering every entry kind the parser reads.
fn seeds() -> Vec<Vec<u8>> {
    let mut maxcpus = qemu_like(4);
    for i in 4..8 {
        maxcpus = maxcpus.lapic(i, i, 0);
    }
    let mut x2apic = MadtBuilder::new(5).io_apic(0, 0xFEC0_0000, 0).io_apic(1, 0xFEC0_1000, 24);
    for id in 250..270 {
        x2apic = x2apic.x2apic(id, id, if id % 5 == 0 { ONLINE_CAPABLE } else { ENABLED });
    }
    let mixed = MadtBuilder::new(4)
        .lapic(0, 0, ENABLED)
        .lapic(1, 2, ENABLED)
        .x2apic(2, 1, ENABLED)
        .x2apic(u32::MAX, 9, ENABLED)
        .lapic(3, 0xFF, ENABLED)
        .lapic_address(0xFEE0_0000)
        .entry(0x42, &[1, 2, 3])
        .x2apic(0x1_0000, 4, ENABLED | ONLINE_CAPABLE);
    vec![qemu_like(4).build(), maxcpus.build(), x2apic.build(), mixed.build(), MadtBuilder::new(5).build()]
}

/// Bytes the mutator likes to write: boundaries of lengths, flags and IDs.
const INTERESTING: [u8; 12] = [0, 1, 2, 3, 5, 7, 8, 9, 12, 16, 0x7F, 0xFF];

/// Applies one to four random mutations.
fn mutate(rng: &mut XorShift, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.index(4) {
        let len = bytes.len();
        match rng.index(7) {
            0 if len > 0 => bytes[rng.index(len)] ^= 1 << rng.index(8),
            1 if len > 0 => bytes[rng.index(len)] = INTERESTING[rng.index(INTERESTING.len())],
            2 => bytes.insert(rng.index(len + 1), rng.next_u64() as u8),
            3 if len > 0 => {
                bytes.remove(rng.index(len));
            }
            4 => bytes.truncate(rng.index(len + 1)),
            5 if len > 0 => {
                // Copy a chunk (often a whole entry) to another place.
                let start = rng.index(len);
                let end = (start + 1 + rng.index(16)).min(len);
                let chunk = bytes[start..end].to_vec();
                let at = rng.index(len + 1);
                bytes.splice(at..at, chunk);
            }
            _ if len > 0 => bytes[rng.index(len)] = rng.next_u64() as u8,
            _ => bytes.push(rng.next_u64() as u8),
        }
    }
}

/// Half the time each, makes the length field match the bytes and the
/// checksum right, as a careful attacker (or a buggy firmware build tool)
/// would.
fn maybe_repair(rng: &mut XorShift, table: &mut [u8]) {
    if table.len() >= 8 && rng.chance(2) {
        set_len(table, table.len() as u32);
    }
    if table.len() >= 10 && rng.chance(2) {
        fix_checksum(table);
    }
}

/// The invariants of one parsed list.
fn check_list<const N: usize>(cpus: &CpuList<N>) {
    assert!(cpus.len() <= N);
    assert_eq!(cpus.as_slice().len(), cpus.len());
    for (i, cpu) in cpus.iter().enumerate() {
        assert_eq!(cpus.index_of(cpu.apic_id), Some(i), "APIC IDs must be unique");
        let invalid = match cpu.source {
            CpuSource::LocalApic => 0xFF,
            CpuSource::LocalX2Apic => u32::MAX,
        };
        assert_ne!(cpu.apic_id, invalid);
        if cpu.source == CpuSource::LocalApic {
            assert!(cpu.apic_id <= 0xFF && cpu.acpi_uid <= 0xFF);
        }
    }
}

/// Usable entries with a valid ID: listed, or counted as left out for
/// want of room. (Once the list is full, duplicates look like new CPUs.)
fn usable<const N: usize>(cpus: &CpuList<N>) -> u32 {
    cpus.len() as u32 + cpus.duplicates + cpus.beyond_capacity
}

/// Parses `table` with two capacities and checks they agree. Returns the
/// result with the large one.
fn check_madt(table: &[u8]) -> Result<Madt<64>, AcpiError> {
    let big = parse_madt::<64>(table);
    let small = parse_madt::<3>(table);
    match (&big, &small) {
        (Ok(big), Ok(small)) => {
            check_list(&big.cpus);
            check_list(&small.cpus);
            assert_eq!(small.cpus.as_slice(), &big.cpus.as_slice()[..small.cpus.len()], "a prefix");
            assert_eq!(usable(&big.cpus), usable(&small.cpus), "every usable entry is filed somewhere");
            assert_eq!((big.cpus.disabled, big.cpus.invalid_ids), (small.cpus.disabled, small.cpus.invalid_ids));
            assert_eq!(
                (big.local_apic_address, big.flags, big.io_apics, big.malformed, big.first_malformed),
                (small.local_apic_address, small.flags, small.io_apics, small.malformed, small.first_malformed)
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the error does not depend on the capacity"),
        _ => panic!("capacity changed success: {big:?} vs {small:?}"),
    }
    big
}

#[test]
fn seeds_are_valid() {
    for seed in seeds() {
        assert_eq!(check_madt(&seed).unwrap().malformed, 0);
    }
}

#[test]
fn mutated_madts() {
    let seeds = seeds();
    let mut rng = XorShift::new(0x5EED_ACB1_F00D_CAFE);
    let (mut ok, mut bad_entry) = (0, 0);
    const ITERATIONS: usize = 50_000;
    for _ in 0..ITERATIONS {
        let mut table = seeds[rng.index(seeds.len())].clone();
        mutate(&mut rng, &mut table);
        maybe_repair(&mut rng, &mut table);
        match check_madt(&table) {
            Ok(madt) if madt.malformed > 0 => bad_entry += 1,
            Ok(_) => ok += 1,
            Err(_) => {}
        }
    }
    // The repairs must get a good share of the inputs past the header
    // checks, or the walker is not being fuzzed at all.
    assert!(ok > ITERATIONS / 20, "only {ok} parsed");
    assert!(bad_entry > ITERATIONS / 20, "only {bad_entry} malformed entries found");
}

#[test]
fn random_bytes_behind_a_good_header() {
    // Entries made of pure noise, with length and checksum right.
    let mut rng = XorShift::new(0xDEC0_DED0_0000_0001);
    for _ in 0..5_000 {
        let mut table = MadtBuilder::new(rng.index(8) as u8).build();
        table.extend((0..rng.index(200)).map(|_| INTERESTING[rng.index(INTERESTING.len())]));
        let len = table.len() as u32;
        set_len(&mut table, len);
        fix_checksum(&mut table);
        let _ = check_madt(&table);
    }
}

/// Memory for the `find_table` fuzzer: a root table at 0x1000 followed by
/// the tables it lists, all in one mapped blob.
const BASE: u64 = 0x1000;

fn memory_image(rng: &mut XorShift, xsdt_root: bool) -> Vec<u8> {
    let seeds = seeds();
    let tables = [super::sdt(b"FACP", 6, &[0x11; 60]), seeds[rng.index(seeds.len())].clone(), seeds[0].clone()];
    let root_len = 36 + tables.len() * if xsdt_root { 8 } else { 4 };
    let mut addresses = Vec::new();
    let mut next = BASE + root_len as u64;
    for table in &tables {
        addresses.push(next);
        next += table.len() as u64;
    }
    let mut image =
        if xsdt_root { xsdt(&addresses) } else { rsdt(&addresses.iter().map(|&a| a as u32).collect::<Vec<_>>()) };
    for table in tables {
        image.extend_from_slice(&table);
    }
    image
}

#[test]
fn mutated_memory_for_find_table() {
    let mut rng = XorShift::new(0xF1ED_7AB1_E000_0042);
    let mut found = 0;
    for _ in 0..10_000 {
        let xsdt_root = rng.chance(2);
        let mut image = memory_image(&mut rng, xsdt_root);
        mutate(&mut rng, &mut image);
        if image.len() >= 10 && rng.chance(2) {
            fix_checksum(&mut image); // the root table's
        }
        let mem = FakeMemory::new().with(BASE, image);
        let root = if xsdt_root { RootTable::Xsdt(BASE) } else { RootTable::Rsdt(BASE) };
        if let Ok((phys, length)) = find_table(&mem, root, &MADT_SIGNATURE) {
            found += 1;
            assert!((36..=MAX_TABLE_LEN).contains(&length));
            let mut bytes = vec![0; length as usize];
            mem.read(phys, &mut bytes).expect("a found table is readable");
            assert!(checksum_ok(&bytes));
            assert_eq!(bytes[..4], MADT_SIGNATURE);
            let _ = check_madt(&bytes);
        }
    }
    assert!(found > 1_000, "only {found} found");
}
