//! `Range` helpers and `FrameError` messages.

use super::r;
use crate::frame::FrameError;
use crate::frame::Range;

#[test]
fn len_and_emptiness() {
    assert_eq!(r(0x1000, 0x3000).len(), 0x2000);
    assert!(!r(0x1000, 0x3000).is_empty());
    assert_eq!(r(0x1000, 0x1000).len(), 0);
    assert!(r(0x1000, 0x1000).is_empty());
    // Inverted ranges (seen in broken firmware tables) are empty, not huge.
    assert_eq!(r(0x3000, 0x1000).len(), 0);
    assert!(r(0x3000, 0x1000).is_empty());
}

#[test]
fn contains_is_half_open() {
    let range = r(0x1000, 0x2000);
    assert!(!range.contains(0xFFF));
    assert!(range.contains(0x1000));
    assert!(range.contains(0x1FFF));
    assert!(!range.contains(0x2000));
    assert!(!r(5, 5).contains(5));
}

#[test]
fn contains_range() {
    let outer = r(0x1000, 0x5000);
    assert!(outer.contains_range(&outer));
    assert!(outer.contains_range(&r(0x2000, 0x3000)));
    assert!(!outer.contains_range(&r(0x800, 0x2000)));
    assert!(!outer.contains_range(&r(0x4000, 0x5001)));
    assert!(!outer.contains_range(&r(0x2000, 0x2000)), "empty ranges name no memory");
}

#[test]
fn overlaps() {
    let a = r(0x1000, 0x2000);
    assert!(a.overlaps(&r(0x1FFF, 0x3000)));
    assert!(a.overlaps(&r(0, 0x1001)));
    assert!(a.overlaps(&r(0x1400, 0x1800)), "inside");
    assert!(r(0x1400, 0x1800).overlaps(&a), "symmetric");
    assert!(!a.overlaps(&r(0x2000, 0x3000)), "adjacent above");
    assert!(!a.overlaps(&r(0, 0x1000)), "adjacent below");
    assert!(!a.overlaps(&r(0x1800, 0x1800)), "empty inside");
    assert!(!r(0x1800, 0x1800).overlaps(&a));
}

#[test]
fn display() {
    assert_eq!(r(0x100000, 0xBFFE0000).to_string(), "[0x100000, 0xbffe0000)");
}

#[test]
fn error_messages() {
    let messages = [FrameError::BitmapTooSmall, FrameError::NotAligned, FrameError::OutOfRange, FrameError::DoubleFree]
        .map(|e| e.to_string());
    assert!(messages[0].contains("too small"));
    assert!(messages[1].contains("aligned"));
    assert!(messages[2].contains("beyond"));
    assert!(messages[3].contains("double free"));
}

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;

#[test]
fn split_for_pages_keeps_large_pages_inside_the_range() {
    // QEMU's low RAM (0..0x9fc00) and RAM from 1 MiB: the first 2 MiB is
    // never mapped with a large page, and the partial page at 0x9f000 is
    // mapped whole (the EBDA is RAM).
    let [head, mid, tail] = r(0, 0x9fc00).split_for_pages(K4, M2);
    assert_eq!((head, mid.is_empty(), tail.is_empty()), (r(0, 0xa0000), true, true));
    let [head, mid, tail] = r(0x10_0000, 0x7fe_0000).split_for_pages(K4, M2);
    assert_eq!(head, r(0x10_0000, M2));
    assert_eq!(mid, r(M2, 0x7e0_0000));
    assert_eq!(tail, r(0x7e0_0000, 0x7fe_0000));
    // Every byte of a split is in exactly one part, and the large part is
    // aligned at both ends.
    for (start, end) in [(0x1234, 0x40_0567), (M2, 2 * M2), (M2 - 1, 2 * M2 + 1), (0, u64::MAX - K4)] {
        let [head, mid, tail] = r(start, end).split_for_pages(K4, M2);
        assert_eq!(head.start, start & !(K4 - 1));
        assert_eq!(head.end, mid.start);
        assert_eq!(mid.end, tail.start);
        assert!(tail.end >= end && tail.end - end < K4);
        assert_eq!(mid.start % M2, 0);
        assert_eq!(mid.end % M2, 0);
        assert!(mid.is_empty() || r(start, end + K4).contains_range(&mid));
    }
}

#[test]
fn split_for_pages_of_small_and_empty_ranges() {
    assert_eq!(r(0x3000, 0x5000).split_for_pages(K4, M2)[0], r(0x3000, 0x5000));
    assert!(r(0x3000, 0x5000).split_for_pages(K4, M2)[1].is_empty());
    assert!(r(5, 5).split_for_pages(K4, M2).iter().all(Range::is_empty));
    assert!(r(9, 5).split_for_pages(K4, M2).iter().all(Range::is_empty));
    // A range that only crosses a 2 MiB boundary gets no large page.
    assert!(r(M2 - K4, M2 + K4).split_for_pages(K4, M2)[1].is_empty());
}
