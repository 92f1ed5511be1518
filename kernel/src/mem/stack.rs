//! Kernel stacks, each in its own slot of the stacks region with unmapped
//! pages below it: running off the bottom faults instead of corrupting
//! whatever lies below.
//!
//! A slot is `SLOT_SIZE` of virtual space; a stack of `size` bytes occupies
//! the top of its slot and everything below it in the slot stays unmapped,
//! so there is always at least one guard page. Slots are recycled.
use super::{frames, paging, PAGE_SIZE, STACKS_START};
use crate::error::KernelError;
use crate::sync::IrqSpinlock;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

const SLOT_SIZE: u64 = 256 * 1024;
const MAX_SLOTS: usize = 16384;
/// Pages mapped in each slot (0: free), read by the double-fault handler
/// without taking a lock.
static SLOT_PAGES: [AtomicU32; MAX_SLOTS] = [const { AtomicU32::new(0) }; MAX_SLOTS];

struct Slots {
    next: usize,
    free: Vec<usize>,
}

static SLOTS: IrqSpinlock<Slots> = IrqSpinlock::new(Slots { next: 0, free: Vec::new() });

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
        let slot = {
            let mut slots = SLOTS.lock();
            match slots.free.pop() {
                Some(s) => s,
                None if slots.next < MAX_SLOTS => {
                    slots.next += 1;
                    slots.next - 1
                }
                None => return Err(KernelError::NoMemory),
            }
        };
        // On an early return, Drop unmaps what was mapped and frees the slot.
        let mut stack = KernelStack { slot, pages: 0 };
        let top = stack.top();
        for i in 0..pages {
            let frame = frames::alloc().ok_or(KernelError::NoMemory)?;
            if let Err(e) = paging::map(top - (i + 1) * PAGE_SIZE, frame, paging::kernel_flags(true, false)) {
                frames::free(frame);
                return Err(e);
            }
            // Pages map top-down, so what is mapped is always the top
            // `pages` pages, which is what Drop unmaps after a failure too.
            stack.pages = i + 1;
        }
        SLOT_PAGES[slot].store(pages as u32, Ordering::Release);
        Ok(stack)
    }

    /// The initial stack pointer (one past the highest byte).
    pub fn top(&self) -> u64 {
        STACKS_START + (self.slot as u64 + 1) * SLOT_SIZE
    }

    /// The lowest mapped byte.
    pub fn bottom(&self) -> u64 {
        self.top() - self.pages * PAGE_SIZE
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        SLOT_PAGES[self.slot].store(0, Ordering::Release);
        let bottom = self.bottom();
        if let Err(e) = paging::unmap_range(bottom, self.pages, frames::free) {
            panic!("mem: kernel stack at {bottom:#x}: {e}");
        }
        SLOTS.lock().free.push(self.slot);
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
