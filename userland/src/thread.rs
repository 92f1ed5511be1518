//! Threads of the calling process, each on a stack of its own.
//!
//! # Stacks
//!
//! [`spawn`] maps [`STACK_SIZE`] bytes plus one page with `map` and unmaps
//! that lowest page again, so the page below the stack is a hole: a thread
//! that overflows its stack faults there (the process ends with
//! [`ferrite_abi::EXIT_FAULT`]) instead of writing over whatever lies
//! below. The stack may only be unmapped once the thread has exited, and
//! only [`JoinHandle::join`] knows that: it unmaps the stack after
//! `thread_join` returned. A `JoinHandle` dropped without joining therefore
//! leaks the stack and the kernel's thread handle, rather than freeing
//! memory that a running thread may still use.
//!
//! # Start
//!
//! The kernel starts the thread at an entry address with `rsp` at the top
//! of the stack (16-byte aligned, nothing pushed) and `rdi` = an argument.
//! As with a program's `_start` (see [`crate::rt`]), a Rust function cannot
//! be entered that way, so the entry is a naked stub that `call`s the Rust
//! start function, `thread_start`, which sees the usual alignment and
//! `rdi` as its argument. That argument is the closure, boxed twice: a
//! `Box<dyn FnOnce>` is two words, and `rdi` holds one, so the thread gets
//! a thin pointer to a box holding the fat one. The thread owns the box
//! from then on, runs the closure, and ends with `thread_exit` and the
//! closure's result, which is what `join` returns.
//!
//! There is no thread-local storage: a thread keeps its data on its stack
//! or in what its closure captured.

use alloc::boxed::Box;
use core::ptr;

use ferrite_abi::{map as map_flags, Error};

use crate::sys::{self, Handle};

/// The usable stack of every thread.
pub const STACK_SIZE: usize = 64 * 1024;
/// The unmapped page below each stack.
const GUARD_SIZE: usize = 4096;

/// What a thread runs.
type Job = Box<dyn FnOnce() -> u64 + Send + 'static>;

/// A thread's mapped stack (the guard page below it excluded).
struct Stack {
    /// Lowest mapped address, just above the guard page.
    bottom: usize,
}

impl Stack {
    /// Maps a stack with a guard page below it.
    fn map() -> Result<Stack, Error> {
        let base = sys::map(GUARD_SIZE + STACK_SIZE, map_flags::WRITE)?;
        // SAFETY: the first page of the mapping just made, which nothing
        // uses.
        if let Err(e) = unsafe { sys::unmap(base, GUARD_SIZE) } {
            // SAFETY: the whole mapping just made, which nothing uses.
            let _ = unsafe { sys::unmap(base, GUARD_SIZE + STACK_SIZE) };
            return Err(e);
        }
        Ok(Stack { bottom: base.addr() + GUARD_SIZE })
    }

    /// The initial stack pointer: the end of the mapping, page aligned and
    /// so 16-byte aligned as the ABI asks.
    fn top(&self) -> usize {
        self.bottom + STACK_SIZE
    }

    /// Gives the stack back to the kernel.
    ///
    /// # Safety
    ///
    /// No thread runs on the stack any more, and nothing points into it.
    unsafe fn unmap(self) -> Result<(), Error> {
        // SAFETY: `map` made these pages; the caller promises nothing uses
        // them.
        unsafe { sys::unmap(ptr::with_exposed_provenance_mut(self.bottom), STACK_SIZE) }
    }
}

/// A running (or finished, not yet joined) thread.
///
/// Dropping it without [`join`](JoinHandle::join) leaks the thread's stack
/// and its kernel handle: only a join knows that the thread no longer uses
/// its stack. The thread itself runs on.
#[must_use = "dropping a JoinHandle leaks the thread's stack and handle"]
pub struct JoinHandle {
    handle: Handle,
    stack: Stack,
}

impl JoinHandle {
    /// Waits for the thread to end and returns its closure's result. The
    /// kernel handle is closed and the stack unmapped then.
    ///
    /// On an error (a handle closed behind this `JoinHandle`'s back) the
    /// thread may still run, so its stack is leaked.
    pub fn join(self) -> Result<u64, Error> {
        let code = sys::thread_join(self.handle)?;
        // SAFETY: `thread_join` returned, so the thread has exited and runs
        // on the stack no more; nothing outside it points into it (a
        // closure's captures were moved onto the heap, not borrowed from
        // the stack).
        if let Err(e) = unsafe { self.stack.unmap() } {
            panic!("thread: unmapping the stack of a joined thread failed: {e:?}");
        }
        Ok(code)
    }

    /// The kernel's handle for the thread (closed by [`join`](Self::join)).
    pub fn handle(&self) -> Handle {
        self.handle
    }
}

/// Starts `f` in a new thread of this process, on a stack of its own
/// ([`STACK_SIZE`], with an unmapped guard page below). The thread ends
/// with `f`'s result as its exit code; [`JoinHandle::join`] returns it.
///
/// Fails with the kernel's error if it cannot map the stack or make the
/// thread (at most [`ferrite_abi::MAX_THREADS`] live in a process).
pub fn spawn<F>(f: F) -> Result<JoinHandle, Error>
where
    F: FnOnce() -> u64 + Send + 'static,
{
    let stack = Stack::map()?;
    let job: *mut Job = Box::into_raw(Box::new(Box::new(f)));
    let entry = thread_entry as *const () as u64;
    // SAFETY: `thread_entry` starts the way the ABI describes and never
    // returns; the stack below `top` is fresh writable memory that only the
    // new thread uses (until `join` unmaps it after the thread exited).
    // `job` is a valid box whose ownership passes to the thread.
    let spawned = unsafe { sys::thread_spawn(entry, stack.top() as u64, job.expose_provenance() as u64) };
    match spawned {
        Ok(handle) => Ok(JoinHandle { handle, stack }),
        Err(e) => {
            // SAFETY: no thread was made, so the box and the stack are still
            // only ours.
            unsafe {
                drop(Box::from_raw(job));
                let _ = stack.unmap();
            }
            Err(e)
        }
    }
}

/// Gives the CPU to another ready thread, if there is one.
pub fn yield_now() {
    // The ABI's `yield` always succeeds.
    let _ = sys::yield_now();
}

/// Sleeps for at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    // The ABI's `sleep` always succeeds.
    let _ = sys::sleep_ns(ns);
}

/// Where a new thread starts: realigns the stack for Rust by calling
/// [`thread_start`], with `rdi` (the job) passed through.
#[unsafe(naked)]
extern "C" fn thread_entry() -> ! {
    core::arch::naked_asm!("xor ebp, ebp", "call {start}", "ud2", start = sym thread_start)
}

/// Runs the job [`spawn`] handed over and ends the thread with its result.
extern "C" fn thread_start(job: *mut Job) -> ! {
    // SAFETY: `spawn` passed a box made by `Box::into_raw` and gave up its
    // ownership to this thread, which takes it exactly once.
    let job = unsafe { Box::from_raw(job) };
    sys::thread_exit(job())
}
