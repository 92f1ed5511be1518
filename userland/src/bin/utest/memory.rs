//! `map` and `unmap`: alignment, zeroing, permissions, the argument checks,
//! partial unmaps, and running the kernel out of memory.
//!
//! Memory from `map` is touched through raw pointers with volatile accesses:
//! the point is what the hardware and the kernel do with each access, which
//! the compiler must not merge or drop.

use alloc::format;
use alloc::string::String;

use ferrite_abi::{map as flags, Error, MAP_MAX};
use ferrite_user::sys;

use crate::harness::{addr, Ctx, Outcome};
use crate::raw;
use crate::syscalls::PAGE;

/// The page size as a length.
const PAGE_LEN: usize = PAGE as usize;

/// A flag bit `map` does not know.
const UNKNOWN_FLAG: u64 = 0x80;

/// Reads byte `offset` of a mapping.
///
/// # Safety
///
/// `base + offset` must lie in readable memory from `map` that nothing
/// else writes to at the same time.
unsafe fn peek(base: *mut u8, offset: usize) -> u8 {
    // SAFETY: the caller's promise.
    unsafe { base.add(offset).read_volatile() }
}

/// Writes byte `offset` of a mapping.
///
/// # Safety
///
/// `base + offset` must lie in writable memory from `map` that nothing
/// else uses at the same time.
unsafe fn poke(base: *mut u8, offset: usize, value: u8) {
    // SAFETY: the caller's promise.
    unsafe { base.add(offset).write_volatile(value) }
}

/// A byte that differs per page and per test, to tell pages apart.
fn marker(page: usize, salt: u8) -> u8 {
    (page as u8).wrapping_mul(31).wrapping_add(salt) | 1
}

/// One writable page: aligned, zeroed, and keeps what is written.
fn one_page() -> Result<(), String> {
    let page = sys::map(PAGE_LEN, flags::WRITE).ctx("map one page")?;
    check_eq!(page.addr() % PAGE_LEN, 0, "alignment of map's address {page:p}");
    for offset in 0..PAGE_LEN {
        // SAFETY: the page is ours, readable, and used by nothing else.
        let byte = unsafe { peek(page, offset) };
        check_eq!(byte, 0, "byte {offset} of a fresh page");
    }
    for offset in 0..PAGE_LEN {
        // SAFETY: as above, and writable.
        unsafe { poke(page, offset, offset as u8 ^ 0x5a) };
    }
    for offset in 0..PAGE_LEN {
        // SAFETY: as above.
        let byte = unsafe { peek(page, offset) };
        check_eq!(byte, offset as u8 ^ 0x5a, "byte {offset} read back");
    }
    // SAFETY: the page came from `map` and is not used any more.
    unsafe { sys::unmap(page, PAGE_LEN) }.ctx("unmap one page")?;
    Ok(())
}

/// A length one byte over three pages maps four, all writable.
fn rounding() -> Result<(), String> {
    let len = 3 * PAGE_LEN + 1;
    let pages = sys::map(len, flags::WRITE).ctx("map 3 pages + 1 byte")?;
    for page in 0..4 {
        for offset in [page * PAGE_LEN, page * PAGE_LEN + PAGE_LEN - 1] {
            // SAFETY: four pages were mapped writable; `offset` is in them.
            unsafe { poke(pages, offset, marker(page, 1)) };
        }
    }
    for page in 0..4 {
        for offset in [page * PAGE_LEN, page * PAGE_LEN + PAGE_LEN - 1] {
            // SAFETY: as above.
            let byte = unsafe { peek(pages, offset) };
            check_eq!(byte, marker(page, 1), "byte {offset} of a 3-page + 1 mapping");
        }
    }
    // SAFETY: the pages came from `map` (the same length rounds the same
    // way) and are not used any more.
    unsafe { sys::unmap(pages, len) }.ctx("unmap 3 pages + 1 byte")?;
    Ok(())
}

