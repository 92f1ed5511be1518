//! `Range` helpers and `FrameError` messages.

use super::r;
use crate::frame::FrameError;

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
