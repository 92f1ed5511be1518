//! Directed MADT parser cases: what firmware (and QEMU) really produces,
//! then every way a table can be broken.

use super::{fix_checksum, qemu_like, set_len, MadtBuilder, ENABLED, LAPIC_BASE, ONLINE_CAPABLE};
use crate::acpi::{parse_madt, AcpiError, CpuEntry, CpuList, CpuSource, IoApic, IsaRoute, Madt, MADT_FIXED_LEN};

/// Parses a table that must be valid, with room for 64 CPUs.
fn parse(table: &[u8]) -> Madt<64> {
    parse_madt(table).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

fn ids<const N: usize>(cpus: &CpuList<N>) -> Vec<u32> {
    cpus.iter().map(|cpu| cpu.apic_id).collect()
}

/// The counters, as (duplicates, disabled, invalid_ids, beyond_capacity).
fn counters<const N: usize>(cpus: &CpuList<N>) -> (u32, u32, u32, u32) {
    (cpus.duplicates, cpus.disabled, cpus.invalid_ids, cpus.beyond_capacity)
}

#[test]
fn qemu_like_xapic_only() {
    let madt = parse(&qemu_like(4).build());
    assert_eq!(madt.local_apic_address, u64::from(LAPIC_BASE));
    assert_eq!(madt.flags, 1);
    assert!(madt.has_dual_8259());
    assert_eq!(madt.io_apics, 1);
    assert_eq!(madt.cpus.len(), 4);
    assert!(!madt.cpus.is_empty());
    assert_eq!(counters(&madt.cpus), (0, 0, 0, 0));
    for (i, cpu) in madt.cpus.iter().enumerate() {
        let i = i as u32;
        assert_eq!(*cpu, CpuEntry { apic_id: i, acpi_uid: i, source: CpuSource::LocalApic, enabled: true });
    }
    assert_eq!(madt.cpus.as_slice().len(), 4);
    assert_eq!((&madt.cpus).into_iter().count(), 4);
    assert!(madt.cpus.contains(3));
    assert!(!madt.cpus.contains(4));
    assert_eq!(madt.cpus.index_of(2), Some(2));
    assert_eq!(madt.cpus.index_of(4), None);
}

#[test]
fn no_flags_no_pics() {
    let mut builder = qemu_like(1);
    builder.flags = 0;
    assert!(!parse(&builder.build()).has_dual_8259());
}

#[test]
fn x2apic_only_with_300_cpus() {
    // Type 9 only, as firmware does for machines with APIC IDs past 254.
    let mut builder = MadtBuilder::new(5).io_apic(0, 0xFEC0_0000, 0);
    for id in 0..300 {
        builder = builder.x2apic(id, 1000 + id, ENABLED);
    }
    let table = builder.build();
    let madt: Madt<512> = parse_madt(&table).unwrap();
    assert_eq!(madt.cpus.len(), 300);
    assert_eq!(counters(&madt.cpus), (0, 0, 0, 0));
    assert!(madt.cpus.iter().all(|cpu| cpu.source == CpuSource::LocalX2Apic && cpu.enabled));
    assert_eq!(ids(&madt.cpus), (0..300).collect::<Vec<_>>());
    assert_eq!(madt.cpus.as_slice()[299].acpi_uid, 1299);
    assert_eq!(madt.cpus.index_of(256), Some(256));

    // The same table with room for only 64.
    let madt: Madt<64> = parse_madt(&table).unwrap();
    assert_eq!(madt.cpus.len(), 64);
    assert_eq!(madt.cpus.beyond_capacity, 236);
    assert_eq!(ids(&madt.cpus), (0..64).collect::<Vec<_>>(), "table order, first ones kept");
}

#[test]
fn same_id_as_xapic_and_x2apic_is_one_cpu() {
    let table = MadtBuilder::new(4)
        .lapic(0, 0, ENABLED)
        .lapic(1, 1, ENABLED)
        .x2apic(0, 0, ENABLED)
        .x2apic(1, 1, ENABLED)
        .x2apic(256, 2, ENABLED)
        .lapic(5, 1, ENABLED)
        .build();
    let madt = parse(&table);
    assert_eq!(ids(&madt.cpus), [0, 1, 256]);
    assert_eq!(madt.cpus.duplicates, 3);
    let sources: Vec<_> = madt.cpus.iter().map(|cpu| cpu.source).collect();
    assert_eq!(sources, [CpuSource::LocalApic, CpuSource::LocalApic, CpuSource::LocalX2Apic], "first one wins");
    assert_eq!(madt.cpus.as_slice()[1].acpi_uid, 1, "not the later duplicate's UID");

    // The other way round, x2APIC first.
    let madt = parse(&MadtBuilder::new(4).x2apic(7, 70, ENABLED).lapic(1, 7, ENABLED).build());
    assert_eq!(
        madt.cpus.as_slice(),
        [CpuEntry { apic_id: 7, acpi_uid: 70, source: CpuSource::LocalX2Apic, enabled: true }]
    );
    assert_eq!(madt.cpus.duplicates, 1);
}

#[test]
fn qemu_maxcpus_entries_are_disabled() {
    // `-smp 4,maxcpus=8`: eight entries, the last four with flags 0.
    let mut builder = qemu_like(4);
    for i in 4..8 {
        builder = builder.lapic(i, i, 0);
    }
    let madt = parse(&builder.build());
    assert_eq!(ids(&madt.cpus), [0, 1, 2, 3]);
    assert_eq!(counters(&madt.cpus), (0, 4, 0, 0));
}

#[test]
fn online_capable_needs_revision_5() {
    let entries = |revision| {
        MadtBuilder::new(revision)
            .lapic(0, 0, ENABLED)
            .lapic(1, 1, ONLINE_CAPABLE)
            .x2apic(300, 2, ONLINE_CAPABLE)
            .lapic(3, 3, ENABLED | ONLINE_CAPABLE)
            .build()
    };
    for revision in [5, 6, 0xFF] {
        let madt = parse(&entries(revision));
        assert_eq!(ids(&madt.cpus), [0, 1, 300, 3], "revision {revision}");
        let enabled: Vec<_> = madt.cpus.iter().map(|cpu| cpu.enabled).collect();
        assert_eq!(enabled, [true, false, false, true], "online capable only is not enabled");
        assert_eq!(madt.cpus.disabled, 0);
    }
    for revision in [0, 1, 3, 4] {
        let madt = parse(&entries(revision));
        assert_eq!(ids(&madt.cpus), [0, 3], "revision {revision}: bit 1 means nothing yet");
        assert!(madt.cpus.iter().all(|cpu| cpu.enabled));
        assert_eq!(madt.cpus.disabled, 2);
    }
}

#[test]
fn other_flag_bits_are_ignored() {
    let madt = parse(&MadtBuilder::new(5).lapic(0, 0, 0xFFFF_FFFC).lapic(1, 1, 0xFFFF_FFFD).build());
    assert_eq!(ids(&madt.cpus), [1]);
    assert_eq!(madt.cpus.disabled, 1);
}

#[test]
fn apic_ids_with_gaps() {
    let mut builder = MadtBuilder::new(3);
    let gappy = [0u8, 1, 2, 4, 5, 6, 8, 9, 10, 16];
    for (uid, id) in gappy.into_iter().enumerate() {
        builder = builder.lapic(uid as u8, id, ENABLED);
    }
    let madt = parse(&builder.build());
    assert_eq!(ids(&madt.cpus), gappy.map(u32::from));
    assert_eq!(madt.cpus.index_of(4), Some(3), "index, not ID");
    assert_eq!(madt.cpus.index_of(16), Some(9));
    assert!(!madt.cpus.contains(3));
    assert!(!madt.cpus.contains(7));
}

#[test]
fn invalid_ids() {
    let table = MadtBuilder::new(5)
        .lapic(0, 0, ENABLED)
        .lapic(1, 0xFF, ENABLED)
        .x2apic(u32::MAX, 2, ENABLED)
        .x2apic(u32::MAX, 3, ONLINE_CAPABLE)
        .lapic(4, 0xFF, 0)
        .x2apic(0xFF, 5, ENABLED)
        .x2apic(u32::MAX - 1, 6, ENABLED)
        .build();
    let madt = parse(&table);
    // 0xFF is a fine x2APIC ID; only all-ones is invalid there.
    assert_eq!(ids(&madt.cpus), [0, 0xFF, u32::MAX - 1]);
    assert_eq!(counters(&madt.cpus), (0, 1, 3, 0), "a disabled entry counts as disabled whatever its ID");
}

#[test]
fn capacity_overflow() {
    let table = qemu_like(4).lapic(9, 9, ENABLED).lapic(10, 1, ENABLED).build();
    let madt: Madt<2> = parse_madt(&table).unwrap();
    assert_eq!(ids(&madt.cpus), [0, 1]);
    // The duplicate of 1 is still recognised: it is in the list.
    assert_eq!(counters(&madt.cpus), (1, 0, 0, 3));

    let madt: Madt<5> = parse_madt(&table).unwrap();
    assert_eq!(ids(&madt.cpus), [0, 1, 2, 3, 9]);
    assert_eq!(counters(&madt.cpus), (1, 0, 0, 0));

    let madt: Madt<0> = parse_madt(&table).unwrap();
    assert!(madt.cpus.is_empty());
    assert_eq!(madt.cpus.index_of(0), None);
    assert_eq!(counters(&madt.cpus), (0, 0, 0, 6), "with no room, duplicates look like new CPUs");
}

#[test]
fn local_apic_address_override() {
    let madt = parse(&qemu_like(1).lapic_address(0x1_2345_6000).build());
    assert_eq!(madt.local_apic_address, 0x1_2345_6000);
    let madt = parse(&qemu_like(1).lapic_address(0xAAAA_0000).lapic_address(0xBBBB_0000).build());
    assert_eq!(madt.local_apic_address, 0xBBBB_0000, "the last override wins");
}

#[test]
fn unknown_and_longer_entries_are_skipped_by_length() {
    let table = MadtBuilder::new(5)
        .entry(0x7F, &[1, 2, 3])
        .entry(0x80, &[])
        .entry(0xFF, &[0xFF; 200])
        // Entries longer than their minimum (later revisions grow them).
        .entry(0, &[7, 7, 1, 0, 0, 0, 0xEE, 0xEE])
        .entry(9, &[0, 0, 9, 1, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0xEE])
        .entry(5, &[0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0xEE])
        .build();
    let madt = parse(&table);
    assert_eq!(ids(&madt.cpus), [7, 0x109]);
    assert_eq!(madt.cpus.as_slice()[1].acpi_uid, 5);
    assert_eq!(madt.local_apic_address, 0x1000_0000);
}

#[test]
fn no_entries_at_all() {
    let madt = parse(&MadtBuilder::new(5).build());
    assert!(madt.cpus.is_empty());
    assert_eq!(madt.io_apics, 0);
}

#[test]
fn bytes_after_the_table_are_ignored() {
    let mut table = qemu_like(2).build();
    let expected = parse(&table);
    table.extend_from_slice(&[0, 0, 0xFF, 0x13]);
    assert_eq!(parse(&table), expected);
}

#[test]
fn header_errors() {
    let good = qemu_like(2).build();

    let mut table = good.clone();
    table[..4].copy_from_slice(b"APIX");
    assert_eq!(parse_madt::<4>(&table), Err(AcpiError::BadSignature { expected: *b"APIC", found: *b"APIX" }));

    let mut table = good.clone();
    table[50] ^= 1;
    assert_eq!(parse_madt::<4>(&table), Err(AcpiError::BadChecksum { signature: *b"APIC", phys: 0 }));

    assert_eq!(parse_madt::<4>(&good[..20]), Err(AcpiError::Truncated { what: "table header", need: 36, have: 20 }));

    for length in [0, 36, 43] {
        let mut table = good.clone();
        set_len(&mut table, length);
        fix_checksum(&mut table);
        assert_eq!(parse_madt::<4>(&table), Err(AcpiError::BadLength { signature: *b"APIC", length }));
    }
    // Exactly the fixed part is a valid, empty MADT.
    let mut table = good[..MADT_FIXED_LEN].to_vec();
    set_len(&mut table, MADT_FIXED_LEN as u32);
    fix_checksum(&mut table);
    assert!(parse(&table).cpus.is_empty());
}

#[test]
fn length_beyond_the_slice_is_truncated() {
    let good = qemu_like(2).build();
    let cut = good.len() - 3;
    // The slice ends mid-entry, but the length field still says more.
    assert_eq!(parse_madt::<4>(&good[..cut]), Err(AcpiError::Truncated { what: "MADT", need: good.len(), have: cut }));
    // The length field itself lies.
    let mut table = good.clone();
    set_len(&mut table, u32::MAX);
    assert_eq!(
        parse_madt::<4>(&table),
        Err(AcpiError::Truncated { what: "MADT", need: u32::MAX as usize, have: good.len() })
    );
}

/// The CPUs a table lists, by APIC ID, and its malformed-entry report.
fn cpus_and_malformed(table: &[u8]) -> (Vec<u32>, u32, Option<AcpiError>) {
    let madt = parse_madt::<8>(table).expect("a table with malformed entries still parses");
    (madt.cpus.iter().map(|c| c.apic_id).collect(), madt.malformed, madt.first_malformed)
}

#[test]
fn length_cutting_an_entry_is_a_bad_entry() {
    // Two type 0 entries; the length field ends the table 3 bytes into the
    // second (the checksum is made right for that length): the first CPU
    // stays, the cut one is reported.
    let mut table = MadtBuilder::new(5).lapic(0, 0, ENABLED).lapic(1, 1, ENABLED).build();
    set_len(&mut table, (MADT_FIXED_LEN + 8 + 3) as u32);
    fix_checksum(&mut table);
    let error = AcpiError::BadEntry { offset: MADT_FIXED_LEN + 8, entry_type: 0, length: 8 };
    assert_eq!(cpus_and_malformed(&table), (vec![0], 1, Some(error)));
    // One byte into it: not even the length byte is there.
    set_len(&mut table, (MADT_FIXED_LEN + 8 + 1) as u32);
    fix_checksum(&mut table);
    let error = AcpiError::BadEntry { offset: MADT_FIXED_LEN + 8, entry_type: 0, length: 0 };
    assert_eq!(cpus_and_malformed(&table), (vec![0], 1, Some(error)));
}

#[test]
fn entries_shorter_than_two_bytes() {
    for length in [0, 1] {
        let table = qemu_like(1).raw(&[0x7F, length, 0, 0, 0, 0]).lapic(9, 9, ENABLED).build();
        let offset = table.len() - 6 - 8;
        let error = AcpiError::BadEntry { offset, entry_type: 0x7F, length };
        // The walk cannot go past it: the CPU after it is lost, the one
        // before kept.
        let (cpus, malformed, first) = cpus_and_malformed(&table);
        assert_eq!((malformed, first), (1, Some(error)), "length {length}");
        assert!(!cpus.contains(&9) && !cpus.is_empty(), "length {length}: {cpus:?}");
    }
}

#[test]
fn entry_running_past_the_end() {
    let table = MadtBuilder::new(5).lapic(0, 0, ENABLED).raw(&[1, 12, 0, 0]).build();
    let error = AcpiError::BadEntry { offset: MADT_FIXED_LEN + 8, entry_type: 1, length: 12 };
    assert_eq!(cpus_and_malformed(&table), (vec![0], 1, Some(error)));
}

#[test]
fn entries_too_short_for_their_type() {
    for (entry_type, length) in [(0u8, 7u8), (0, 2), (5, 11), (9, 15), (9, 8)] {
        let mut entry = vec![entry_type, length];
        entry.resize(usize::from(length), ENABLED as u8);
        // A good CPU on either side: the short entry is skipped by its
        // length and both are kept.
        let table = MadtBuilder::new(5).lapic(0, 0, ENABLED).raw(&entry).lapic(1, 1, ENABLED).build();
        let error = AcpiError::BadEntry { offset: MADT_FIXED_LEN + 8, entry_type, length };
        assert_eq!(cpus_and_malformed(&table), (vec![0, 1], 1, Some(error)), "type {entry_type} length {length}");
    }
}

#[test]
fn nmi_entries() {
    use crate::acpi::LocalNmi;
    // QEMU's: every processor, LINT1, bus-default flags.
    let madt = parse_madt::<4>(&qemu_like(2).build()).unwrap();
    assert_eq!(&madt.nmis[..madt.nmi_count], &[LocalNmi { uid: None, lint: 1, flags: 0 }]);
    assert_eq!(LocalNmi::for_cpu(&madt, 7).count(), 1);
    // Per processor, xAPIC and x2APIC kinds, active low; a pin that is not
    // LINT0/1 is malformed and dropped; the good CPUs stay.
    let table = MadtBuilder::new(5)
        .lapic(0, 0, ENABLED)
        .lapic(1, 1, ENABLED)
        .lapic_nmi(1, 0xf, 0)
        .x2apic_nmi(0x7, 300, 1)
        .x2apic_nmi(0, u32::MAX, 1)
        .lapic_nmi(0, 0, 2)
        .build();
    let madt = parse_madt::<4>(&table).unwrap();
    assert_eq!(madt.cpus.len(), 2);
    assert_eq!(
        &madt.nmis[..madt.nmi_count],
        &[
            LocalNmi { uid: Some(1), lint: 0, flags: 0xf },
            LocalNmi { uid: Some(300), lint: 1, flags: 0x7 },
            LocalNmi { uid: None, lint: 1, flags: 0 },
        ]
    );
    assert_eq!(madt.malformed, 1);
    let pins = |uid| LocalNmi::for_cpu(&madt, uid).map(|n| (n.lint, n.active_low())).collect::<Vec<_>>();
    assert_eq!(pins(1), vec![(0, true), (1, false)]);
    assert_eq!(pins(300), vec![(1, true), (1, false)]);
    assert_eq!(pins(0), vec![(1, false)]);
    // Too short for its type: skipped.
    let table = MadtBuilder::new(5).lapic(0, 0, ENABLED).raw(&[4, 5, 0xff, 0, 0]).build();
    let madt = parse_madt::<4>(&table).unwrap();
    assert_eq!((madt.nmi_count, madt.malformed), (0, 1));
}

#[test]
fn io_apics_and_isa_overrides() {
    let madt = parse(&qemu_like(2).build());
    assert_eq!(madt.io_apics(), [IoApic { id: 0, address: 0xFEC0_0000, gsi_base: 0 }]);
    // QEMU: the PIT's IRQ 0 on GSI 2, edge and high; PCI IRQs 5, 9, 10 and
    // 11 level triggered, active high (flags 0xD); the rest identity.
    assert_eq!(madt.isa_route(0), Some(IsaRoute { gsi: 2, active_low: false, level: false }));
    assert_eq!(madt.isa_route(9), Some(IsaRoute { gsi: 9, active_low: false, level: true }));
    assert_eq!(madt.isa_route(8), Some(IsaRoute { gsi: 8, active_low: false, level: false }));
    assert_eq!(madt.isa_route(1), Some(IsaRoute { gsi: 1, active_low: false, level: false }));
    assert_eq!(madt.isa_route(200), Some(IsaRoute { gsi: 200, active_low: false, level: false }));
    // GSI 2 is IRQ 0's: IRQ 2 has no line of its own.
    assert_eq!(madt.isa_route(2), None);
    assert_eq!(madt.malformed, 0);
}

#[test]
fn no_two_isa_irqs_share_a_gsi() {
    // IRQ 0 and IRQ 7 both overridden onto GSI 2 (a firmware mistake): the
    // lower keeps it, and IRQ 2 has none; IRQ 9 may have GSI 7, which IRQ
    // 7 (overridden) does not use; IRQ 3 keeps its own.
    let table = MadtBuilder::new(3)
        .lapic(0, 0, ENABLED)
        .io_apic(0, 0xFEC0_0000, 0)
        .source_override(0, 2, 0)
        .source_override(7, 2, 0)
        .source_override(9, 7, 0xD)
        .build();
    let madt = parse(&table);
    assert_eq!(madt.isa_route(0).map(|r| r.gsi), Some(2));
    assert_eq!(madt.isa_route(7), None);
    assert_eq!(madt.isa_route(2), None);
    assert_eq!(madt.isa_route(9).map(|r| r.gsi), Some(7));
    assert_eq!(madt.isa_route(3).map(|r| r.gsi), Some(3));
    let gsis: Vec<u32> = (0..16).filter_map(|irq| madt.isa_route(irq)).map(|r| r.gsi).collect();
    let mut unique = gsis.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(gsis.len(), unique.len(), "GSIs {gsis:?}");
}

#[test]
fn override_flags_and_bad_overrides() {
    // Active low and level (0xF), the bus's own (0), reserved polarity (2):
    // taken as the bus's.
    assert_eq!(IsaRoute::from_flags(20, 0xF), IsaRoute { gsi: 20, active_low: true, level: true });
    assert_eq!(IsaRoute::from_flags(3, 0), IsaRoute { gsi: 3, active_low: false, level: false });
    assert_eq!(IsaRoute::from_flags(3, 0x2 | 0x4), IsaRoute { gsi: 3, active_low: false, level: false });
    // An override of IRQ 16 (not ISA) and one of another bus are skipped
    // and counted; the good one among them is kept.
    let mut not_isa_bus = vec![1u8, 4];
    not_isa_bus.extend_from_slice(&7u32.to_le_bytes());
    not_isa_bus.extend_from_slice(&0u16.to_le_bytes());
    let table = MadtBuilder::new(3)
        .lapic(0, 0, ENABLED)
        .io_apic(2, 0xFEC0_0000, 0)
        .io_apic(3, 0xFEC1_0000, 24)
        .source_override(16, 16, 0)
        .entry(2, &not_isa_bus)
        .source_override(4, 20, 0xF)
        .build();
    let madt = parse(&table);
    assert_eq!(madt.malformed, 2);
    assert!(matches!(madt.first_malformed, Some(AcpiError::BadEntry { entry_type: 2, .. })));
    assert_eq!(madt.isa_route(4), Some(IsaRoute { gsi: 20, active_low: true, level: true }));
    assert_eq!(madt.io_apics().len(), 2);
    assert_eq!(madt.io_apics()[1], IoApic { id: 3, address: 0xFEC1_0000, gsi_base: 24 });
    // Too short for an I/O APIC entry: skipped, counted, the table kept.
    let short = MadtBuilder::new(3).lapic(0, 0, ENABLED).entry(1, &[9, 0, 0, 0]).build();
    let madt = parse(&short);
    assert_eq!((madt.io_apics, madt.io_apics().len(), madt.malformed), (0, 0, 1));
}

#[test]
fn io_apics_beyond_capacity_are_counted() {
    let mut builder = MadtBuilder::new(3).lapic(0, 0, ENABLED);
    for i in 0..10u8 {
        builder = builder.io_apic(i, 0xFEC0_0000 + u32::from(i) * 0x1000, u32::from(i) * 24);
    }
    let madt = parse(&builder.build());
    assert_eq!(madt.io_apics, 10);
    assert_eq!(madt.io_apics().len(), crate::acpi::MAX_IO_APICS);
}
