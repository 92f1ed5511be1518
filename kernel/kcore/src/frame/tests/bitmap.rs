//! Directed tests of `FrameBitmap`: setup from memory maps, allocation
//! order, the hint, errors and the counters.

use super::{drain, r, storage, GIB, MIB};
use crate::frame::{FrameBitmap, FrameError, FRAME_SIZE};

#[test]
fn words_for_rounds_frames_up_to_words() {
    assert_eq!(FrameBitmap::words_for(0), 0);
    assert_eq!(FrameBitmap::words_for(FRAME_SIZE - 1), 0, "no whole frame");
    assert_eq!(FrameBitmap::words_for(FRAME_SIZE), 1);
    assert_eq!(FrameBitmap::words_for(64 * FRAME_SIZE), 1);
    assert_eq!(FrameBitmap::words_for(65 * FRAME_SIZE), 2);
    assert_eq!(FrameBitmap::words_for(4 * GIB), 16 * 1024);
    // Usable in const context, to size a static.
    const WORDS: usize = FrameBitmap::words_for(2 * MIB);
    assert_eq!(WORDS, 8);
}

#[test]
fn new_rejects_small_storage() {
    let mut bits = vec![0; FrameBitmap::words_for(MIB) - 1];
    assert_eq!(FrameBitmap::new(&mut bits, MIB).unwrap_err(), FrameError::BitmapTooSmall);
}

#[test]
fn new_starts_all_used_and_ignores_extra_storage() {
    let mut bits = vec![0x1234; FrameBitmap::words_for(MIB) + 3];
    {
        let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
        assert_eq!(fb.limit(), MIB);
        assert_eq!(fb.free_frames(), 0);
        assert_eq!(fb.usable_frames(), 0);
        assert!(!fb.is_free(0x1000));
        assert_eq!(fb.allocate(), None);
        assert_eq!(fb.allocate_contiguous(1, 1, MIB), None);
        fb.check_invariants();
    }
    assert_eq!(&bits[bits.len() - 3..], &[0x1234; 3], "words past words_for untouched");
}

#[test]
fn unaligned_limit_rounds_down() {
    let limit = 10 * FRAME_SIZE + 0x800;
    let mut bits = storage(limit);
    let mut fb = FrameBitmap::new(&mut bits, limit).unwrap();
    assert_eq!(fb.limit(), 10 * FRAME_SIZE);
    fb.add_usable(r(0, limit));
    assert_eq!(fb.free_frames(), 10, "the partial frame at the top is not covered");
    assert!(!fb.is_free(10 * FRAME_SIZE));
    fb.check_invariants();
}

#[test]
fn tail_bits_past_the_limit_are_never_handed_out() {
    // 70 frames: the second word has 6 real frames and 58 tail bits.
    let limit = 70 * FRAME_SIZE;
    let mut bits = storage(limit);
    let mut fb = FrameBitmap::new(&mut bits, limit).unwrap();
    fb.add_usable(r(0, u64::MAX));
    let got = drain(&mut fb);
    assert_eq!(got, (0..70).map(|f| f * FRAME_SIZE).collect::<Vec<_>>());
    assert_eq!(fb.free(70 * FRAME_SIZE), Err(FrameError::OutOfRange));
    fb.check_invariants();
}

#[test]
fn unaligned_usable_edges_shrink_to_whole_frames() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0x1800, 0x5800));
    assert_eq!(fb.free_frames(), 3);
    assert!(!fb.is_free(0x1000), "only half backed");
    assert!(fb.is_free(0x2000) && fb.is_free(0x3000) && fb.is_free(0x4000));
    assert!(!fb.is_free(0x5000), "only half backed");
    assert!(fb.is_free(0x2800), "is_free asks about the frame holding the address");
    assert!(!fb.is_free(u64::MAX));
    // Less than a frame, or an unaligned stretch inside one frame: nothing.
    fb.add_usable(r(0x7100, 0x7F00));
    fb.add_usable(r(0x9800, 0xA800));
    assert_eq!(fb.free_frames(), 3);
    fb.check_invariants();
}

#[test]
fn unaligned_reserved_edges_grow_to_whole_frames() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0x1000, 0x6000));
    // Touches 0x2000 by its last byte and 0x3000 by its first.
    fb.reserve(r(0x2FFF, 0x3001));
    assert_eq!(fb.free_frames(), 3);
    assert!(fb.is_free(0x1000) && !fb.is_free(0x2000) && !fb.is_free(0x3000));
    assert_eq!(fb.usable_frames(), 3);
    // An empty reserved range touches nothing.
    fb.reserve(r(0x4800, 0x4800));
    assert!(fb.is_free(0x4000));
    fb.check_invariants();
}

