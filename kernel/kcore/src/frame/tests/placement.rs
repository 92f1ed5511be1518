//! `place` and `choose_trampoline_page`.

use super::{r, GIB, MIB};
use crate::frame::{choose_trampoline_page, place, Range, FRAME_SIZE, LOW_MEMORY_END};

/// A QEMU-like map: conventional memory up to the EBDA, then RAM from 1 MiB.
const QEMU_USABLE: [Range; 2] = [r(0, 0x9_FC00), r(MIB, 512 * MIB)];

#[test]
fn place_takes_the_lowest_address_at_or_above_1_mib() {
    assert_eq!(place(&QEMU_USABLE, &[], 0x1000, u64::MAX), Some(MIB));
    // Usable RAM starting at 0 is still not used below 1 MiB.
    assert_eq!(place(&[r(0, 4 * MIB)], &[], 0x1000, u64::MAX), Some(LOW_MEMORY_END));
}

#[test]
fn place_refuses_memory_below_1_mib() {
    assert_eq!(place(&[r(0x1000, 0x9_F000)], &[], 0x1000, u64::MAX), None);
    // A range straddling 1 MiB only counts from 1 MiB up.
    assert_eq!(place(&[r(0x8_0000, MIB + 0x1000)], &[], 0x2000, u64::MAX), None);
    assert_eq!(place(&[r(0x8_0000, MIB + 0x1000)], &[], 0x1000, u64::MAX), Some(MIB));
}

#[test]
fn place_avoids_reserved_ranges() {
    // Kernel image at 1 MiB with an unaligned end, boot modules after it,
    // listed out of order; the block must skip both.
    let reserved = [r(0x40_0000, 0x48_0000), r(MIB, 0x40_0800)];
    assert_eq!(place(&QEMU_USABLE, &reserved, 0x1000, u64::MAX), Some(0x48_0000));
    // A gap that is too small is skipped, a gap that is big enough is used.
    let reserved = [r(MIB, 0x20_0000), r(0x20_2000, 0x30_0000)];
    assert_eq!(place(&QEMU_USABLE, &reserved, 0x3000, u64::MAX), Some(0x30_0000));
    assert_eq!(place(&QEMU_USABLE, &reserved, 0x2000, u64::MAX), Some(0x20_0000));
    // Touching a reserved range is fine, sharing a byte with it is not.
    let reserved = [r(0x10_1001, 0x10_2000)];
    assert_eq!(place(&[r(MIB, 2 * MIB)], &reserved, 0x1000, u64::MAX), Some(MIB));
    assert_eq!(place(&[r(MIB, 2 * MIB)], &reserved, 0x1001, u64::MAX), Some(0x10_2000));
}

#[test]
fn place_reserved_wins_over_usable() {
    // Firmware reports a reserved range inside usable RAM.
    let usable = [r(MIB, 8 * MIB)];
    let reserved = [r(0, 7 * MIB)];
    assert_eq!(place(&usable, &reserved, MIB, u64::MAX), Some(7 * MIB));
    assert_eq!(place(&usable, &reserved, MIB + 1, u64::MAX), None);
}

#[test]
fn place_rounds_to_frames_and_aligns() {
    // The size rounds up to whole frames: 0x1001 bytes need 0x2000.
    let usable = [r(MIB, MIB + 0x1800)];
    assert_eq!(place(&usable, &[], 0x1000, u64::MAX), Some(MIB));
    assert_eq!(place(&usable, &[], 0x1001, u64::MAX), None);
    // An unaligned usable start rounds up.
    let usable = [r(MIB + 0x800, MIB + 0x3000)];
    assert_eq!(place(&usable, &[], 0x2000, u64::MAX), Some(MIB + 0x1000));
    assert_eq!(place(&usable, &[], 0x2001, u64::MAX), None);
    assert_eq!(place(&usable, &[], 0, u64::MAX), None, "zero bytes");
}

#[test]
fn place_honours_the_limit() {
    let usable = [r(MIB, 8 * MIB)];
    assert_eq!(place(&usable, &[], 0x1000, MIB + 0x1000), Some(MIB));
    assert_eq!(place(&usable, &[], 0x1000, MIB + 0xFFF), None);
    assert_eq!(place(&usable, &[], 0x2000, MIB + 0x1000), None);
    // Only the part of a range below the limit counts.
    let usable = [r(MIB, 0x10_2000), r(3 * GIB, 5 * GIB)];
    assert_eq!(place(&usable, &[], 0x4000, 4 * GIB), Some(3 * GIB));
    assert_eq!(place(&usable, &[], GIB, 4 * GIB), Some(3 * GIB));
    assert_eq!(place(&usable, &[], GIB + 1, 4 * GIB), None);
    assert_eq!(place(&usable, &[], GIB + 1, u64::MAX), Some(3 * GIB));
}

