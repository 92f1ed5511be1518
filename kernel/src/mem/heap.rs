//! The kernel heap: `linked_list_allocator` over a virtual region that
//! grows on demand, page by page, from the frame allocator.
use super::{frames, paging, HEAP_MAX, HEAP_START, PAGE_SIZE};
use crate::sync::IrqSpinlock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use linked_list_allocator::Heap;

/// Grow by at least this much at a time, to keep growth rare.
const GROW_MIN: u64 = 256 * 1024;

struct KernelHeap {
    inner: IrqSpinlock<Inner>,
}

struct Inner {
    heap: Heap,
    /// End of the mapped part of the heap region.
    mapped_end: u64,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap { inner: IrqSpinlock::new(Inner { heap: Heap::empty(), mapped_end: HEAP_START }) };

impl Inner {
    /// Maps `bytes` more (rounded up to pages) at the top of the heap. Returns false if
    /// memory (or the region) ran out before anything was added.
    fn grow(&mut self, bytes: u64) -> bool {
        let want = super::align_up(bytes, PAGE_SIZE);
        let start = self.mapped_end;
        let end = (start + want).min(HEAP_START + HEAP_MAX);
        let mut top = start;
        while top < end {
            let Some(frame) = frames::alloc() else { break };
            if paging::map(top, frame, paging::kernel_flags(true, false)).is_err() {
                frames::free(frame);
                break;
            }
            top += PAGE_SIZE;
        }
        if top == start {
            return false;
        }
        self.mapped_end = top;
        let added = (top - start) as usize;
        if self.heap.size() == 0 {
            // SAFETY: [start, top) is freshly mapped, writable, and used by
            // nothing else.
            unsafe { self.heap.init(start as *mut u8, added) };
        } else {
            // SAFETY: the new pages directly follow the heap's current top.
            unsafe { self.heap.extend(added) };
        }
        true
    }
}

impl Inner {
    /// Whether a block of `bytes` fits now: not just that many bytes free
    /// (they may lie in pieces), but one hole that holds them, found by
    /// allocating and freeing it.
    fn fits(&mut self, bytes: u64) -> bool {
        let Ok(layout) = Layout::from_size_align(bytes as usize, 16) else { return false };
        match self.heap.allocate_first_fit(layout) {
            Ok(block) => {
                // SAFETY: just allocated with this layout, and unused.
                unsafe { self.heap.deallocate(block, layout) };
                true
            }
            Err(()) => false,
        }
    }
}

// SAFETY: all heap state is behind the lock; the memory handed out is
// mapped and owned by the heap until it is returned.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut inner = self.inner.lock();
        loop {
            if let Ok(p) = inner.heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
            // Room for the block, its alignment and the allocator's own
            // bookkeeping at the region's end.
            let need = (layout.size() + layout.align() + 64) as u64;
            // The usual step if programs could have that much; else only what
            // this needs, from the reserve (see make_room).
            let step = if frames::claim(GROW_MIN / PAGE_SIZE).is_some() { need.max(GROW_MIN) } else { need };
            if !inner.grow(step) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: ptr came from alloc with this
            // layout.
            unsafe { self.inner.lock().heap.deallocate(p, layout) };
        }
    }
}

/// Room made in the heap for what a user program asked for, held until
/// the caller has allocated it ([`make_room`]). While it lives, no other
/// CPU makes room (they wait), so two programs' objects can never both be
/// promised the same hole; and this CPU is not preempted, so the holder
/// cannot leave others waiting for a time slice. It nests: a holder may
/// make room again (a handle table growing while an object is made).
/// Holders take only leaf locks (the heap's, the frame allocator's, the
/// kernel page table's, a run queue's), never one that a CPU waiting for
/// the room may hold.
pub struct Room {
    _preempt: crate::sched::PreemptGuard,
}

/// The CPU holding [`Room`]s ([`NOBODY`] if none) and how many.
static ROOM_OWNER: AtomicU32 = AtomicU32::new(NOBODY);
static ROOM_DEPTH: AtomicU32 = AtomicU32::new(0);
const NOBODY: u32 = u32::MAX;

impl Room {
    /// Waits for the room with preemption on (a CPU that waits long, for a
    /// holder its host is not running, still schedules), and takes it with
    /// preemption off.
    fn enter() -> Room {
        loop {
            let preempt = crate::sched::PreemptGuard::new();
            let me = crate::percpu::cpu_index();
            if ROOM_OWNER.load(Ordering::Acquire) == me
                || ROOM_OWNER.compare_exchange(NOBODY, me, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                ROOM_DEPTH.fetch_add(1, Ordering::Relaxed);
                return Room { _preempt: preempt };
            }
            drop(preempt);
            // The caller may hold a lock with interrupts off (an address
            // space's), and the holder may wait for a shootdown.
            crate::arch::tlb::service();
            core::hint::spin_loop();
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if ROOM_DEPTH.fetch_sub(1, Ordering::Relaxed) == 1 {
            ROOM_OWNER.store(NOBODY, Ordering::Release);
        }
    }
}

/// Heap bytes a [`make_room`] keeps beyond what it was asked for: the
/// allocator's own bookkeeping and alignment.
const ROOM_SLACK: u64 = 256;

/// Makes sure the heap has a hole of `bytes` for kernel objects a user
/// program asked for, growing it only with frames that programs may claim
/// ([`frames::claim`]), never with the kernel's reserve: the heap grows on
/// a program's behalf only within what programs are allowed. The caller
/// allocates while it holds the [`Room`]; an allocation the kernel makes
/// for itself meanwhile (an interrupt's, say) can still take the hole, and
/// then the caller's allocation grows the heap on its own, from the
/// reserve, which is there for such moments.
pub fn make_room(bytes: u64) -> Result<Room, crate::error::KernelError> {
    let room = Room::enter();
    let mut inner = HEAP.inner.lock();
    let want = bytes + ROOM_SLACK;
    if inner.fits(want) {
        return Ok(room);
    }
    // Grow by the usual step if programs may have that much, else by just
    // what this needs.
    let pages = |b: u64| super::align_up(b, PAGE_SIZE) / PAGE_SIZE;
    let (grow, claim) = match frames::claim(pages(GROW_MIN)) {
        Some(claim) => (GROW_MIN, claim),
        None => (want, frames::claim(pages(want)).ok_or(crate::error::KernelError::NoMemory)?),
    };
    // The claim stands while the heap takes its frames, so that no other
    // program's claim counts them as free meanwhile.
    let grown = inner.grow(grow);
    drop(claim);
    if grown && inner.fits(want) {
        Ok(room)
    } else {
        Err(crate::error::KernelError::NoMemory)
    }
}

pub fn init() {
    let mut inner = HEAP.inner.lock();
    if !inner.grow(GROW_MIN) {
        panic!("mem: no memory for the kernel heap");
    }
}

/// (bytes in use, bytes the heap spans).
pub fn usage() -> (usize, usize) {
    let inner = HEAP.inner.lock();
    (inner.heap.used(), inner.heap.size())
}
