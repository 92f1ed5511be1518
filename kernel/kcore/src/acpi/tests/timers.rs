//! The FADT's PM timer, flags, PM1 control blocks, sleep control register
//! and DSDT address; the HPET table's base address.

use super::sdt;
use crate::acpi::{
    parse_fadt, parse_hpet, parse_spcr, AcpiError, GenericAddress, PmTimer, PmTimerBlock, ResetRegister,
};

/// A FADT body (everything after the header) of `len` table bytes, zeroed,
/// for the tests to fill in at the FADT's own offsets.
fn fadt_body(len: usize) -> Vec<u8> {
    vec![0; len - 36]
}

fn put_u32(body: &mut [u8], table_offset: usize, value: u32) {
    body[table_offset - 36..table_offset - 32].copy_from_slice(&value.to_le_bytes());
}

/// A Generic Address Structure at `table_offset`.
fn put_gas(body: &mut [u8], table_offset: usize, space: u8, width: u8, address: u64) {
    let at = table_offset - 36;
    body[at..at + 4].copy_from_slice(&[space, width, 0, 3]);
    body[at + 4..at + 12].copy_from_slice(&address.to_le_bytes());
}

/// An ACPI 1.0 FADT (revision 1, 116 bytes): the PM timer at a port
/// (QEMU's is 0x608), 24 bits.
#[test]
fn acpi1_fadt_names_the_port() {
    let mut body = fadt_body(116);
    put_u32(&mut body, 76, 0x608);
    body[91 - 36] = 4;
    let fadt = parse_fadt(&sdt(b"FACP", 1, &body)).unwrap();
    assert_eq!(fadt.pm_timer, Some(PmTimer { block: PmTimerBlock::Port(0x608), wide: false }));
    assert!(!fadt.hardware_reduced);
}

#[test]
fn the_extended_block_wins_and_tmr_val_ext_widens() {
    let mut body = fadt_body(276);
    put_u32(&mut body, 76, 0x408);
    body[91 - 36] = 4;
    put_u32(&mut body, 112, 1 << 8);
    put_gas(&mut body, 208, 1, 32, 0x608);
    let fadt = parse_fadt(&sdt(b"FACP", 6, &body)).unwrap();
    assert_eq!(fadt.pm_timer, Some(PmTimer { block: PmTimerBlock::Port(0x608), wide: true }));
    // In memory space.
    put_gas(&mut body, 208, 0, 32, 0xfed0_0808);
    let fadt = parse_fadt(&sdt(b"FACP", 6, &body)).unwrap();
    assert_eq!(fadt.pm_timer.unwrap().block, PmTimerBlock::Memory(0xfed0_0808));
    // In a space the kernel cannot read (PCI configuration): none.
    put_gas(&mut body, 208, 2, 32, 0x608);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().pm_timer, None);
    // An empty extended block: the 32-bit one counts.
    put_gas(&mut body, 208, 0, 0, 0);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().pm_timer.unwrap().block, PmTimerBlock::Port(0x408));
}

#[test]
fn no_timer_when_absent_or_malformed_or_hardware_reduced() {
    let mut body = fadt_body(244);
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().pm_timer, None);
    // A block whose length is not 4.
    put_u32(&mut body, 76, 0x608);
    body[91 - 36] = 2;
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().pm_timer, None);
    // A port beyond 16 bits.
    body[91 - 36] = 4;
    put_u32(&mut body, 76, 0x1_0608);
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().pm_timer, None);
    // Hardware-reduced ACPI has no fixed hardware, whatever the fields say.
    put_u32(&mut body, 76, 0x608);
    put_u32(&mut body, 112, 1 << 20);
    let fadt = parse_fadt(&sdt(b"FACP", 5, &body)).unwrap();
    assert_eq!((fadt.pm_timer, fadt.hardware_reduced), (None, true));
}

#[test]
fn short_or_foreign_tables_are_errors() {
    // Too short for the flags.
    let body = fadt_body(100);
    assert!(matches!(parse_fadt(&sdt(b"FACP", 1, &body)), Err(AcpiError::Truncated { need: 116, .. })));
    // A length field that claims less than the bytes there: trusted.
    let mut table = sdt(b"FACP", 1, &fadt_body(116));
    table[4..8].copy_from_slice(&60u32.to_le_bytes());
    assert!(matches!(parse_fadt(&table), Err(AcpiError::Truncated { have: 60, .. })));
    // A header alone, or less.
    assert!(matches!(parse_fadt(&table[..20]), Err(AcpiError::Truncated { .. })));
    assert!(matches!(parse_fadt(&sdt(b"APIC", 1, &fadt_body(116))), Err(AcpiError::BadSignature { .. })));
}

/// An HPET table: event timer block ID, base address, number, minimum
/// tick, page protection.
fn hpet(space: u8, address: u64) -> Vec<u8> {
    let mut body = vec![0u8; 20];
    body[..4].copy_from_slice(&0x8086_a201u32.to_le_bytes());
    body[4..8].copy_from_slice(&[space, 64, 0, 0]);
    body[8..16].copy_from_slice(&address.to_le_bytes());
    sdt(b"HPET", 1, &body)
}