/// What `map` and `unmap` must refuse.
fn refusals() -> Result<(), String> {
    check_eq!(sys::map(0, flags::WRITE), Err(Error::BadLength), "map(0)");
    check_eq!(sys::map(MAP_MAX as usize + 1, flags::WRITE), Err(Error::BadLength), "map(MAP_MAX + 1)");
    check_eq!(sys::map(PAGE_LEN, UNKNOWN_FLAG), Err(Error::BadArgument), "map with flags {UNKNOWN_FLAG:#x}");

    let page = sys::map(PAGE_LEN, flags::WRITE).ctx("map one page")?;
    // SAFETY: the page is ours; poke it so that losing it would show.
    unsafe { poke(page, 0, marker(0, 2)) };
    // SAFETY: this unmap and the three below must each be refused with
    // nothing unmapped. If the kernel wrongly obeyed, the page, our
    // code or our stack would vanish and the process would fault: the
    // runner sees that as a failure, and Rust never sees freed memory.
    let misaligned = unsafe { sys::unmap(page.wrapping_add(1), PAGE_LEN) };
    check_eq!(misaligned, Err(Error::BadAddress), "unmap of a misaligned address");
    // SAFETY: see above.
    let zero = unsafe { sys::unmap(page, 0) };
    check_eq!(zero, Err(Error::BadLength), "unmap with length 0");
    let code = (refusals as fn() -> Result<(), String> as usize) & !(PAGE_LEN - 1);
    // SAFETY: see above.
    let unmap_code = unsafe { sys::unmap(code as *mut u8, PAGE_LEN) };
    check_eq!(unmap_code, Err(Error::BadAddress), "unmap of our code at {code:#x}");
    let local = 0u64;
    let stack = addr(&local) as usize & !(PAGE_LEN - 1);
    // SAFETY: see above.
    let unmap_stack = unsafe { sys::unmap(stack as *mut u8, PAGE_LEN) };
    check_eq!(unmap_stack, Err(Error::BadAddress), "unmap of our stack at {stack:#x}");
    // SAFETY: the page is still ours (every unmap above was refused).
    let kept = unsafe { peek(page, 0) };
    check_eq!(kept, marker(0, 2), "the page after refused unmaps");
    // SAFETY: the page came from `map` and is not used any more.
    unsafe { sys::unmap(page, PAGE_LEN) }.ctx("unmap one page")?;
    Ok(())
}

/// Unmapping part of a mapping keeps the rest, and an unmap that covers a
/// hole is refused whole.
fn partial() -> Result<(), String> {
    let pages = sys::map(3 * PAGE_LEN, flags::WRITE).ctx("map 3 pages")?;
    for page in 0..3 {
        // SAFETY: three pages mapped writable, used by nothing else.
        unsafe { poke(pages, page * PAGE_LEN, marker(page, 3)) };
    }
    let middle = pages.wrapping_add(PAGE_LEN);
    // SAFETY: the middle page came from `map`; nothing uses it.
    unsafe { sys::unmap(middle, PAGE_LEN) }.ctx("unmap the middle page")?;
    // Nothing is allocated from here to the refused unmap, so nothing can
    // have been mapped into the hole.
    // SAFETY: must be refused, since the second page is no longer mapped.
    // If the kernel wrongly unmapped the first page, the read below
    // faults (a failure for the runner); Rust holds no reference to it.
    let over_hole = unsafe { sys::unmap(pages, 2 * PAGE_LEN) };
    check_eq!(over_hole, Err(Error::BadAddress), "unmap of a mapped page and a hole");
    for page in [0, 2] {
        // SAFETY: pages 0 and 2 are still mapped.
        let byte = unsafe { peek(pages, page * PAGE_LEN) };
        check_eq!(byte, marker(page, 3), "page {page} after unmapping the middle one");
    }
    for page in [0, 2] {
        // SAFETY: each page came from `map` and is not used any more.
        unsafe { sys::unmap(pages.wrapping_add(page * PAGE_LEN), PAGE_LEN) }.ctx("unmap an outer page")?;
    }
    Ok(())
}

/// A read-only mapping reads as zeros, and the kernel may read it.
fn read_only() -> Result<(), String> {
    let page = sys::map(PAGE_LEN, 0).ctx("map read-only")?;
    for offset in 0..PAGE_LEN {
        // SAFETY: the page is ours and readable.
        let byte = unsafe { peek(page, offset) };
        check_eq!(byte, 0, "byte {offset} of a read-only page");
    }
    // The kernel may read it: as a spawn command of 16 NUL bytes it is a
    // name no module has (NotFound, not BadAddress). Writing it to the
    // console would put a NUL byte in the serial log.
    check_eq!(raw::spawn(page.addr() as u64, 16, 0, 0), Err(Error::NotFound), "spawn from a read-only page");
    // SAFETY: the page came from `map` and is not used any more.
    unsafe { sys::unmap(page, PAGE_LEN) }.ctx("unmap read-only")?;
    Ok(())
}

/// `map` and `unmap`.
pub fn map(_args: &str) -> Outcome {
    one_page()?;
    rounding()?;
    refusals()?;
    partial()?;
    read_only()?;
    Ok(String::new())
}

