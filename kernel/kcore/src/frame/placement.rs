//! Boot-time placement: choosing addresses from the memory map before any
//! allocator exists.
//!
//! Both helpers take the memory map as two lists of ranges, `usable` and
//! `reserved`, exactly as the firmware reported them: unsorted, possibly
//! overlapping, possibly with unaligned edges. A chosen block must lie wholly
//! inside one usable range (two adjacent entries are not assumed to be one
//! stretch of RAM) and touch no reserved range, so an overlap between the two
//! lists resolves to "reserved wins", as in the allocator.

use super::{Range, FRAME_SIZE};

/// End of the first MiB. Memory below it holds the real-mode IVT, BIOS data,
/// the EBDA, video memory and option ROMs, and is kept for the AP trampoline;
/// the kernel never places its own data there.
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// Where the AP start page may go. A startup IPI names its start page by a
/// page number below 0x100, so the page must lie below 1 MiB; page 0 holds
/// the real-mode IVT and BIOS data; and the window stops at 0x9F000 because
/// the top of conventional memory (typically 0x9FC00 upward) is the EBDA,
/// which firmware sometimes fails to report as reserved.
pub const TRAMPOLINE_WINDOW: Range = Range::new(0x1000, 0x9F000);

/// Finds the lowest 4 KiB-aligned address for a block of `bytes` (rounded up
/// to whole frames) that lies entirely inside one usable range, at or above
/// [`LOW_MEMORY_END`], entirely below `limit`, and overlaps no reserved
/// range. Used to place the frame bitmap itself. `None` if nothing fits or
/// `bytes` is 0.
pub fn place(usable: &[Range], reserved: &[Range], bytes: u64, limit: u64) -> Option<u64> {
    if bytes == 0 {
        return None;
    }
    // Whole frames, so the block can later be reserved without its last,
    // partly used frame overlapping something else.
    let size = bytes.checked_next_multiple_of(FRAME_SIZE)?;
    usable.iter().filter_map(|region| lowest_fit(region, reserved, size, limit)).min()
}

/// The lowest aligned start for `size` bytes inside `region` (see [`place`]).
fn lowest_fit(region: &Range, reserved: &[Range], size: u64, limit: u64) -> Option<u64> {
    let ceiling = region.end.min(limit);
    let mut start = region.start.max(LOW_MEMORY_END).checked_next_multiple_of(FRAME_SIZE)?;
    loop {
        let end = start.checked_add(size)?;
        if end > ceiling {
            return None;
        }
        let block = Range::new(start, end);
        match reserved.iter().find(|r| r.overlaps(&block)) {
            None => return Some(start),
            // Jump past the obstacle. It overlapped, so its end is above
            // `start`: the loop makes progress and never meets it again,
            // which bounds it by the number of reserved ranges.
            Some(obstacle) => start = obstacle.end.checked_next_multiple_of(FRAME_SIZE)?,
        }
    }
}

/// Chooses the page for the application-processor trampoline: the highest
/// 4 KiB page inside [`TRAMPOLINE_WINDOW`] that lies wholly inside a usable
/// range and overlaps no reserved range.
///
/// Highest, because the low pages are the ones most often claimed by
/// firmware and bootloaders. `None` if no such page exists (the caller then
/// runs with the bootstrap processor only).
pub fn choose_trampoline_page(usable: &[Range], reserved: &[Range]) -> Option<u64> {
    let first = TRAMPOLINE_WINDOW.start / FRAME_SIZE;
    let end = TRAMPOLINE_WINDOW.end / FRAME_SIZE;
    // The window is only 158 pages, so checking each one is cheaper to get
    // right than interval arithmetic.
    (first..end).rev().map(|frame| frame * FRAME_SIZE).find(|&addr| {
        let page = Range::new(addr, addr + FRAME_SIZE);
        usable.iter().any(|u| u.contains_range(&page)) && !reserved.iter().any(|r| r.overlaps(&page))
    })
}