#[test]
fn hpet_base_address() {
    assert_eq!(parse_hpet(&hpet(0, 0xfed0_0000)), Ok(0xfed0_0000));
    assert_eq!(parse_hpet(&hpet(0, 0x1_2345_6000)), Ok(0x1_2345_6000));
}

#[test]
fn unusable_hpet_tables_are_errors() {
    for (space, address) in [(1, 0xfed0_0000), (0, 0), (0, 0xfed0_0004)] {
        assert_eq!(
            parse_hpet(&hpet(space, address)),
            Err(AcpiError::BadRegister { table: *b"HPET", space, address }),
            "space {space} address {address:#x}"
        );
    }
    let short = hpet(0, 0xfed0_0000);
    let mut short = short[..50].to_vec();
    short[4..8].copy_from_slice(&50u32.to_le_bytes());
    assert!(matches!(parse_hpet(&short), Err(AcpiError::Truncated { .. })));
    assert!(matches!(parse_hpet(&sdt(b"FACP", 1, &[0; 20])), Err(AcpiError::BadSignature { .. })));
}

#[test]
fn spcr_names_the_uart() {
    // Interface type 0 (16550), reserved, then the base address: COM2.
    let mut body = vec![0u8; 44];
    body[4..8].copy_from_slice(&[1, 8, 0, 1]);
    body[8..16].copy_from_slice(&0x2f8u64.to_le_bytes());
    let gas = parse_spcr(&sdt(b"SPCR", 2, &body)).unwrap();
    assert_eq!(gas, GenericAddress { space: 1, bit_width: 8, address: 0x2f8 });
    assert!(matches!(parse_spcr(&sdt(b"SPCR", 2, &body[..10])), Err(AcpiError::Truncated { .. })));
    assert!(matches!(parse_spcr(&sdt(b"HPET", 2, &body)), Err(AcpiError::BadSignature { .. })));
}

/// QEMU's q35 FADT: reset register at I/O port 0xCF9, value 6.
#[test]
fn reset_register_where_supported() {
    let mut body = fadt_body(244);
    put_gas(&mut body, 116, 1, 8, 0xcf9);
    body[128 - 36] = 6;
    // Without RESET_REG_SUP the register does not count.
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().reset, None);
    put_u32(&mut body, 112, 1 << 10);
    let want = ResetRegister { register: GenericAddress { space: 1, bit_width: 8, address: 0xcf9 }, value: 6 };
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().reset, Some(want));
    // In PCI configuration space (device 0x1f, function 0, offset 0x44).
    put_gas(&mut body, 116, 2, 8, 0x001f_0000_0044);
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().reset.unwrap().register.space, 2);
    // An address of 0, or a space the kernel cannot write: none.
    put_gas(&mut body, 116, 1, 8, 0);
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().reset, None);
    put_gas(&mut body, 116, 3, 8, 0x62);
    assert_eq!(parse_fadt(&sdt(b"FACP", 5, &body)).unwrap().reset, None);
    // An ACPI 1.0 FADT ends before the register: none.
    let mut short = fadt_body(116);
    put_u32(&mut short, 112, 1 << 10);
    assert_eq!(parse_fadt(&sdt(b"FACP", 1, &short)).unwrap().reset, None);
}

/// The port QEMU's PIIX4 and ICH9 put PM1a_CNT at (PM base 0x600 + 4, and
/// 0xb000 + 4 on pc), as an I/O register of `len` bytes.
fn port(address: u64, len: u8) -> GenericAddress {
    GenericAddress { space: GenericAddress::IO, bit_width: len * 8, address }
}

/// An ACPI 1.0 FADT: the 32-bit PM1 control ports and DSDT address.
#[test]
fn acpi1_pm1_control_ports_and_dsdt() {
    let mut body = fadt_body(116);
    put_u32(&mut body, 40, 0x7fe_0040);
    put_u32(&mut body, 64, 0x604);
    body[89 - 36] = 2;
    let fadt = parse_fadt(&sdt(b"FACP", 1, &body)).unwrap();
    assert_eq!((fadt.pm1a_control, fadt.pm1b_control), (Some(port(0x604, 2)), None));
    assert_eq!((fadt.sleep_control, fadt.dsdt), (None, Some(0x7fe_0040)));
    // PM1b where the firmware has one.
    put_u32(&mut body, 68, 0x644);
    assert_eq!(parse_fadt(&sdt(b"FACP", 1, &body)).unwrap().pm1b_control, Some(port(0x644, 2)));
    // PM1_CNT_LEN below 2, or a port beyond 16 bits: no block.
    body[89 - 36] = 1;
    let fadt = parse_fadt(&sdt(b"FACP", 1, &body)).unwrap();
    assert_eq!((fadt.pm1a_control, fadt.pm1b_control), (None, None));
    body[89 - 36] = 2;
    put_u32(&mut body, 64, 0x1_0604);
    assert_eq!(parse_fadt(&sdt(b"FACP", 1, &body)).unwrap().pm1a_control, None);
    // No DSDT address at all.
    put_u32(&mut body, 40, 0);
    assert_eq!(parse_fadt(&sdt(b"FACP", 1, &body)).unwrap().dsdt, None);
}