/// The sizes of the mappings in `map_exhaust`, largest first: big chunks
/// for speed, then smaller ones to take what the big ones leave, down to a
/// page, so that memory runs out on any machine size (a 64 MiB one
/// included) and to the last page the kernel gives programs.
const CHUNKS: [usize; 5] = [64 << 20, 4 << 20, 1 << 20, 64 << 10, 4 << 10];
/// Bytes in a MiB, for the report.
const MIB: usize = 1 << 20;
/// Room for 64 GiB of the largest chunks and the few smaller ones that
/// follow (fewer than 16 of each: each size is a sixteenth of the one
/// before, or less); a machine with more memory than that ends the case
/// with a failure rather than a stack overflow.
const MAX_CHUNKS: usize = 1024 + 4 * 16;

/// Mappings made by `map_exhaust`, kept on the stack so that the heap never
/// needs memory while there is none.
pub struct Chunks {
    list: [(*mut u8, usize); MAX_CHUNKS],
    count: usize,
}

impl Chunks {
    pub const fn new() -> Chunks {
        Chunks { list: [(core::ptr::null_mut(), 0); MAX_CHUNKS], count: 0 }
    }

    /// Maps chunks, largest size first, each size until the kernel refuses
    /// it, until `budget` bytes are mapped or the list is full; returns the
    /// error that stopped the smallest size. It formats nothing: while
    /// memory is exhausted the heap may not grow.
    pub fn fill(&mut self, budget: usize) -> Option<Error> {
        let mut stop = None;
        let mut mapped = 0;
        for size in CHUNKS {
            stop = None;
            while self.count < MAX_CHUNKS && mapped + size <= budget {
                match sys::map(size, flags::WRITE) {
                    Ok(chunk) => {
                        // SAFETY: the chunk is ours and writable; touching it
                        // makes sure a lazy kernel really backs it.
                        unsafe { poke(chunk, 0, 1) };
                        self.list[self.count] = (chunk, size);
                        self.count += 1;
                        mapped += size;
                    }
                    Err(e) => {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        stop
    }

    pub fn bytes(&self) -> usize {
        self.list[..self.count].iter().map(|&(_, size)| size).sum()
    }

    /// Unmaps the last chunk mapped; returns its size (0: none left).
    pub fn release_last(&mut self) -> Result<usize, String> {
        let Some(i) = self.count.checked_sub(1) else { return Ok(0) };
        let (chunk, size) = self.list[i];
        // SAFETY: the chunk came from `map` and is not used any more.
        check_eq!(unsafe { sys::unmap(chunk, size) }, Ok(()), "unmap of chunk {i}");
        self.count = i;
        Ok(size)
    }

    /// Unmaps every chunk.
    pub fn release(&mut self) -> Result<(), String> {
        for (i, &(chunk, size)) in self.list[..self.count].iter().enumerate() {
            // SAFETY: the chunk came from `map` and is not used any more.
            let unmapped = unsafe { sys::unmap(chunk, size) };
            check_eq!(unmapped, Ok(()), "unmap of chunk {i}");
        }
        self.count = 0;
        Ok(())
    }
}

/// Maps until the kernel runs out of memory, gives it all back, and does it
/// again: the second time must get as far (give or take a few MiB for the
/// kernel's own page tables and heap). The kernel compares its free-frame
/// count before and after.
pub fn map_exhaust(_args: &str) -> Outcome {
    let mut chunks = Chunks { list: [(core::ptr::null_mut(), 0); MAX_CHUNKS], count: 0 };
    let stop = chunks.fill(usize::MAX);
    let first = chunks.bytes();
    chunks.release()?;
    check_eq!(stop, Some(Error::NoMemory), "what stopped mapping after {} MiB", first / MIB);
    check!(first > 0, "not even {} MiB could be mapped", CHUNKS[CHUNKS.len() - 1] / MIB);
    let stop = chunks.fill(first);
    let second = chunks.bytes();
    chunks.release()?;
    let slack = 4 * MIB;
    check!(
        second + slack >= first,
        "mapped {} MiB the second time ({stop:?}), {} MiB the first",
        second / MIB,
        first / MIB
    );
    Ok(format!("{} MiB, then {} MiB", first / MIB, second / MIB))
}

/// Threads `exhaust_all` starts before it takes the memory.
const EXHAUST_THREADS: usize = 8;

/// A thread entry for the `thread_spawn` that must be refused when memory
/// is out; it runs only if the kernel wrongly starts it (and then exits).
extern "C" fn refused_thread(_arg: u64) -> ! {
    sys::thread_exit(1)
}

/// `exhaust_all`: the process takes all the memory the kernel gives to
/// programs (blocked threads first, then `map` until it refuses), and then
/// every request that needs memory must fail with NoMemory, not with a
/// kernel that ran out itself: a thread (its kernel stack), a process, a
/// mapping. Everything is given back, and then works again; the kernel's
/// runner checks that its memory came back too.
pub fn exhaust_all(_args: &str) -> Outcome {
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use ferrite_user::thread;
    let bell = sys::notification_create().ctx("notification_create")?;
    let woken = Arc::new(AtomicU64::new(0));
    // Allocated before memory runs out: the heap cannot grow then.
    let mut threads = Vec::with_capacity(EXHAUST_THREADS);
    for _ in 0..EXHAUST_THREADS {
        let woken = woken.clone();
        threads.push(
            thread::spawn(move || {
                let code = sys::notify_wait(bell).map_or(1, |_| 0);
                woken.fetch_add(1, Ordering::AcqRel);
                code
            })
            .ctx("spawn")?,
        );
    }
    let stack = sys::map(4 * PAGE_LEN, flags::WRITE).ctx("map a stack")?;
    let mut chunks = Chunks { list: [(core::ptr::null_mut(), 0); MAX_CHUNKS], count: 0 };
    let stop = chunks.fill(usize::MAX);
    let taken = chunks.bytes();
    let entry = refused_thread as extern "C" fn(u64) -> ! as usize as u64;
    // SAFETY: the kernel must refuse it (no memory for its kernel stack);
    // if it wrongly starts it, it exits at once on a stack of its own.
    let thread = unsafe {
        ferrite_user::syscall::syscall3(ferrite_abi::nr::THREAD_SPAWN, entry, stack.addr() as u64 + 4 * PAGE, 0)
    }
    .result();
    let process = raw::spawn_cmd("hello exhausted", &[]);
    let mapping = sys::map(PAGE_LEN, flags::WRITE).map(|_| ());
    chunks.release()?;
    check_eq!(stop, Some(Error::NoMemory), "what stopped map after {} MiB", taken / MIB);
    check_eq!(thread.map(|_| ()), Err(Error::NoMemory), "thread_spawn with no memory left");
    check_eq!(process.map(|_| ()), Err(Error::NoMemory), "spawn with no memory left");
    check_eq!(mapping, Err(Error::NoMemory), "map with no memory left");
    // A waiter takes the whole word: ring until every one has woken.
    while woken.load(Ordering::Acquire) < EXHAUST_THREADS as u64 {
        sys::signal(bell, 1).ctx("signal")?;
        sys::yield_now().ctx("yield")?;
    }
    for t in threads {
        check_eq!(t.join(), Ok(0), "a blocked thread");
    }
    // SAFETY: the stack came from `map` and no thread uses it.
    unsafe { sys::unmap(stack, 4 * PAGE_LEN) }.ctx("unmap the stack")?;
    let again = raw::spawn_cmd("hello again", &[]).ctx("spawn after the memory came back")?;
    check_eq!(sys::wait(again), Ok(0), "hello after the memory came back");
    Ok(format!("{} MiB taken, {EXHAUST_THREADS} threads; every request refused with NoMemory", taken / MIB))
}

/// Threads of `map_race`, and the rounds each makes.
const RACERS: u64 = 4;
const RACE_ROUNDS: u64 = 400;

/// `map_race`: threads of one process map and unmap at once, on every CPU:
/// an address `unmap` gives back must not be handed out again while its
/// pages are still mapped (a `map` that lands on them finds them taken).
pub fn map_race(_args: &str) -> Outcome {
    use crate::harness::spawn_checked;
    let cpus = sys::cpu_count().ctx("cpu_count")?;
    let mut threads = alloc::vec::Vec::new();
    for t in 0..RACERS {
        threads.push(
            spawn_checked(move || {
                sys::set_affinity(t % cpus).ctx("pin")?;
                for round in 0..RACE_ROUNDS {
                    let len = PAGE_LEN * (1 + (round as usize * 7 + t as usize) % 16);
                    let at = sys::map(len, flags::WRITE).ctx("map")?;
                    // SAFETY: ours, writable, used by nothing else.
                    unsafe { poke(at, 0, 1) };
                    // SAFETY: just mapped, used by nothing any more.
                    unsafe { sys::unmap(at, len) }.ctx("unmap")?;
                }
                Ok(RACE_ROUNDS)
            })
            .ctx("spawn")?,
        );
    }
    for t in threads {
        crate::harness::join_expect(t, RACE_ROUNDS)?;
    }
    Ok(format!("{RACERS} threads mapped and unmapped {RACE_ROUNDS} times each"))
}
