//! Host tests for the frame module: ranges, the bitmap allocator (directed
//! cases plus a pseudo-random churn against a model) and boot-time placement.

mod bitmap;
mod churn;
mod list;
mod placement;
mod range;

use super::{FrameBitmap, Range};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Zeroed storage of the size `FrameBitmap::new` needs for `limit`. Zeroed
/// ("all free") on purpose: `new` must overwrite it, not trust it.
fn storage(limit: u64) -> Vec<u64> {
    vec![0; FrameBitmap::words_for(limit)]
}

/// Shorthand for `Range::new`.
const fn r(start: u64, end: u64) -> Range {
    Range::new(start, end)
}

/// Allocates until the allocator runs dry and returns what it handed out.
fn drain(fb: &mut FrameBitmap<'_>) -> Vec<u64> {
    std::iter::from_fn(|| fb.allocate()).collect()
}
