//! The bitmap frame allocator.
//!
//! One bit per 4 KiB frame, frames `0..limit / FRAME_SIZE`, packed 64 to a
//! `u64` word (frame `f` is bit `f % 64` of word `f / 64`). A set bit means
//! "used": allocated, reserved, or simply not RAM. Starting with every bit set
//! and clearing only what the memory map calls usable means a hole in the map
//! can never be handed out by mistake.
//!
//! Speed comes from two things. Scans look at whole words and skip a full
//! word (`u64::MAX`) 64 frames at a time. And a *hint* remembers the lowest
//! word that may still hold a free bit: every word below it is known to be
//! full. Allocation scans from the hint and leaves it at the word where it
//! found a frame, so allocating N frames in a row costs O(N + words) rather
//! than O(N * words). Freeing a frame below the hint moves the hint back down,
//! which is what makes freed frames come back lowest-first.
//!
//! Invariants (checked by the tests after every operation of a random churn):
//!
//! - `free` equals the number of clear bits among the covered frames;
//! - bits of the last word past the covered frames are always set, so a scan
//!   never has to special-case them;
//! - every word below `hint` is full.

use core::fmt;

use super::{FrameError, Range, FRAME_SIZE};

/// Frames per bitmap word.
const WORD_BITS: u64 = u64::BITS as u64;

/// Physical frame allocator over caller-provided bitmap storage.
///
/// Build it at boot in this order:
///
/// 1. [`new`](Self::new): every frame starts used;
/// 2. [`add_usable`](Self::add_usable) for each usable memory-map entry;
/// 3. [`reserve`](Self::reserve) for everything that must never be handed
///    out (non-usable entries, kernel image, boot info, modules, the bitmap's
///    own storage, the first MiB).
///
/// Only then allocate. Setup after allocation starts would still keep the
/// bitmap consistent, but [`usable_frames`](Self::usable_frames) would no
/// longer mean "pool size".
///
/// ```
/// use ferrite_kcore::frame::{FrameBitmap, Range};
///
/// const LIMIT: u64 = 8 << 20;
/// let mut storage = [0u64; FrameBitmap::words_for(LIMIT)];
/// let mut frames = FrameBitmap::new(&mut storage, LIMIT).unwrap();
/// frames.add_usable(Range::new(0, 0x9_FC00));
/// frames.add_usable(Range::new(0x10_0000, LIMIT));
/// frames.reserve(Range::new(0, 0x10_0000)); // the first MiB
/// frames.reserve(Range::new(0x10_0000, 0x30_0000)); // the kernel image
///
/// let frame = frames.allocate().unwrap();
/// assert_eq!(frame, 0x30_0000);
/// frames.free(frame).unwrap();
/// assert_eq!(frames.free_frames(), frames.usable_frames());
/// ```
pub struct FrameBitmap<'a> {
    /// Exactly `words_for(limit)` words: storage beyond that is never touched.
    bits: &'a mut [u64],
    /// Number of frames covered: `limit / FRAME_SIZE`, rounded down.
    frames: u64,
    /// Frames currently free.
    free: u64,
    /// Frames made free by setup (`add_usable` minus `reserve`).
    usable: u64,
    /// Lowest word that may contain a free bit; `bits.len()` when none can.
    hint: usize,
}

impl<'a> FrameBitmap<'a> {
    /// Number of `u64` words needed to cover physical addresses
    /// `[0, limit)`. A partial frame at the top is not covered: it could not
    /// be handed out whole anyway.
    pub const fn words_for(limit: u64) -> usize {
        (limit / FRAME_SIZE).div_ceil(WORD_BITS) as usize
    }

    /// An allocator covering `[0, limit)` (rounded down to a whole frame)
    /// with every frame marked used.
    ///
    /// `bits` must have at least [`words_for(limit)`](Self::words_for)
    /// words; any words past that are left untouched. The contents need not
    /// be initialised: they are overwritten.
    pub fn new(bits: &'a mut [u64], limit: u64) -> Result<Self, FrameError> {
        let words = Self::words_for(limit);
        if bits.len() < words {
            return Err(FrameError::BitmapTooSmall);
        }
        let (bits, _) = bits.split_at_mut(words);
        // All used, including the tail bits past the last frame, which stay
        // set forever so scans never see them as free.
        bits.fill(u64::MAX);
        Ok(Self { bits, frames: limit / FRAME_SIZE, free: 0, usable: 0, hint: words })
    }