#[test]
fn holes_between_regions_are_never_allocated() {
    let mut bits = storage(8 * MIB);
    let mut fb = FrameBitmap::new(&mut bits, 8 * MIB).unwrap();
    // Given out of order, as firmware may.
    fb.add_usable(r(3 * MIB, 4 * MIB));
    fb.add_usable(r(MIB, 2 * MIB));
    fb.add_usable(r(6 * MIB, 6 * MIB + 2 * FRAME_SIZE));
    let expected_count = 2 * MIB / FRAME_SIZE + 2;
    assert_eq!(fb.free_frames(), expected_count);
    let got = drain(&mut fb);
    assert_eq!(got.len() as u64, expected_count);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "lowest first");
    let in_region = |a: u64| {
        (MIB..2 * MIB).contains(&a)
            || (3 * MIB..4 * MIB).contains(&a)
            || (6 * MIB..6 * MIB + 2 * FRAME_SIZE).contains(&a)
    };
    assert!(got.iter().all(|&a| in_region(a)));
    assert_eq!(got[0], MIB);
    assert_eq!(*got.last().unwrap(), 6 * MIB + FRAME_SIZE);
    assert_eq!(fb.free_frames(), 0);
    fb.check_invariants();
}

/// A typical large-memory map: RAM below the 32-bit PCI hole and RAM
/// remapped above 4 GiB.
#[test]
fn memory_above_4_gib() {
    let limit = 0x1_4000_0000;
    let low = r(0x10_0000, 0xBFFE_0000);
    let high = r(0x1_0000_0000, 0x1_4000_0000);
    let mut bits = storage(limit);
    let mut fb = FrameBitmap::new(&mut bits, limit).unwrap();
    fb.add_usable(r(0, 0x9_FC00));
    fb.add_usable(low);
    fb.add_usable(high);
    fb.reserve(r(0, MIB));
    let expected = low.len() / FRAME_SIZE + high.len() / FRAME_SIZE;
    assert_eq!(fb.usable_frames(), expected);
    assert_eq!(fb.free_frames(), expected);
    assert!(!fb.is_free(0xBFFE_0000), "PCI hole");
    assert!(!fb.is_free(0xFFFF_F000), "PCI hole");
    assert!(fb.is_free(0x1_0000_0000));
    assert!(fb.is_free(0x1_3FFF_F000));

    assert_eq!(fb.allocate(), Some(0x10_0000));
    assert_eq!(fb.allocate_below(4 * GIB), Some(0x10_1000));
    let got = drain(&mut fb);
    assert_eq!(got.len() as u64, expected - 2);
    assert_eq!(*got.last().unwrap(), 0x1_3FFF_F000);
    assert!(got.iter().all(|&a| low.contains(a) || high.contains(a)));
    // The hole boundary is crossed in one step.
    let first_high = got.iter().position(|&a| a >= 4 * GIB).unwrap();
    assert_eq!(got[first_high - 1], 0xBFFD_F000);
    assert_eq!(got[first_high], 0x1_0000_0000);

    fb.free(0x1_2000_0000).unwrap();
    assert_eq!(fb.allocate_below(4 * GIB), None, "only high memory is free");
    assert_eq!(fb.allocate(), Some(0x1_2000_0000), "allocate_below left the hint usable");
    fb.check_invariants();
}

#[test]
fn reserved_wins_over_overlapping_usable() {
    let mut bits = storage(16 * MIB);
    let mut fb = FrameBitmap::new(&mut bits, 16 * MIB).unwrap();
    fb.add_usable(r(0, 0xA_0000));
    fb.add_usable(r(MIB, 16 * MIB));
    // Buggy firmware: an ACPI range inside usable RAM, an EBDA inside the
    // usable low range, and a reserved range straddling the limit.
    fb.reserve(r(0x9_FC00, 0x10_0000));
    fb.reserve(r(0x20_0000, 0x20_3000));
    fb.reserve(r(15 * MIB, 17 * MIB));
    assert!(!fb.is_free(0x9_F000), "EBDA frame");
    assert!(fb.is_free(0x9_E000));
    assert!(!fb.is_free(0x20_0000) && !fb.is_free(0x20_2000));
    assert!(fb.is_free(0x20_3000));
    assert!(!fb.is_free(15 * MIB));
    let expected = 0x9F + (14 * MIB - 0x3000) / FRAME_SIZE;
    assert_eq!(fb.usable_frames(), expected);
    assert_eq!(fb.free_frames(), expected);
    // Re-adding RAM that is already free changes nothing.
    fb.add_usable(r(MIB, 2 * MIB));
    assert_eq!(fb.free_frames(), expected);
    let got = drain(&mut fb);
    assert!(!got.iter().any(|&a| (0x20_0000..0x20_3000).contains(&a)));
    assert!(!got.iter().any(|&a| a >= 15 * MIB));
    fb.check_invariants();
}

