//! Kernel stacks, each in its own slot of the stacks region with unmapped
//! pages below it: running off the bottom faults instead of corrupting
//! whatever lies below.
//!
//! A slot is `SLOT_SIZE` of virtual space; a stack of `size` bytes occupies
//! the top of its slot and everything below it in the slot stays unmapped,
//! so there is always at least one guard page. Slots are recycled.
//!
//! **The cache.** Unmapping a stack costs a TLB shootdown: an IPI to every
//! other CPU and a wait for all of them. A thread's exit would pay that
//! each time, and under a spawn storm the shootdowns serialise every CPU
//! (seen in the stress suite: 2000 threads took 8 s on 4 CPUs, nearly all
//! of it in shootdowns). So a dropped stack stays mapped in a small cache
//! and the next stack of the same size is taken from it as it is (Linux
//! keeps a few cached thread stacks per CPU for the same reason). When the
//! cache is full it is emptied in one go: every stack in it is unmapped
//! and the lot is shot down at once (a full flush per 256 pages). [`trim`] empties it
//! on demand, and a stack allocation that runs out of frames trims and
//! tries again.
use super::{frames, paging, PAGE_SIZE, STACKS_START};
use crate::error::KernelError;
use crate::sync::IrqSpinlock;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

const SLOT_SIZE: u64 = 256 * 1024;
const MAX_SLOTS: usize = 16384;
/// Dropped stacks kept mapped for reuse, at most.
const CACHE_MAX: usize = 64;
/// Pages mapped in each slot (0: free), read by the double-fault handler
/// without taking a lock.
static SLOT_PAGES: [AtomicU32; MAX_SLOTS] = [const { AtomicU32::new(0) }; MAX_SLOTS];

/// Slots handed out so far (`next`), and those given back, on a fixed
/// stack: returning a slot never allocates.
struct Slots {
    next: usize,
    free: [u16; MAX_SLOTS],
    free_len: usize,
}

const _: () = assert!(MAX_SLOTS <= u16::MAX as usize + 1);

static SLOTS: IrqSpinlock<Slots> = IrqSpinlock::new(Slots { next: 0, free: [0; MAX_SLOTS], free_len: 0 });

/// Mapped stacks no one uses, as `(slot, pages)`; a fixed array, so that
/// dropping a stack never allocates.
struct Cache {
    len: usize,
    entries: [(usize, u64); CACHE_MAX],
}

static CACHE: IrqSpinlock<Cache> = IrqSpinlock::new(Cache { len: 0, entries: [(0, 0); CACHE_MAX] });

impl Cache {
    /// The most recently cached stack of exactly `pages` pages (warmest).
    fn take(&mut self, pages: u64) -> Option<usize> {
        let i = self.entries[..self.len].iter().rposition(|&(_, p)| p == pages)?;
        let (slot, _) = self.entries[i];
        self.len -= 1;
        self.entries[i] = self.entries[self.len];
        Some(slot)
    }

    fn take_all(&mut self) -> ([(usize, u64); CACHE_MAX], usize) {
        let len = core::mem::take(&mut self.len);
        (self.entries, len)
    }
}

pub struct KernelStack {
    slot: usize,
    pages: u64,
}

impl KernelStack {
    /// A stack of at least `size` bytes (rounded up to pages).
    pub fn new(size: usize) -> Result<Self, KernelError> {
        let pages = super::align_up(size as u64, PAGE_SIZE) / PAGE_SIZE;
        if pages == 0 || pages >= SLOT_SIZE / PAGE_SIZE {
            return Err(KernelError::BadAddress);
        }
        if let Some(slot) = CACHE.lock().take(pages) {
            return Ok(KernelStack { slot, pages });
        }
        match Self::map_new(pages) {
            Err(KernelError::NoMemory) if trim() > 0 => Self::map_new(pages),
            result => result,
        }
    }

    /// A stack in a fresh slot, with fresh frames.
    fn map_new(pages: u64) -> Result<Self, KernelError> {
        let slot = {
            let mut slots = SLOTS.lock();
            match slots.free_len.checked_sub(1) {
                Some(top) => {
                    slots.free_len = top;
                    usize::from(slots.free[top])
                }
                None if slots.next < MAX_SLOTS => {
                    slots.next += 1;
                    slots.next - 1
                }
                None => return Err(KernelError::NoMemory),
            }
        };
        let top = slot_top(slot);
        let mut mapped = 0;
        let result = (0..pages).try_for_each(|i| {
            let frame = frames::alloc().ok_or(KernelError::NoMemory)?;
            if let Err(e) = paging::map(top - (i + 1) * PAGE_SIZE, frame, paging::kernel_flags(true, false)) {
                frames::free(frame);
                return Err(e);
            }
            // Pages map top-down, so what is mapped is always the top
            // `mapped` pages.
            mapped = i + 1;
            Ok(())
        });
        match result {
            Ok(()) => {
                SLOT_PAGES[slot].store(pages as u32, Ordering::Release);
                Ok(KernelStack { slot, pages })
            }
            Err(e) => {
                release(&[(slot, mapped)]);
                Err(e)
            }
        }
    }