    /// The covered limit: frames below this address are managed. This is the
    /// `limit` given to [`new`](Self::new), rounded down to a frame.
    pub const fn limit(&self) -> u64 {
        self.frames * FRAME_SIZE
    }

    /// Number of frames currently free.
    pub const fn free_frames(&self) -> u64 {
        self.free
    }

    /// Size of the pool: frames made free by [`add_usable`](Self::add_usable)
    /// minus those later taken back by [`reserve`](Self::reserve). Allocation
    /// and freeing do not change it, so after any churn that frees everything
    /// it allocated, `free_frames() == usable_frames()` again.
    pub const fn usable_frames(&self) -> u64 {
        self.usable
    }

    /// True if the frame containing `addr` is free. Addresses outside the
    /// covered limit are never free.
    pub fn is_free(&self, addr: u64) -> bool {
        let frame = addr / FRAME_SIZE;
        frame < self.frames && !self.is_used(frame)
    }

    /// Marks every whole frame inside `r` free. The start is rounded up and
    /// the end down, because a frame only partly backed by RAM is not RAM;
    /// the range is clipped to the covered limit.
    pub fn add_usable(&mut self, r: Range) {
        // Work in frame numbers so that rounding cannot overflow near 2^64.
        let first = r.start.div_ceil(FRAME_SIZE);
        let end = (r.end / FRAME_SIZE).min(self.frames);
        if first >= end {
            return;
        }
        let freed = self.fill(first, end, false);
        self.free += freed;
        self.usable += freed;
        self.hint = self.hint.min(word_of(first));
    }

    /// Marks every frame that touches `r` used. The start is rounded down and
    /// the end up, because sharing a frame with something reserved is as bad
    /// as overlapping it; the range is clipped to the covered limit.
    pub fn reserve(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        let first = r.start / FRAME_SIZE;
        let end = r.end.div_ceil(FRAME_SIZE).min(self.frames);
        if first >= end {
            return;
        }
        let taken = self.fill(first, end, true);
        self.free -= taken;
        // Saturating: a frame that reached the pool through a (buggy) free of
        // a never-usable frame would otherwise underflow the pool size.
        self.usable = self.usable.saturating_sub(taken);
        // The hint stays valid: setting bits cannot create a free word below it.
    }

    /// Allocates one frame, lowest address first.
    pub fn allocate(&mut self) -> Option<u64> {
        self.allocate_below_frame(self.frames)
    }

    /// Allocates one frame whose whole 4 KiB lies below `limit` (for DMA or
    /// anything else with an address-width restriction), lowest first.
    pub fn allocate_below(&mut self, limit: u64) -> Option<u64> {
        // Frame f ends at (f + 1) * 4096 <= limit exactly when f < limit / 4096.
        self.allocate_below_frame((limit / FRAME_SIZE).min(self.frames))
    }

    /// Allocates `count` physically contiguous frames, the first aligned to
    /// `align_frames` frames (0 and 1 both mean "any frame"), all of them
    /// wholly below `limit`. Returns the address of the first frame; the
    /// frames are freed one by one with [`free`](Self::free). Lowest fit wins.
    /// `count == 0` allocates nothing and returns `None`.
    pub fn allocate_contiguous(&mut self, count: usize, align_frames: usize, limit: u64) -> Option<u64> {
        let count = count as u64;
        if count == 0 || count > self.free {
            return None;
        }
        let align = (align_frames as u64).max(1);
        let end = (limit / FRAME_SIZE).min(self.frames);
        // Everything below the hint word is used, so no run can start there.
        let mut candidate = round_up(self.hint as u64 * WORD_BITS, align)?;
        loop {
            let run_end = candidate.checked_add(count)?;
            if run_end > end {
                return None;
            }
            match self.find(candidate, run_end, true) {
                None => {
                    self.fill(candidate, run_end, true);
                    self.free -= count;
                    return Some(candidate * FRAME_SIZE);
                }
                // No run can include `used`: resume at the first free frame
                // after it, which skips whole used stretches a word at a time.
                Some(used) => candidate = round_up(self.find(used + 1, end, false)?, align)?,
            }
        }
    }

