//! The kernel heap: `linked_list_allocator` over a virtual region that
//! grows on demand, page by page, from the frame allocator.
use super::{frames, paging, HEAP_MAX, HEAP_START, PAGE_SIZE};
use crate::sync::IrqSpinlock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
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
    /// Maps at least `bytes` more at the top of the heap. Returns false if
    /// memory (or the region) ran out before anything was added.
    fn grow(&mut self, bytes: u64) -> bool {
        let want = super::align_up(bytes.max(GROW_MIN), PAGE_SIZE);
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
            if !inner.grow(need) {
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