#[test]
fn ranges_beyond_the_limit_are_clipped() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(2 * MIB, 4 * MIB));
    assert_eq!(fb.free_frames(), 0);
    fb.add_usable(r(MIB - 2 * FRAME_SIZE, 4 * MIB));
    assert_eq!(fb.free_frames(), 2);
    fb.reserve(r(MIB - FRAME_SIZE, u64::MAX));
    assert_eq!(fb.free_frames(), 1);
    // Extreme values must not overflow the rounding.
    fb.add_usable(r(u64::MAX - 10, u64::MAX));
    fb.reserve(r(u64::MAX - 10, u64::MAX));
    fb.add_usable(r(u64::MAX, 0));
    assert_eq!(fb.free_frames(), 1);
    fb.check_invariants();
}

#[test]
fn freed_frames_are_reused_lowest_first() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0, 200 * FRAME_SIZE));
    let all = drain(&mut fb);
    assert_eq!(all.len(), 200);
    // Free in scrambled order, across words, after the hint has run to the end.
    for addr in [150, 5, 70, 3, 199] {
        fb.free(addr * FRAME_SIZE).unwrap();
    }
    assert_eq!(fb.free_frames(), 5);
    let again = drain(&mut fb);
    assert_eq!(again, [3, 5, 70, 150, 199].map(|f| f * FRAME_SIZE));
    fb.check_invariants();
}

#[test]
fn free_errors() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0x10_000, 0x20_000));
    let a = fb.allocate().unwrap();
    assert_eq!(fb.free(a + 1), Err(FrameError::NotAligned));
    assert_eq!(fb.free(a + 0x800), Err(FrameError::NotAligned));
    assert_eq!(fb.free(MIB), Err(FrameError::OutOfRange));
    assert_eq!(fb.free(!(FRAME_SIZE - 1)), Err(FrameError::OutOfRange));
    assert_eq!(fb.free(a), Ok(()));
    assert_eq!(fb.free(a), Err(FrameError::DoubleFree));
    // Never allocated, still free: also a double free.
    assert_eq!(fb.free(0x1F_000), Err(FrameError::DoubleFree));
    // Errors change nothing.
    assert_eq!(fb.free_frames(), 16);
    fb.check_invariants();
}

#[test]
fn allocate_below_honours_the_limit() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0x8000, 0xC000));
    fb.add_usable(r(0x80_000, MIB));
    assert_eq!(fb.allocate_below(0x8000), None, "nothing below");
    assert_eq!(fb.allocate_below(0x8FFF), None, "0x8000 does not end below 0x8FFF");
    assert_eq!(fb.allocate_below(0x9000), Some(0x8000));
    assert_eq!(fb.allocate_below(0x9000), None);
    assert_eq!(fb.allocate_below(0xB800), Some(0x9000));
    assert_eq!(fb.allocate_below(0xB800), Some(0xA000));
    assert_eq!(fb.allocate_below(0xB800), None, "0xB000 straddles the limit");
    assert_eq!(fb.allocate_below(0x80_000), Some(0xB000));
    assert_eq!(fb.allocate_below(0x80_000), None);
    assert_eq!(fb.allocate_below(0), None);
    assert_eq!(fb.allocate_below(u64::MAX), Some(0x80_000), "a limit above the cover is no limit");
    let before = fb.free_frames();
    assert_eq!(fb.allocate_below(0x80_000), None);
    assert_eq!(fb.free_frames(), before, "failure takes nothing");
    assert_eq!(fb.allocate(), Some(0x81_000));
    fb.check_invariants();
}