    /// Returns the frame at `addr` to the pool.
    ///
    /// Detects unaligned addresses, addresses beyond the limit and frames that
    /// are already free. It cannot tell a reserved frame from an allocated
    /// one (both are just "used"), so freeing a reserved frame is the
    /// caller's bug and goes unnoticed.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::NotAligned);
        }
        let frame = addr / FRAME_SIZE;
        if frame >= self.frames {
            return Err(FrameError::OutOfRange);
        }
        if !self.is_used(frame) {
            return Err(FrameError::DoubleFree);
        }
        let word = word_of(frame);
        self.bits[word] &= !bit_of(frame);
        self.free += 1;
        // Move the hint back down so this frame is found (lowest first).
        self.hint = self.hint.min(word);
        Ok(())
    }

    /// Finds, takes and returns the lowest free frame below frame number
    /// `end` (at most `self.frames`), advancing the hint past full words.
    fn allocate_below_frame(&mut self, end: u64) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let end_word = end.div_ceil(WORD_BITS) as usize;
        let mut word = self.hint;
        while word < end_word {
            let bits = self.bits[word];
            if bits != u64::MAX {
                // All words from the old hint up to here are full.
                self.hint = word;
                let frame = word as u64 * WORD_BITS + u64::from((!bits).trailing_zeros());
                // This is the lowest free frame anywhere; if it is too high,
                // nothing below `end` is free.
                if frame >= end {
                    return None;
                }
                self.bits[word] = bits | bit_of(frame);
                self.free -= 1;
                return Some(frame * FRAME_SIZE);
            }
            word += 1;
        }
        // Every word scanned was full.
        self.hint = word;
        None
    }

    fn is_used(&self, frame: u64) -> bool {
        self.bits[word_of(frame)] & bit_of(frame) != 0
    }

    /// Sets frames `first..end` to used (`true`) or free (`false`) a word at
    /// a time and returns how many bits actually changed. Callers clip the
    /// range to the covered frames.
    fn fill(&mut self, first: u64, end: u64, used: bool) -> u64 {
        let mut changed = 0;
        let mut frame = first;
        while frame < end {
            let shift = frame % WORD_BITS;
            let span = (WORD_BITS - shift).min(end - frame);
            let mask = low_bits(span) << shift;
            let word = &mut self.bits[word_of(frame)];
            let old = *word;
            *word = if used { old | mask } else { old & !mask };
            changed += u64::from((old ^ *word).count_ones());
            frame += span;
        }
        changed
    }

    /// The first frame in `from..to` that is used (`true`) or free
    /// (`false`), looking at a word at a time.
    fn find(&self, from: u64, to: u64, used: bool) -> Option<u64> {
        let mut frame = from;
        while frame < to {
            let word = word_of(frame);
            // Turn the wanted state into set bits, then drop the bits below
            // `frame` in this word.
            let bits = if used { self.bits[word] } else { !self.bits[word] };
            let bits = bits & (u64::MAX << (frame % WORD_BITS));
            if bits != 0 {
                let found = word as u64 * WORD_BITS + u64::from(bits.trailing_zeros());
                return (found < to).then_some(found);
            }
            frame = (word as u64 + 1) * WORD_BITS;
        }
        None
    }

    /// Panics unless the invariants in the module doc hold.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let clear: u64 = (0..self.frames).filter(|&f| !self.is_used(f)).count() as u64;
        assert_eq!(clear, self.free, "free count disagrees with the bitmap");
        for f in self.frames..self.bits.len() as u64 * WORD_BITS {
            assert!(self.is_used(f), "tail bit {f} is clear");
        }
        for (i, &w) in self.bits[..self.hint].iter().enumerate() {
            assert_eq!(w, u64::MAX, "word {i} below hint {} has a free bit", self.hint);
        }
        assert!(self.hint <= self.bits.len());
    }
}

/// Summary only: the bitmap itself can be megabytes.
impl fmt::Debug for FrameBitmap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBitmap")
            .field("limit", &format_args!("{:#x}", self.limit()))
            .field("free", &self.free)
            .field("usable", &self.usable)
            .field("hint", &self.hint)
            .finish()
    }
}

const fn word_of(frame: u64) -> usize {
    (frame / WORD_BITS) as usize
}

const fn bit_of(frame: u64) -> u64 {
    1 << (frame % WORD_BITS)
}

/// A mask of the lowest `n` bits, `n` in `1..=64`.
const fn low_bits(n: u64) -> u64 {
    u64::MAX >> (WORD_BITS - n)
}

/// `x` rounded up to a multiple of `align` (non-zero); `None` on overflow.
const fn round_up(x: u64, align: u64) -> Option<u64> {
    x.div_ceil(align).checked_mul(align)
}
