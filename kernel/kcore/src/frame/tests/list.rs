//! The fixed-capacity range list: nothing reserved is ever lost.

use crate::frame::{Range, RangeList};

fn covered(list: &[Range], r: Range) -> bool {
    list.iter().any(|item| item.contains_range(&r))
}

#[test]
fn holds_what_fits_in_order() {
    let mut list = RangeList::<4>::new();
    list.push_or_drop(Range::new(0x1000, 0x2000));
    list.push_or_drop(Range::new(5, 5)); // empty: ignored
    list.push_or_merge(Range::new(0x8000, 0x9000));
    assert_eq!(list.as_slice(), [Range::new(0x1000, 0x2000), Range::new(0x8000, 0x9000)]);
    assert_eq!((list.dropped(), list.merged()), (0, 0));
}

/// A map of 300 reserved areas after the kernel's own ranges, in a list of
/// 256: the kernel's ranges stay exact, and every area is still covered.
#[test]
fn a_long_map_keeps_every_reservation() {
    let own = [Range::new(0x20_0000, 0x2d_6000), Range::new(0x9e_0000, 0x9f_0000)];
    let areas: Vec<Range> = (0..300u64)
        .map(|i| Range::new(0x1_0000_0000 + i * 0x10_0000, 0x1_0000_0000 + i * 0x10_0000 + 0x1000))
        .collect();
    let mut list = RangeList::<256>::new();
    for r in own.iter().chain(&areas) {
        list.push_or_merge(*r);
    }
    assert_eq!(&list.as_slice()[..2], own);
    assert_eq!(list.as_slice().len(), 256);
    assert_eq!(list.merged(), 300 + 2 - 256);
    for r in own.iter().chain(&areas) {
        assert!(covered(list.as_slice(), *r), "{r:?} lost");
    }
}

/// Usable areas past the capacity are dropped and counted, never merged
/// (a hull of usable areas would take in what lies between them).
#[test]
fn usable_areas_past_capacity_are_dropped() {
    let mut list = RangeList::<2>::new();
    for i in 0..5u64 {
        list.push_or_drop(Range::new(i * 0x10000, i * 0x10000 + 0x1000));
    }
    assert_eq!(list.as_slice(), [Range::new(0, 0x1000), Range::new(0x10000, 0x11000)]);
    assert_eq!(list.dropped(), 3);
}

/// A merge takes in a range below the last one too.
#[test]
fn merging_widens_both_ways() {
    let mut list = RangeList::<1>::new();
    list.push_or_merge(Range::new(0x5000, 0x6000));
    list.push_or_merge(Range::new(0x1000, 0x2000));
    list.push_or_merge(Range::new(0x9000, 0xa000));
    assert_eq!(list.as_slice(), [Range::new(0x1000, 0xa000)]);
    assert_eq!(list.merged(), 2);
    let mut none = RangeList::<0>::new();
    none.push_or_merge(Range::new(0, 0x1000));
    assert!(none.as_slice().is_empty());
}
