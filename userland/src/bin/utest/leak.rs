//! The IPC handle-passing pattern that used to lose memory for good:
//! children given endpoints and a notification block threads in `call`,
//! `recv`, `send`, `reply_recv`, `notify_wait`, `sleep` and
//! `thread_join` on them, and then end (by `exit` from another thread,
//! with their threads blocked, or while the parent is doing IPC on the same
//! endpoints). The kernel runs this case twice and checks that the second
//! run gives back every process, thread, frame and heap byte.

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_user::sys::{self, Handle};
use ferrite_user::thread::{self, JoinHandle};

use crate::harness::{arg, now, Ctx, Outcome, Stall, NS_PER_MS};

/// Children unless `children=` says otherwise.
const DEFAULT_CHILDREN: u64 = 40;
/// The child's handles: an endpoint the parent calls on, one it serves,
/// and a notification it signals.
const CALLED: Handle = 0;
const SERVED: Handle = 1;
const SIGNALLED: Handle = 2;
/// How long one child may take.
const CHILD_LIMIT_NS: u64 = 20_000 * NS_PER_MS;
/// How the children end, by index modulo 4.
const MODES: u64 = 4;

/// `ipc_leak [children=N] [detach=1]`: the parent's threads call on one
/// endpoint, serve the other and signal the notification for the whole
/// run, while children come and go. With `detach=1` the parent closes each
/// child's handle instead of waiting for it, and ends once all are
/// started: what is left behind then is for the kernel to count.
pub fn ipc_leak(args: &str) -> Outcome {
    let children = arg(args, "children")?.unwrap_or(DEFAULT_CHILDREN);
    let detach = arg(args, "detach")?.unwrap_or(0) != 0;
    let called = sys::endpoint_create().ctx("endpoint_create")?;
    let served = sys::endpoint_create().ctx("endpoint_create")?;
    let signalled = sys::notification_create().ctx("notification_create")?;
    // The parent's side runs until the case exits, which ends it.
    let mut parent: Vec<JoinHandle> = Vec::new();
    parent.push(
        thread::spawn(move || loop {
            let _ = sys::call(called, [1, 2, 3, 4]);
        })
        .ctx("spawn the caller")?,
    );
    parent.push(
        thread::spawn(move || loop {
            let _ = sys::reply_recv(served, [5, 6, 7, 8]);
        })
        .ctx("spawn the server")?,
    );
    parent.push(
        thread::spawn(move || loop {
            let _ = sys::signal(signalled, 1);
            let _ = sys::sleep_ns(200_000);
        })
        .ctx("spawn the signaller")?,
    );
    let stall = Stall::start(CHILD_LIMIT_NS, "child")?;
    let started = now()?;
    for i in 0..children {
        stall.step(i)?;
        let mode = i % MODES;
        let child =
            sys::spawn(&format!("utest child_ipc_blocker mode={mode}"), &[called, served, signalled]).ctx("spawn")?;
        if detach {
            sys::handle_close(child).ctx("close the child's handle")?;
        } else {
            check_eq!(sys::wait(child), Ok(mode), "child {i}'s exit code");
        }
    }
    drop(stall);
    core::mem::forget(parent);
    Ok(format!("{children} children ended with threads blocked in IPC ({} ms)", (now()? - started) / NS_PER_MS))
}

/// The child of [`ipc_leak`]: blocks a thread in every kind of wait on
/// the handles it was given, then ends with its mode as the exit code:
/// 0 by `exit` from the main thread, 1 by `exit` from another thread
/// while the main thread waits in `recv`, 2 once one of the parent's calls
/// has been answered (so with the parent's IPC under way), 3 at once,
/// while the threads are still on their way into their calls.
pub fn child_ipc_blocker(args: &str) -> Outcome {
    let mode = arg(args, "mode")?.unwrap_or(0);
    static ANSWERED: AtomicU64 = AtomicU64::new(0);
    let mut threads: Vec<JoinHandle> = Vec::new();
    let spawn = |f: fn()| {
        thread::spawn(move || loop {
            f()
        })
        .ctx("thread::spawn")
    };
    threads.push(spawn(|| _ = sys::recv(CALLED))?);
    threads.push(spawn(|| {
        if sys::reply_recv(CALLED, [9; 4]).is_ok() {
            ANSWERED.fetch_add(1, Ordering::Release);
        }
    })?);
    threads.push(spawn(|| _ = sys::call(SERVED, [1; 4]))?);
    threads.push(spawn(|| _ = sys::send(SERVED, [2; 4]))?);
    threads.push(spawn(|| _ = sys::send(CALLED, [3; 4]))?);
    threads.push(spawn(|| _ = sys::notify_wait(SIGNALLED))?);
    threads.push(spawn(|| _ = sys::sleep_ns(1_000_000_000))?);
    // A thread that waits for one that never ends.
    static FOREVER: AtomicU64 = AtomicU64::new(u64::MAX);
    let forever = spawn(|| _ = sys::notify_wait(SIGNALLED))?;
    FOREVER.store(forever.handle(), Ordering::Release);
    threads.push(forever);
    threads.push(spawn(|| _ = sys::thread_join(FOREVER.load(Ordering::Acquire)))?);
    match mode {
        3 => sys::exit(mode),
        0 => {
            let _ = sys::sleep_ns(NS_PER_MS);
            sys::exit(mode)
        }
        1 => {
            threads.push(spawn_exit(mode)?);
            loop {
                let _ = sys::recv(CALLED);
            }
        }
        _ => {
            let deadline = now()? + 5_000 * NS_PER_MS;
            while ANSWERED.load(Ordering::Acquire) == 0 && now()? < deadline {
                let _ = sys::yield_now();
            }
            sys::exit(mode)
        }
    }
}

/// A thread that ends the process with `code` after a millisecond.
fn spawn_exit(code: u64) -> Result<JoinHandle, alloc::string::String> {
    thread::spawn(move || {
        let _ = sys::sleep_ns(NS_PER_MS);
        sys::exit(code)
    })
    .ctx("spawn the exiting thread")
}
