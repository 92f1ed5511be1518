//! Threads: exit codes, shared memory, `thread_spawn`'s address checks, and
//! the per-process limits on threads and handles.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_abi::{map, nr, Error, MAX_HANDLES, MAX_THREADS, USER_END};
use ferrite_user::{sys, syscall, thread};

use crate::harness::{join_expect, now, spawn_checked, Ctx, Outcome, NS_PER_MS};
use crate::syscalls::{KERNEL_HALF, PAGE};

/// Threads in the `threads` case.
const THREADS: u64 = 16;
/// How often each of them bumps the shared counter.
const INCREMENTS: u64 = 1000;

/// The exit code of thread `i`: distinct for each, and never 0.
fn code_of(i: u64) -> u64 {
    i * 7 + 1
}

/// A handle number the `threads` case never gets (it makes only a few).
const NEVER_A_HANDLE: u64 = 1000;

/// Counts the starts of [`stray_thread`], which no call may cause.
static STRAY_STARTS: AtomicU64 = AtomicU64::new(0);
/// The exit code of a stray thread.
const STRAY_EXIT: u64 = 0x5742;
/// The stack for the `thread_spawn` calls that must be refused.
const STRAY_STACK: usize = 4 * PAGE as usize;
/// How long to give a wrongly started stray thread to show itself.
const STRAY_GRACE_NS: u64 = 10 * NS_PER_MS;

/// A valid entry point for the `thread_spawn` calls that must fail because
/// of another argument. It runs only if the kernel wrongly starts it.
extern "C" fn stray_thread(_arg: u64) -> ! {
    STRAY_STARTS.fetch_add(1, Ordering::SeqCst);
    sys::thread_exit(STRAY_EXIT)
}

/// `thread_spawn` with one bad address: entry or stack top outside user
/// space.
fn bad_spawns() -> Result<usize, String> {
    let stack = sys::map(STRAY_STACK, map::WRITE).ctx("map a stack")?;
    let good_stack = stack.addr() as u64 + STRAY_STACK as u64;
    let good_entry = stray_thread as extern "C" fn(u64) -> ! as usize as u64;
    let cases = [
        ("entry 0", 0, good_stack),
        ("entry in the kernel half", KERNEL_HALF + PAGE, good_stack),
        ("entry USER_END", USER_END, good_stack),
        ("stack top 0", good_entry, 0),
        ("stack top in the kernel half", good_entry, KERNEL_HALF),
    ];
    for (what, entry, stack_top) in cases {
        // SAFETY: the kernel must refuse each of these. If it wrongly
        // starts a thread, that thread runs at a bad address (and faults,
        // ending the process: a failure for the runner) or runs
        // `stray_thread`, which touches only an atomic, on a stack that
        // stays mapped and unused until the process ends.
        let raw = unsafe { syscall::syscall3(nr::THREAD_SPAWN, entry, stack_top, 0) };
        check_eq!(raw.result(), Err(Error::BadAddress), "thread_spawn with {what}");
    }
    sys::sleep_ns(STRAY_GRACE_NS).ctx("sleep")?;
    check_eq!(STRAY_STARTS.load(Ordering::SeqCst), 0, "stray thread starts");
    // The stack stays mapped: it is only 4 pages, and a thread the kernel
    // started wrongly (and this case failed to see) could still use it.
    Ok(cases.len())
}

