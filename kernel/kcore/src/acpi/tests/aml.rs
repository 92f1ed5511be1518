//! Reading sleep states from the DSDT: QEMU's own DSDTs, hand-assembled
//! AML for what QEMU does not show, and mutations of both.
//!
//! `data/qemu-10.0-{pc,q35}-dsdt.aml` are the DSDTs QEMU 10.0.2 built for
//! `-machine pc` and `-machine q35` under SeaBIOS, as Ferrite's kernel read
//! them from guest memory (OVMF's q35 DSDT is the same bytes). Their
//! disassembly (`iasl -d`) says, in `Scope (\)`:
//! `_S3` = {1, 1, 0, 0}, `_S4` = {2, 2, 0, 0}, `_S5` = {0, 0, 0, 0}.

use super::sdt;
use crate::acpi::{sleep_type, AcpiError, SdtHeader, SleepType};
use crate::rng::XorShift64 as XorShift;

const QEMU_PC: &[u8] = include_bytes!("data/qemu-10.0-pc-dsdt.aml");
const QEMU_Q35: &[u8] = include_bytes!("data/qemu-10.0-q35-dsdt.aml");

fn sleep(a: u8, b: u8) -> Result<SleepType, AcpiError> {
    Ok(SleepType { a, b })
}

#[test]
fn qemu_dsdts_give_their_sleep_types() {
    for dsdt in [QEMU_PC, QEMU_Q35] {
        assert_eq!(sleep_type(dsdt, 5), sleep(0, 0));
        // Not all zeros, so the values are read rather than defaulted.
        assert_eq!(sleep_type(dsdt, 3), sleep(1, 1));
        assert_eq!(sleep_type(dsdt, 4), sleep(2, 2));
        // QEMU defines no S1 or S2.
        assert_eq!(sleep_type(dsdt, 1), Err(AcpiError::NoSleepState(1)));
    }
}