#[test]
fn allocate_contiguous_alignment_and_limits() {
    let mut bits = storage(4 * MIB);
    let mut fb = FrameBitmap::new(&mut bits, 4 * MIB).unwrap();
    // Frames 1..=9 and 16..=300: the first run is misaligned for 8.
    fb.add_usable(r(FRAME_SIZE, 10 * FRAME_SIZE));
    fb.add_usable(r(16 * FRAME_SIZE, 301 * FRAME_SIZE));
    let pool = fb.free_frames();

    assert_eq!(fb.allocate_contiguous(3, 1, u64::MAX), Some(FRAME_SIZE));
    assert_eq!(fb.allocate_contiguous(4, 2, u64::MAX), Some(4 * FRAME_SIZE));
    // Frames 8 and 9 are left, too few for 4: the run comes from 16.
    assert_eq!(fb.allocate_contiguous(4, 4, u64::MAX), Some(16 * FRAME_SIZE));
    // Aligned to 64 frames (256 KiB): frame 64, crossing no hole.
    assert_eq!(fb.allocate_contiguous(100, 64, u64::MAX), Some(64 * FRAME_SIZE));
    // Spans a word boundary and does not fit below frame 64 (20..64 is 44).
    assert_eq!(fb.allocate_contiguous(50, 1, u64::MAX), Some(164 * FRAME_SIZE));
    assert_eq!(fb.free_frames(), pool - 3 - 4 - 4 - 100 - 50);
    // Single frames still come lowest first, from the leftovers.
    assert_eq!(fb.allocate(), Some(8 * FRAME_SIZE));
    fb.check_invariants();
}

#[test]
fn allocate_contiguous_failures() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0x10_000, 0x20_000)); // frames 16..32
    fb.add_usable(r(0x30_000, 0x38_000)); // frames 48..56
    let pool = fb.free_frames();
    assert_eq!(fb.allocate_contiguous(0, 1, u64::MAX), None, "zero frames");
    assert_eq!(fb.allocate_contiguous(17, 1, u64::MAX), None, "no run that long");
    assert_eq!(fb.allocate_contiguous(25, 1, u64::MAX), None, "more than is free");
    assert_eq!(fb.allocate_contiguous(4, 32, u64::MAX), None, "frame 32 is not free");
    assert_eq!(fb.allocate_contiguous(8, 1, 0x17_000), None, "does not end below limit");
    assert_eq!(fb.allocate_contiguous(usize::MAX, 1, u64::MAX), None);
    assert_eq!(fb.allocate_contiguous(1, usize::MAX, u64::MAX), None);
    assert_eq!(fb.free_frames(), pool, "failures take nothing");
    // Now the successes around the same edges.
    assert_eq!(fb.allocate_contiguous(8, 1, 0x18_000), Some(0x10_000));
    assert_eq!(fb.allocate_contiguous(8, 0, u64::MAX), Some(0x18_000), "align 0 = 1");
    assert_eq!(fb.allocate_contiguous(4, 16, u64::MAX), Some(0x30_000));
    fb.check_invariants();
}

#[test]
fn contiguous_frames_are_freed_one_by_one() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(MIB / 2, MIB));
    let pool = fb.free_frames();
    let base = fb.allocate_contiguous(10, 1, u64::MAX).unwrap();
    for i in 0..10 {
        assert!(!fb.is_free(base + i * FRAME_SIZE));
        fb.free(base + i * FRAME_SIZE).unwrap();
    }
    assert_eq!(fb.free_frames(), pool);
    fb.check_invariants();
}

#[test]
fn counts_return_to_start_after_churn() {
    let limit = 64 * MIB;
    let mut bits = storage(limit);
    let mut fb = FrameBitmap::new(&mut bits, limit).unwrap();
    fb.add_usable(r(0, 0x9_FC00));
    fb.add_usable(r(MIB, limit));
    fb.reserve(r(0, MIB));
    fb.reserve(r(MIB, 3 * MIB)); // a kernel image
    let (free, usable) = (fb.free_frames(), fb.usable_frames());
    assert_eq!(free, usable);
    for round in 0..3 {
        let mut held = Vec::new();
        for i in 0..2000 {
            let frame = match i % 3 {
                0 => fb.allocate(),
                1 => fb.allocate_below(16 * MIB),
                _ => fb.allocate_contiguous(1, 8, limit),
            };
            held.push(frame.unwrap());
        }
        if round == 1 {
            held.reverse();
        }
        assert_eq!(fb.free_frames(), free - 2000);
        assert_eq!(fb.usable_frames(), usable, "allocation does not change the pool");
        for addr in held {
            fb.free(addr).unwrap();
        }
        assert_eq!(fb.free_frames(), free);
        fb.check_invariants();
    }
    assert_eq!(fb.allocate(), Some(3 * MIB), "lowest frame is back on top");
}

#[test]
fn debug_is_a_summary() {
    let mut bits = storage(MIB);
    let mut fb = FrameBitmap::new(&mut bits, MIB).unwrap();
    fb.add_usable(r(0, MIB));
    let text = format!("{fb:?}");
    assert!(text.contains("limit: 0x100000"), "{text}");
    assert!(text.contains("free: 256"), "{text}");
    assert!(text.len() < 200, "must not dump the bitmap: {text}");
}