/// Exit codes, a shared counter, double joins, and bad `thread_spawn`s.
pub fn threads(_args: &str) -> Outcome {
    let counter = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for i in 0..THREADS {
        let counter = counter.clone();
        let t = thread::spawn(move || {
            for _ in 0..INCREMENTS {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            code_of(i)
        })
        .ctx("thread::spawn")?;
        handles.push(t);
    }
    let mut numbers = Vec::new();
    for (i, t) in (0..THREADS).zip(handles) {
        numbers.push(t.handle());
        check_eq!(t.join(), Ok(code_of(i)), "join of thread {i}");
    }
    check_eq!(counter.load(Ordering::Relaxed), THREADS * INCREMENTS, "the shared counter");
    for &h in &numbers {
        check_eq!(sys::thread_join(h), Err(Error::BadHandle), "a second join of handle {h}");
    }
    check!(!numbers.contains(&NEVER_A_HANDLE), "handle {NEVER_A_HANDLE} was used after all");
    for h in [NEVER_A_HANDLE, MAX_HANDLES, u64::MAX] {
        check_eq!(sys::thread_join(h), Err(Error::BadHandle), "join of {h}, never a handle");
    }
    let refused = bad_spawns()?;
    Ok(format!("{THREADS} threads, {refused} bad spawns refused"))
}

/// How long the released threads of `thread_limit` may take to end.
const RELEASE_NS: u64 = 10_000_000_000;
/// The bits the main thread signals to release them.
const RELEASE_BIT: u64 = 1;

/// Fills the process with blocked threads until the kernel refuses one:
/// there must be exactly [`MAX_THREADS`] with the main thread.
pub fn thread_limit(_args: &str) -> Outcome {
    let gate = sys::notification_create().ctx("notification_create")?;
    let released = Arc::new(AtomicU64::new(0));
    let mut blocked = Vec::new();
    // MAX_THREADS besides main is one more than the limit allows, so a
    // kernel without a limit ends the loop too.
    let refusal = loop {
        if blocked.len() as u64 >= MAX_THREADS {
            break None;
        }
        let released = released.clone();
        match spawn_checked(move || {
            sys::notify_wait(gate).ctx("notify_wait")?;
            released.fetch_add(1, Ordering::SeqCst);
            Ok(0)
        }) {
            Ok(t) => blocked.push(t),
            Err(e) => break Some(e),
        }
    };
    let created = blocked.len() as u64;
    // Each waiter takes the whole word, so signal until every one of them
    // has been released (or the deadline passes: then exiting with the
    // failure ends the rest).
    let deadline = now()? + RELEASE_NS;
    while released.load(Ordering::SeqCst) < created {
        check!(now()? < deadline, "only {} of {created} threads released", released.load(Ordering::SeqCst));
        sys::signal(gate, RELEASE_BIT).ctx("signal")?;
        sys::yield_now().ctx("yield")?;
    }
    for t in blocked {
        join_expect(t, 0)?;
    }
    check_eq!(created + 1, MAX_THREADS, "threads alive at the refusal (with main), refusal {refusal:?}");
    check_eq!(refusal, Some(Error::NoMemory), "the refusal");
    let again = thread::spawn(|| 0).ctx("a spawn after the limit")?;
    join_expect(again, 0)?;
    sys::handle_close(gate).ctx("close the notification")?;
    Ok(format!("{created} threads + main"))
}

/// Creates endpoints until the kernel refuses one: there must be exactly
/// [`MAX_HANDLES`] (the case holds no other handle).
pub fn handle_limit(_args: &str) -> Outcome {
    let mut handles = Vec::with_capacity(MAX_HANDLES as usize + 1);
    let refusal = loop {
        // One more than the limit allows, so a kernel without a limit ends
        // the loop too.
        if handles.len() as u64 > MAX_HANDLES {
            break None;
        }
        match sys::endpoint_create() {
            Ok(h) => handles.push(h),
            Err(e) => break Some(e),
        }
    };
    let created = handles.len() as u64;
    for &h in &handles {
        check_eq!(sys::handle_close(h), Ok(()), "close of handle {h}");
    }
    check_eq!(created, MAX_HANDLES, "endpoints created before the refusal {refusal:?}");
    check_eq!(refusal, Some(Error::NoMemory), "the refusal");
    let closed = handles[0];
    check_eq!(sys::handle_close(closed), Err(Error::BadHandle), "a second close of handle {closed}");
    let again = sys::endpoint_create().ctx("endpoint_create after closing all")?;
    sys::handle_close(again).ctx("close it")?;
    Ok(format!("{created} handles"))
}