#[test]
fn place_needs_one_usable_range() {
    // Two adjacent entries are not assumed to be one stretch of RAM.
    let usable = [r(MIB, 2 * MIB), r(2 * MIB, 3 * MIB)];
    assert_eq!(place(&usable, &[], MIB, u64::MAX), Some(MIB));
    assert_eq!(place(&usable, &[], MIB + 1, u64::MAX), None);
}

#[test]
fn place_prefers_the_lowest_fit_across_unsorted_ranges() {
    let usable = [r(64 * MIB, 128 * MIB), r(2 * MIB, 3 * MIB), r(8 * MIB, 16 * MIB)];
    assert_eq!(place(&usable, &[], 0x1000, u64::MAX), Some(2 * MIB));
    assert_eq!(place(&usable, &[], 2 * MIB, u64::MAX), Some(8 * MIB));
    assert_eq!(place(&usable, &[r(8 * MIB, 9 * MIB)], 2 * MIB, u64::MAX), Some(9 * MIB));
}

#[test]
fn place_survives_extreme_values() {
    let top = r(u64::MAX - 0x5000, u64::MAX);
    assert_eq!(place(&[top], &[], 0x1000, u64::MAX), Some(u64::MAX - 0x4FFF));
    assert_eq!(place(&[top], &[], u64::MAX, u64::MAX), None);
    assert_eq!(place(&[top], &[r(0, u64::MAX)], 0x1000, u64::MAX), None);
    assert_eq!(place(&[r(u64::MAX, 0)], &[], 0x1000, u64::MAX), None);
    assert_eq!(place(&[], &[], 0x1000, u64::MAX), None);
}

#[test]
fn trampoline_below_an_ebda() {
    // The usual PC layout: usable to 0x9FC00, EBDA reserved above it.
    let reserved = [r(0x9_FC00, 0xA_0000), r(0xF_0000, MIB)];
    assert_eq!(choose_trampoline_page(&QEMU_USABLE, &reserved), Some(0x9_E000));
    // The same with the EBDA not reported at all: the window still stops
    // short of it.
    assert_eq!(choose_trampoline_page(&[r(0, 0xA_0000)], &[]), Some(0x9_E000));
}

#[test]
fn trampoline_skips_reserved_pages() {
    let usable = [r(0x1000, 0x9_F000)];
    // Overlaps 0x9D000 (by its start) and 0x9E000 (by its end).
    assert_eq!(choose_trampoline_page(&usable, &[r(0x9_DFFF, 0x9_E001)]), Some(0x9_C000));
    // Reserved inside usable wins.
    assert_eq!(choose_trampoline_page(&usable, &[r(0x2000, 0x9_F000)]), Some(0x1000));
    assert_eq!(choose_trampoline_page(&usable, &[r(0, MIB)]), None);
}

#[test]
fn trampoline_needs_a_whole_usable_page() {
    // 0x1000..0x2000 is whole; 0x2000..0x2800 is not a page.
    assert_eq!(choose_trampoline_page(&[r(0x500, 0x2800)], &[]), Some(0x1000));
    // Page 0 is never chosen.
    assert_eq!(choose_trampoline_page(&[r(0, 0x1000)], &[]), None);
    // Adjacent usable entries do not make a page out of two halves.
    assert_eq!(choose_trampoline_page(&[r(0x5000, 0x5800), r(0x5800, 0x6000)], &[]), None);
}

#[test]
fn trampoline_without_usable_low_memory() {
    assert_eq!(choose_trampoline_page(&[], &[]), None);
    assert_eq!(choose_trampoline_page(&[r(MIB, 4 * GIB)], &[]), None);
    // Usable only in the EBDA area above the window.
    assert_eq!(choose_trampoline_page(&[r(0x9_F000, 0xA_0000)], &[]), None);
}

#[test]
fn trampoline_page_is_a_valid_sipi_vector() {
    let page = choose_trampoline_page(&QEMU_USABLE, &[]).unwrap();
    assert_eq!(page % FRAME_SIZE, 0);
    assert!(page / FRAME_SIZE < 0x100, "SIPI vector is one byte");
}
