//! `SdtHeader`, `checksum_ok`, `RootTable` and the error messages.

use super::{fix_checksum, sdt};
use crate::acpi::{checksum_ok, AcpiError, RootTable, SdtHeader};

#[test]
fn header_fields_are_little_endian() {
    let table = sdt(b"TEST", 6, &[0xAA; 4]);
    let header = SdtHeader::parse(&table).unwrap();
    assert_eq!(
        header,
        SdtHeader {
            signature: *b"TEST",
            length: 40,
            revision: 6,
            checksum: table[9],
            oem_id: *b"FERRIT",
            oem_table_id: *b"TESTTABL",
            oem_revision: 0x0102_0304,
            creator_id: u32::from_le_bytes(*b"FRTC"),
            creator_revision: 7,
        }
    );
}

#[test]
fn header_needs_36_bytes() {
    let table = sdt(b"TEST", 1, &[]);
    assert_eq!(table.len(), SdtHeader::SIZE);
    assert!(SdtHeader::parse(&table).is_ok(), "exactly 36 is enough");
    for have in [0, 1, 35] {
        assert_eq!(
            SdtHeader::parse(&table[..have]),
            Err(AcpiError::Truncated { what: "table header", need: 36, have })
        );
    }
}

#[test]
fn header_parse_checks_nothing_else() {
    // A lying length and a wrong checksum still decode: judging them is the
    // caller's job, which needs the header to do it.
    let mut table = sdt(b"\0\0\0\0", 0, &[]);
    table[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    table[9] ^= 1;
    let header = SdtHeader::parse(&table).unwrap();
    assert_eq!(header.length, u32::MAX);
    assert_eq!(header.signature, [0; 4]);
}

#[test]
fn checksums() {
    assert!(checksum_ok(&[]), "nothing sums to zero");
    assert!(checksum_ok(&[0]));
    assert!(checksum_ok(&[1, 0xFF]), "wraps modulo 256");
    assert!(checksum_ok(&[0x80, 0x80]));
    assert!(!checksum_ok(&[1]));
    let mut table = sdt(b"TEST", 1, &[1, 2, 3, 250, 77]);
    assert!(checksum_ok(&table));
    table[40] ^= 0x10;
    assert!(!checksum_ok(&table));
    fix_checksum(&mut table);
    assert!(checksum_ok(&table));
}

#[test]
fn root_table_kinds() {
    assert_eq!(RootTable::Rsdt(0x1000).address(), 0x1000);
    assert_eq!(RootTable::Xsdt(0x1_0000_0000).address(), 0x1_0000_0000);
    assert_eq!(&RootTable::Rsdt(0).signature(), b"RSDT");
    assert_eq!(&RootTable::Xsdt(0).signature(), b"XSDT");
}

#[test]
fn error_messages() {
    let cases = [
        (AcpiError::Unreadable(0xE_0000), "physical memory at 0xe0000 is not readable"),
        (AcpiError::Truncated { what: "MADT", need: 120, have: 80 }, "MADT truncated: need 120 bytes, have 80"),
        (AcpiError::BadSignature { expected: *b"XSDT", found: *b"RSDT" }, "expected a 'XSDT' table, found 'RSDT'"),
        (
            AcpiError::BadSignature { expected: *b"APIC", found: [0, b'A', 0xFF, b' '] },
            "expected a 'APIC' table, found '\\x00A\\xff '",
        ),
        (
            AcpiError::BadChecksum { signature: *b"APIC", phys: 0x7FE_1234 },
            "'APIC' table at 0x7fe1234 has a bad checksum",
        ),
        (AcpiError::BadChecksum { signature: *b"APIC", phys: 0 }, "'APIC' table has a bad checksum"),
        (
            AcpiError::BadLength { signature: *b"RSDT", length: 12 },
            "'RSDT' table claims an impossible length of 12 bytes",
        ),
        (AcpiError::NotFound(*b"HPET"), "no valid 'HPET' table in the root table"),
        (AcpiError::BadEntry { offset: 44, entry_type: 9, length: 0 }, "bad MADT entry at offset 44: type 9, length 0"),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}