/// `op`, a PkgLength covering `body`, then `body`.
fn pkg(op: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = op.to_vec();
    if body.len() < 0x3f {
        out.push(body.len() as u8 + 1);
    } else {
        let total = body.len() + 2;
        if total <= 0xfff {
            out.extend_from_slice(&[0x40 | (total & 0xf) as u8, (total >> 4) as u8]);
        } else {
            let total = body.len() + 3;
            out.extend_from_slice(&[0x80 | (total & 0xf) as u8, (total >> 4) as u8, (total >> 12) as u8]);
        }
    }
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `Name (<name>, Package (<n>) { <elements> })`.
fn name_package(name: &[u8], count: u8, elements: &[u8]) -> Vec<u8> {
    cat(&[&[0x08], name, &pkg(&[0x12], &cat(&[&[count], elements]))])
}

/// A DSDT holding `aml`.
fn dsdt(aml: &[u8]) -> Vec<u8> {
    sdt(b"DSDT", 2, aml)
}

#[test]
fn packages_in_the_root_scope() {
    // Scope (\) { Name (_S5, Package (4) { 5, 7, Zero, Zero }) }
    let s5 = name_package(b"_S5_", 4, &[0x0a, 5, 0x0a, 7, 0, 0]);
    assert_eq!(sleep_type(&dsdt(&pkg(&[0x10], &cat(&[b"\\\0", &s5]))), 5), sleep(5, 7));
    // Name (\_S5, …) at the top, after other names; One and a word.
    let s5 = name_package(b"\\_S5_", 2, &[0x01, 0x0b, 6, 0]);
    let other = cat(&[&[0x08], b"ABCD", &[0x0d], b"text\0", &[0x08], b"BUF_", &pkg(&[0x11], &[0x0a, 2, 1, 2])]);
    assert_eq!(sleep_type(&dsdt(&cat(&[&other, &s5])), 5), sleep(1, 6));
    // One element packing both values.
    assert_eq!(sleep_type(&dsdt(&name_package(b"_S5_", 1, &[0x0b, 5, 7])), 5), sleep(5, 7));
}

#[test]
fn names_resolve_against_their_scope() {
    let s5 = name_package(b"_S5_", 4, &[0x0a, 5, 0x0a, 7, 0, 0]);
    // Device (\_SB.PCI0) { Name (_S5, …) } defines \_SB.PCI0._S5, not \_S5.
    let device = pkg(&[0x5b, 0x82], &cat(&[b"\\", &[0x2e], b"_SB_PCI0", &s5]));
    assert_eq!(sleep_type(&dsdt(&device), 5), Err(AcpiError::NoSleepState(5)));
    // Scope (_SB) { Name (^_S5, …) } climbs back to the root.
    let up = name_package(b"^_S5_", 4, &[0x0a, 3, 0x0a, 4, 0, 0]);
    let scope = pkg(&[0x10], &cat(&[b"_SB_", &up]));
    assert_eq!(sleep_type(&dsdt(&scope), 5), sleep(3, 4));
    // A Processor (fixed fields after its name) before it is stepped over.
    let cpu = pkg(&[0x5b, 0x83], &cat(&[b"CPU0", &[0, 0x10, 0x04, 0, 0, 6], &s5]));
    assert_eq!(sleep_type(&dsdt(&cat(&[&cpu, &scope])), 5), sleep(3, 4));
}

#[test]
fn what_is_not_read_is_reported() {
    // A method: it would need an interpreter.
    let method = pkg(&[0x14], &cat(&[b"_S5_", &[0x00, 0xa4], &pkg(&[0x12], &[4, 0, 0, 0, 0])]));
    assert!(matches!(sleep_type(&dsdt(&method), 5), Err(AcpiError::BadAml { why, .. }) if why.contains("method")));
    // Inside an If: skipped, so not found.
    let s5 = name_package(b"_S5_", 4, &[0, 0, 0, 0]);
    let conditional = pkg(&[0xa0], &cat(&[&[0x01], &s5]));
    assert_eq!(sleep_type(&dsdt(&conditional), 5), Err(AcpiError::NoSleepState(5)));
    // An unknown opcode inside a scope skips only that scope's rest...
    let odd = pkg(&[0x10], &cat(&[b"_SB_", &[0x70, 0x01, 0x60]]));
    assert_eq!(sleep_type(&dsdt(&cat(&[&odd, &s5])), 5), sleep(0, 0));
    // ...and is named when the package is then not found.
    assert_eq!(
        sleep_type(&dsdt(&odd), 5),
        Err(AcpiError::BadAml { offset: 36 + 6, why: "unknown opcode (the rest of its scope was skipped)" })
    );
    // A package of something other than constants.
    let names = name_package(b"_S5_", 2, b"ABCDABCD");
    assert!(matches!(sleep_type(&dsdt(&names), 5), Err(AcpiError::BadAml { .. })));
}

#[test]
fn bad_tables_and_states() {
    let s5 = name_package(b"_S5_", 4, &[0, 0, 0, 0]);
    assert!(matches!(sleep_type(&sdt(b"SSDT", 2, &s5), 5), Err(AcpiError::BadSignature { .. })));
    assert!(matches!(sleep_type(&dsdt(&s5)[..20], 5), Err(AcpiError::Truncated { .. })));
    assert_eq!(sleep_type(&dsdt(&s5), 6), Err(AcpiError::NoSleepState(6)));
    // Cut off inside the package.
    let cut = dsdt(&s5);
    let mut cut = cut[..cut.len() - 2].to_vec();
    let len = cut.len() as u32;
    cut[4..8].copy_from_slice(&len.to_le_bytes());
    assert!(matches!(sleep_type(&cut, 5), Err(AcpiError::BadAml { .. })));
}

/// Mutated QEMU DSDTs and hand-made AML: never a panic, whatever comes back.
#[test]
fn mutations_never_panic() {
    let mut rng = XorShift::new(0x5_5eed);
    let nested =
        pkg(&[0x10], &cat(&[b"\\\0", &pkg(&[0x5b, 0x82], &cat(&[b"DEV_", &name_package(b"^_S5_", 1, &[0])]))]));
    let seeds = [QEMU_PC.to_vec(), QEMU_Q35.to_vec(), dsdt(&nested)];
    for round in 0..3000 {
        let mut table = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.index(4) {
            let len = table.len();
            if len <= SdtHeader::SIZE {
                break;
            }
            let at = 36 + rng.index(len - 36);
            match rng.index(4) {
                0 => table[at] ^= 1 << rng.index(8),
                1 => table[at] = [0x00, 0x08, 0x10, 0x12, 0x14, 0x2e, 0x2f, 0x5b, 0x5c, 0x5e, 0xff][rng.index(11)],
                2 => table.truncate(at),
                _ => table.insert(at, rng.next_u64() as u8),
            }
        }
        let _ = sleep_type(&table, 5);
    }
    // Scopes nested deeper than the reader follows: an error, not a stack
    // overflow.
    let mut deep = name_package(b"_S5_", 1, &[0]);
    for _ in 0..40 {
        deep = pkg(&[0x10], &cat(&[b"A___", &deep]));
    }
    assert!(matches!(sleep_type(&dsdt(&deep), 5), Err(AcpiError::BadAml { why: "scopes nest too deep", .. })));
}
