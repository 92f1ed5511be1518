//! Physical memory: 4 KiB frames, address ranges and the frame allocator.
//!
//! Physical addresses are plain `u64`s and ranges are half-open byte ranges
//! ([`Range`]); nothing here knows about the bootloader's memory-map format,
//! so the kernel converts its multiboot2 entries into ranges and hands them
//! over.
//!
//! The allocator ([`FrameBitmap`]) is a bitmap, one bit per frame, over
//! storage the kernel provides. A bitmap rather than a free list because:
//!
//! - it needs no memory of its own beyond `limit / 32 KiB` bytes, which the
//!   kernel can carve out of the memory map before anything else exists
//!   (see [`place`]);
//! - building it from a messy firmware memory map is simple and robust:
//!   everything starts used, usable ranges are freed, then every reserved
//!   range is marked used again, so overlaps resolve to "reserved wins"
//!   without any sorting or merging;
//! - a double free is a bit that is already clear, so it is detected instead
//!   of silently corrupting a list.
//!
//! Boot-time placement helpers ([`place`], [`choose_trampoline_page`]) live
//! in this module too: they answer "where can this go?" from the same ranges,
//! before the allocator exists.

mod bitmap;
mod list;
mod placement;

#[cfg(test)]
mod tests;

use core::fmt;

pub use bitmap::FrameBitmap;
pub use list::RangeList;
pub use placement::{choose_trampoline_page, place, LOW_MEMORY_END, TRAMPOLINE_WINDOW};

/// Size of one physical frame (and of a small page) in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// A half-open range of physical addresses, `start..end`, in bytes.
///
/// A range with `start >= end` is empty: it contains and overlaps nothing.
/// Firmware memory maps can contain such entries, so every method copes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte in the range.
    pub start: u64,
    /// First byte past the range.
    pub end: u64,
}

impl Range {
    /// The range `start..end`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Length in bytes (0 for an empty or inverted range).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True if the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// True if `addr` lies inside the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// True if every byte of `other` lies inside this range. An empty
    /// `other` is never considered contained: it names no memory, and
    /// callers use this to ask "is this block backed by this region?".
    pub const fn contains_range(&self, other: &Range) -> bool {
        !other.is_empty() && self.start <= other.start && other.end <= self.end
    }

    /// True if the two ranges share at least one byte. Adjacent ranges
    /// (`a.end == b.start`) do not overlap.
    pub const fn overlaps(&self, other: &Range) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }
}

impl Range {
    /// How to map this range with pages of `small` and `large` bytes (both
    /// powers of two, `small < large`), never mapping a byte outside it
    /// with a large page: `[head, middle, tail]`, where the edges (rounded
    /// out to `small`) take small pages and the `large`-aligned middle,
    /// possibly empty, takes large ones. A range too short for a large page
    /// is all head. For the direct map, which must not map a device hole
    /// next to RAM as RAM.
    pub const fn split_for_pages(&self, small: u64, large: u64) -> [Range; 3] {
        if self.is_empty() {
            return [Range::new(0, 0), Range::new(0, 0), Range::new(0, 0)];
        }
        let start = self.start & !(small - 1);
        let end = self.end.saturating_add(small - 1) & !(small - 1);
        let mid_start = (start.saturating_add(large - 1)) & !(large - 1);
        let mid_end = end & !(large - 1);
        if mid_start >= mid_end {
            return [Range::new(start, end), Range::new(end, end), Range::new(end, end)];
        }
        [Range::new(start, mid_start), Range::new(mid_start, mid_end), Range::new(mid_end, end)]
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

/// Why a [`FrameBitmap`] operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The storage given to [`FrameBitmap::new`] has fewer words than
    /// [`FrameBitmap::words_for`] asks for.
    BitmapTooSmall,
    /// The address is not a multiple of [`FRAME_SIZE`].
    NotAligned,
    /// The address lies at or above the allocator's limit.
    OutOfRange,
    /// The frame is already free: it was freed twice, or never allocated.
    DoubleFree,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BitmapTooSmall => "frame bitmap storage is too small for the memory it must cover",
            Self::NotAligned => "physical address is not 4 KiB-aligned",
            Self::OutOfRange => "physical address is beyond the memory the frame allocator covers",
            Self::DoubleFree => "frame is already free (double free)",
        })
    }
}