    /// The initial stack pointer (one past the highest byte).
    pub fn top(&self) -> u64 {
        slot_top(self.slot)
    }

    /// The lowest mapped byte.
    pub fn bottom(&self) -> u64 {
        self.top() - self.pages * PAGE_SIZE
    }
}

fn slot_top(slot: usize) -> u64 {
    STACKS_START + (slot as u64 + 1) * SLOT_SIZE
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let (evicted, len) = {
            let mut cache = CACHE.lock();
            if cache.len < CACHE_MAX {
                let len = cache.len;
                cache.entries[len] = (self.slot, self.pages);
                cache.len += 1;
                return;
            }
            cache.take_all()
        };
        // The cache is full: empty it, this stack included, at once. `len`
        // is CACHE_MAX unless another CPU emptied it in between.
        let mut all = [(0, 0); CACHE_MAX + 1];
        all[..len].copy_from_slice(&evicted[..len]);
        all[len] = (self.slot, self.pages);
        release(&all[..=len]);
    }
}

/// Unmaps and frees every cached stack. Returns how many there were.
pub fn trim() -> usize {
    let (evicted, len) = CACHE.lock().take_all();
    if len > 0 {
        release(&evicted[..len]);
    }
    len
}

/// Unmaps `(slot, pages)` stacks, frees their frames and returns their
/// slots. The frames wait in a fixed buffer for the shootdown that must
/// come before they are reused: one for every `BATCH` pages (a full flush,
/// or a range for a single stack). Fixed, so that dropping a stack does not
/// allocate (and cannot grow the heap).
fn release(stacks: &[(usize, u64)]) {
    const BATCH: usize = 256;
    let mut pending = [0u64; BATCH];
    let mut held = 0;
    let flush = |pending: &[u64]| {
        match stacks {
            [(slot, pages)] => crate::arch::tlb::shootdown(slot_top(*slot) - pages * PAGE_SIZE, *pages),
            _ => crate::arch::tlb::shootdown_all(),
        }
        pending.iter().for_each(|&f| frames::free(f));
    };
    for &(slot, pages) in stacks {
        SLOT_PAGES[slot].store(0, Ordering::Release);
        let bottom = slot_top(slot) - pages * PAGE_SIZE;
        for i in 0..pages {
            if held == BATCH {
                flush(&pending);
                held = 0;
            }
            match paging::unmap_deferred(bottom + i * PAGE_SIZE) {
                Ok(frame) => pending[held] = frame,
                Err(e) => panic!("mem: kernel stack #{slot} at {bottom:#x}: page {i}: {e}"),
            }
            held += 1;
        }
    }
    if held > 0 {
        flush(&pending[..held]);
    }
    let mut slots = SLOTS.lock();
    for &(slot, _) in stacks {
        let top = slots.free_len;
        slots.free[top] = slot as u16;
        slots.free_len = top + 1;
    }
}

/// Names the stack whose guard area holds `addr`.
#[derive(Debug, Clone, Copy)]
pub enum GuardOwner {
    BootStack,
    KernelStack(usize),
}

impl fmt::Display for GuardOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardOwner::BootStack => f.write_str("the boot stack"),
            GuardOwner::KernelStack(slot) => write!(f, "kernel stack #{slot}"),
        }
    }
}

/// If `addr` lies in a stack's guard area, whose. Lock-free: the
/// double-fault handler calls it.
pub fn guard_page_owner(addr: u64) -> Option<GuardOwner> {
    let guard = paging::boot_stack_guard();
    if (guard..guard + PAGE_SIZE).contains(&addr) {
        return Some(GuardOwner::BootStack);
    }
    let offset = addr.checked_sub(STACKS_START)?;
    let slot = usize::try_from(offset / SLOT_SIZE).ok().filter(|&s| s < MAX_SLOTS)?;
    let pages = u64::from(SLOT_PAGES[slot].load(Ordering::Acquire));
    let mapped_from = (slot as u64 + 1) * SLOT_SIZE - pages * PAGE_SIZE;
    (pages != 0 && offset < mapped_from).then_some(GuardOwner::KernelStack(slot))
}
