//! A fixed-capacity list of ranges, for the memory map before there is a
//! heap: the allocator's setup collects usable areas and reservations in
//! it. A map longer than the list must lose nothing that protects memory:
//! a full list drops further *usable* areas (their memory stays unused, the
//! safe side), and merges further *reserved* ones into its last entry
//! (their hull: it may then cover more than it was given, never less).

use super::Range;

/// At most `N` ranges, in the order pushed.
#[derive(Debug, Clone)]
pub struct RangeList<const N: usize> {
    items: [Range; N],
    len: usize,
    dropped: usize,
    merged: usize,
}

impl<const N: usize> Default for RangeList<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeList<N> {
    /// An empty list.
    pub const fn new() -> Self {
        RangeList { items: [Range::new(0, 0); N], len: 0, dropped: 0, merged: 0 }
    }

    /// Adds `r` if there is room; otherwise counts it as dropped. For
    /// ranges it is safe to forget (usable memory). Empty ranges are
    /// ignored.
    pub fn push_or_drop(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        if self.len < N {
            self.items[self.len] = r;
            self.len += 1;
        } else {
            self.dropped += 1;
        }
    }

    /// Adds `r` if there is room; otherwise widens the last entry to cover
    /// it as well. For ranges that must not be forgotten (reservations).
    /// Empty ranges are ignored.
    pub fn push_or_merge(&mut self, r: Range) {
        if r.is_empty() || N == 0 {
            return;
        }
        if self.len < N {
            self.items[self.len] = r;
            self.len += 1;
        } else {
            let last = &mut self.items[N - 1];
            *last = Range::new(last.start.min(r.start), last.end.max(r.end));
            self.merged += 1;
        }
    }

    /// The ranges held.
    pub fn as_slice(&self) -> &[Range] {
        &self.items[..self.len]
    }

    /// How many ranges were dropped for want of room.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// How many ranges were merged into the last entry for want of room.
    pub fn merged(&self) -> usize {
        self.merged
    }
}