#[test]
fn extended_pm1_control_blocks_and_dsdt_win() {
    let mut body = fadt_body(276);
    put_u32(&mut body, 40, 0x7fe_0040);
    put_u32(&mut body, 64, 0x404);
    put_u32(&mut body, 68, 0x444);
    body[89 - 36] = 2;
    body[140 - 36..148 - 36].copy_from_slice(&0x1_0000_0040u64.to_le_bytes());
    put_gas(&mut body, 172, 1, 16, 0x604);
    put_gas(&mut body, 184, 0, 16, 0xfed8_0004);
    let fadt = parse_fadt(&sdt(b"FACP", 6, &body)).unwrap();
    assert_eq!(fadt.pm1a_control, Some(port(0x604, 2)));
    assert_eq!(fadt.pm1b_control, Some(GenericAddress { space: 0, bit_width: 16, address: 0xfed8_0004 }));
    assert_eq!(fadt.dsdt, Some(0x1_0000_0040));
    // Empty extended fields: the 32-bit ones count.
    put_gas(&mut body, 172, 0, 0, 0);
    put_gas(&mut body, 184, 0, 0, 0);
    body[140 - 36..148 - 36].fill(0);
    let fadt = parse_fadt(&sdt(b"FACP", 6, &body)).unwrap();
    assert_eq!((fadt.pm1a_control, fadt.pm1b_control), (Some(port(0x404, 2)), Some(port(0x444, 2))));
    assert_eq!(fadt.dsdt, Some(0x7fe_0040));
    // An extended block in a space the kernel cannot write: none, and
    // not the 32-bit one either (the firmware said where it is).
    put_gas(&mut body, 172, 2, 16, 0x604);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().pm1a_control, None);
}

/// Hardware-reduced ACPI (ACPI 5.0+): no PM1 blocks; the sleep control
/// register instead.
#[test]
fn hardware_reduced_sleeps_through_the_sleep_control_register() {
    let mut body = fadt_body(276);
    put_u32(&mut body, 64, 0x604);
    body[89 - 36] = 2;
    put_u32(&mut body, 112, 1 << 20);
    put_gas(&mut body, 244, 1, 8, 0x3b0);
    let fadt = parse_fadt(&sdt(b"FACP", 6, &body)).unwrap();
    assert_eq!((fadt.hardware_reduced, fadt.pm1a_control), (true, None));
    assert_eq!(fadt.sleep_control, Some(GenericAddress { space: 1, bit_width: 8, address: 0x3b0 }));
    // In memory space; at 0 or in another space: none.
    put_gas(&mut body, 244, 0, 8, 0xfed8_0000);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().sleep_control.unwrap().space, 0);
    put_gas(&mut body, 244, 1, 8, 0);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().sleep_control, None);
    put_gas(&mut body, 244, 3, 8, 0x62);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().sleep_control, None);
    // A FADT of ACPI 4 (244 bytes) ends before the register.
    let mut short = fadt_body(244);
    put_u32(&mut short, 112, 1 << 20);
    assert_eq!(parse_fadt(&sdt(b"FACP", 4, &short)).unwrap().sleep_control, None);
}

/// The PM1a event block and the SCI's line: 32-bit fields, the extended
/// one winning, none on hardware-reduced ACPI.
#[test]
fn pm1_event_block_and_sci() {
    let mut body = fadt_body(276);
    body[46 - 36..48 - 36].copy_from_slice(&9u16.to_le_bytes());
    put_u32(&mut body, 56, 0x600);
    body[88 - 36] = 4;
    let fadt = parse_fadt(&sdt(b"FACP", 1, &body)).unwrap();
    assert_eq!((fadt.pm1a_event, fadt.sci_irq), (Some(port(0x600, 4)), Some(9)));
    // Too short for status and enable: none.
    body[88 - 36] = 2;
    assert_eq!(parse_fadt(&sdt(b"FACP", 1, &body)).unwrap().pm1a_event, None);
    body[88 - 36] = 4;
    put_gas(&mut body, 148, 1, 32, 0xb000);
    assert_eq!(parse_fadt(&sdt(b"FACP", 6, &body)).unwrap().pm1a_event, Some(port(0xb000, 4)));
    // Hardware-reduced: neither.
    put_u32(&mut body, 112, 1 << 20);
    let fadt = parse_fadt(&sdt(b"FACP", 6, &body)).unwrap();
    assert_eq!((fadt.pm1a_event, fadt.sci_irq), (None, None));
}
