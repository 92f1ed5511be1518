//! The global allocator: `linked_list_allocator` heaps over memory from
//! `map`, one per chunk.
//!
//! # Chunks
//!
//! The heap grows by asking the kernel for a chunk with `map`. The kernel
//! picks the address, so successive chunks are not contiguous, and a
//! `linked_list_allocator::Heap` can only grow at its top. Instead of one
//! heap, then, there is a small table of them, one per chunk: an allocation
//! tries each chunk (the one that served last first) and maps a new chunk
//! when none has room; a deallocation finds its chunk by address.
//!
//! Chunk sizes: ordinary chunks start at [`MIN_CHUNK`] and double with each
//! new one up to [`MAX_ORDINARY_CHUNK`], so that the table covers a large
//! heap while a small program maps little. An allocation too big for the
//! next ordinary chunk gets a chunk of its own, sized to fit it; that chunk
//! is unmapped again when its last block is freed, so a program that
//! allocates and frees big buffers does not keep their memory. Ordinary
//! chunks stay mapped for the life of the process, as with any `malloc`.
//!
//! # Locking
//!
//! The threads of a process share the heap, so the table sits behind a spin
//! lock. A thread that finds it taken gives up its CPU (`yield`) instead of
//! spinning: the holder may be a preempted thread on the same CPU, which
//! would otherwise only run again when the spinner's time slice ends.
//! Nothing that runs under the lock allocates, and the panic handler does
//! not allocate either, so a panic inside the allocator cannot deadlock.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use ferrite_abi::{map as map_flags, MAP_MAX};
use linked_list_allocator::Heap;
use spin::mutex::SpinMutex;
use spin::RelaxStrategy;

use crate::sys;

/// The page size of user mappings.
const PAGE_SIZE: usize = 4096;
/// The first ordinary chunk.
pub const MIN_CHUNK: usize = 64 * 1024;
/// How many times ordinary chunks double.
const GROWTH_STEPS: u32 = 6;
/// The biggest ordinary chunk (4 MiB).
pub const MAX_ORDINARY_CHUNK: usize = MIN_CHUNK << GROWTH_STEPS;
/// The most chunks mapped at once: with doubling ordinary chunks, about
/// 240 MiB of small blocks, or fewer big blocks with chunks of their own.
pub const MAX_CHUNKS: usize = 64;
/// Room a fresh chunk needs beyond the block and its alignment: the
/// allocator rounds the block up to a word, puts a free-list entry (two
/// words) in front of it if it must skip bytes to align it, and refuses to
/// leave a gap behind it too small for another entry.
const CHUNK_OVERHEAD: usize = 8 * core::mem::size_of::<usize>();

#[global_allocator]
static ALLOCATOR: Allocator = Allocator { chunks: SpinMutex::new(Chunks::new()) };

/// The lock's wait: yield the CPU to whoever holds it.
struct Yield;

impl RelaxStrategy for Yield {
    fn relax() {
        // Yielding cannot fail; if it did, the loop would simply spin.
        let _ = sys::yield_now();
    }
}

/// One chunk: a heap over memory from `map`.
struct Chunk {
    heap: Heap,
    /// What `map` returned, and its length: what to unmap.
    base: usize,
    len: usize,
    /// Made for one big block: unmapped when that block is freed.
    own: bool,
}

impl Chunk {
    fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr - self.base < self.len
    }
}

/// The table of chunks.
struct Chunks {
    slots: [Option<Chunk>; MAX_CHUNKS],
    /// The slot that served the last allocation: tried first.
    last: usize,
    /// Ordinary chunks mapped so far (they are never unmapped), which sets
    /// the size of the next one.
    ordinary: u32,
}

impl Chunks {
    const fn new() -> Self {
        Self { slots: [const { None }; MAX_CHUNKS], last: 0, ordinary: 0 }
    }

    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        if let Some(chunk) = &mut self.slots[self.last] {
            if let Ok(block) = chunk.heap.allocate_first_fit(layout) {
                return Some(block);
            }
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if i == self.last {
                continue;
            }
            if let Some(chunk) = slot {
                if let Ok(block) = chunk.heap.allocate_first_fit(layout) {
                    self.last = i;
                    return Some(block);
                }
            }
        }
        let i = self.slots.iter().position(Option::is_none)?;
        let mut chunk = self.map_chunk(layout)?;
        // A fresh chunk sized for `layout` cannot fail it; if it somehow
        // did, the chunk stays for later blocks and this one fails.
        let block = chunk.heap.allocate_first_fit(layout).ok();
        self.slots[i] = Some(chunk);
        if block.is_some() {
            self.last = i;
        }
        block
    }

    /// Maps a chunk with room for `layout`: the next ordinary chunk, or one
    /// of its own if the block is bigger.
    fn map_chunk(&mut self, layout: Layout) -> Option<Chunk> {
        let needed = layout.size().checked_add(layout.align())?.checked_add(CHUNK_OVERHEAD)?;
        let needed = needed.checked_next_multiple_of(PAGE_SIZE)?;
        if needed > MAP_MAX as usize {
            return None;
        }
        let ordinary = MIN_CHUNK << self.ordinary.min(GROWTH_STEPS);
        let own = needed > ordinary;
        let len = if own { needed } else { ordinary };
        let base = sys::map(len, map_flags::WRITE).ok()?;
        if !own {
            self.ordinary += 1;
        }
        // SAFETY: `map` just gave this process `len` bytes of fresh writable
        // memory at `base`; only this heap will use them, until the chunk is
        // unmapped (which happens only once the heap has no blocks left).
        let heap = unsafe { Heap::new(base, len) };
        Some(Chunk { heap, base: base.addr(), len, own })
    }

    /// # Safety
    ///
    /// `block` came from [`Chunks::alloc`] with this `layout` and is not
    /// used any more.
    unsafe fn dealloc(&mut self, block: NonNull<u8>, layout: Layout) {
        let addr = block.addr().get();
        for slot in &mut self.slots {
            let Some(chunk) = slot else { continue };
            if !chunk.contains(addr) {
                continue;
            }
            // SAFETY: the caller's promise; the block lies in this chunk, so
            // this chunk's heap allocated it.
            unsafe { chunk.heap.deallocate(block, layout) };
            if chunk.own && chunk.heap.used() == 0 {
                let (base, len) = (chunk.base, chunk.len);
                *slot = None;
                // SAFETY: the chunk came from `map` with this base and
                // length, its only block was just freed, and its heap is
                // gone.
                let unmapped = unsafe { sys::unmap(ptr::with_exposed_provenance_mut(base), len) };
                // An unmap that fails leaks the chunk; nothing can use it
                // any more either way.
                debug_assert!(unmapped.is_ok(), "heap: unmap of a chunk failed: {unmapped:?}");
            }
            return;
        }
        panic!("heap: freeing {addr:#x}, which no heap chunk holds");
    }
}

/// The process's allocator.
struct Allocator {
    chunks: SpinMutex<Chunks, Yield>,
}

// SAFETY: blocks come from `linked_list_allocator`, which returns memory
// of the requested size and alignment that no other block overlaps, inside
// chunks that stay mapped as long as they hold a block; the lock makes
// every change to the table and its heaps exclusive.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.chunks.lock().alloc(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(block) = NonNull::new(block) else { return };
        // SAFETY: `GlobalAlloc`'s contract: the block came from `alloc` with
        // this layout and is no longer used.
        unsafe { self.chunks.lock().dealloc(block, layout) };
    }
}
