//! Out of memory is an error, never a panic, and quotas keep one process
//! (with its children) from taking what others need.
//!
//! - `heap_exhaust`: with user memory taken down to the kernel's reserve,
//!   dozens of processes fill their handle tables with endpoints: the
//!   kernel's heap may not grow for them, so they get `NoMemory`, and the
//!   kernel carries on.
//! - `concurrent_maps`: threads on every CPU map at once, each two thirds
//!   of what is left: together they may never take more than that (the
//!   kernel checks that its reserve was never touched).
//! - `quotas`: a child at each of its limits (memory, threads, exited
//!   threads not yet joined, handles, processes) gets `NoMemory`, while its
//!   neighbour, with the default limits, carries on.
//! - `unjoined_threads`: a thread that has exited holds no kernel stack,
//!   only its exit code, however long its handle stays open.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use ferrite_abi::{map as flags, nr, rights, Error, Grant, Limits};
use ferrite_user::sys::{self, Handle};
use ferrite_user::{syscall, thread};

use crate::harness::{arg, join_expect, now, spawn_checked, Ctx, Outcome, Stall, Watchdog, NS_PER_MS};
use crate::memory::Chunks;
use crate::raw;

/// Children of `heap_exhaust` unless `children=` says otherwise.
const DEFAULT_CHILDREN: u64 = 48;
/// The exit code of a child of `heap_exhaust` that saw `NoMemory`.
const FILLED: u64 = 0x1_0000;
/// The handle a child is given.
const GIVEN: Handle = 0;

/// `heap_exhaust [children=N]`: the children, started first, wait for a
/// bell; the parent takes every page it can; then every child fills its
/// handle table at the same time, reports how far it got over an endpoint
/// (`send`), and holds on to its endpoints until all have reported.
pub fn heap_exhaust(args: &str) -> Outcome {
    let children = arg(args, "children")?.unwrap_or(DEFAULT_CHILDREN);
    let bell = sys::notification_create().ctx("notification_create")?;
    let release = sys::notification_create().ctx("notification_create")?;
    let reports = sys::endpoint_create().ctx("endpoint_create")?;
    let mut kids = Vec::with_capacity(children as usize);
    for _ in 0..children {
        kids.push(sys::spawn("utest child_fill_handles", &[bell, reports, release]).ctx("spawn child_fill_handles")?);
    }
    // Everything this process needs while memory is out, made first: a
    // thread that keeps ringing one of the bells (each signal wakes one
    // waiter), the stall watchdog, room for the reports.
    // What the ringer rings: a handle plus one, 0 for nothing yet, and
    // u64::MAX to stop.
    let ringing = Arc::new(AtomicU64::new(0));
    let which = ringing.clone();
    let ringer = spawn_checked(move || loop {
        match which.load(Ordering::Acquire) {
            0 => {}
            u64::MAX => return Ok(0),
            h => sys::signal(h - 1, 1).ctx("signal")?,
        }
        sys::sleep_ns(NS_PER_MS).ctx("sleep")?;
    })
    .ctx("spawn the ringer")?;
    let stall = Stall::start(60_000 * NS_PER_MS, "child")?;
    let mut made = Vec::with_capacity(children as usize);
    let mut codes = Vec::with_capacity(children as usize);
    let mut chunks = Chunks::new();
    let stop = chunks.fill(usize::MAX);
    let taken = chunks.bytes();
    ringing.store(bell + 1, Ordering::Release);
    for i in 0..children {
        stall.step(i)?;
        made.push(sys::recv(reports).map(|(_, msg)| msg[0]));
    }
    ringing.store(release + 1, Ordering::Release);
    for (i, &kid) in kids.iter().enumerate() {
        stall.step(children + i as u64)?;
        codes.push(sys::wait(kid));
    }
    chunks.release()?;
    ringing.store(u64::MAX, Ordering::Release);
    join_expect(ringer, 0)?;
    drop(stall);
    check_eq!(stop, Some(Error::NoMemory), "what stopped map after {} MiB", taken >> 20);
    let mut total = 0;
    for (i, (made, code)) in made.into_iter().zip(codes).enumerate() {
        check_eq!(code, Ok(FILLED), "child {i}'s exit code");
        total += made.ctx("a child's report")?;
    }
    let again = sys::endpoint_create().ctx("endpoint_create once memory is back")?;
    sys::handle_close(again).ctx("close")?;
    Ok(format!("{children} children held {total} endpoints at once with {} MiB of user memory taken", taken >> 20))
}

/// The child of `heap_exhaust` (handles: the bell, the report endpoint and
/// the release bell): once rung, makes endpoints until the kernel refuses,
/// which must be `NoMemory`; reports how many; waits to be
/// released. Formats nothing unless it fails (its own heap cannot grow
/// either).
pub fn child_fill_handles(_args: &str) -> Outcome {
    sys::notify_wait(GIVEN).ctx("wait for the bell")?;
    let mut made = 0;
    let refusal = loop {
        match sys::endpoint_create() {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
    };
    check_eq!(refusal, Error::NoMemory, "what stopped endpoint_create after {made}");
    sys::send(1, [made, 0, 0, 0]).ctx("report")?;
    sys::notify_wait(2).ctx("wait for the release")?;
    sys::exit(FILLED)
}

/// How much of what `concurrent_maps` frees each thread asks for: two
/// thirds, so that two may never both get it.
fn two_thirds(freed: usize) -> usize {
    freed / 3 * 2 / 4096 * 4096
}
/// What `concurrent_maps` frees before the race, at least.
const ROOM: usize = 8 << 20;

/// `concurrent_maps`: one thread pinned to each CPU; memory taken to the
/// last page; `ROOM` freed; every thread maps two thirds of it at the same
/// moment and keeps what it got until every racer has tried (one that
/// mapped and unmapped before another started would make room for it).
/// What they got together must fit in what was free.
pub fn concurrent_maps(_args: &str) -> Outcome {
    let cpus = sys::cpu_count().ctx("cpu_count")?;
    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(AtomicUsize::new(0));
    let share = Arc::new(AtomicUsize::new(0));
    let tried = Arc::new(AtomicUsize::new(0));
    let mut racers = Vec::new();
    for cpu in 0..cpus {
        let (go, ready, got, share, tried) = (go.clone(), ready.clone(), got.clone(), share.clone(), tried.clone());
        racers.push(
            spawn_checked(move || {
                sys::set_affinity(cpu).ctx("pin")?;
                ready.fetch_add(1, Ordering::AcqRel);
                while !go.load(Ordering::Acquire) {
                    core::hint::spin_loop();
                }
                let want = share.load(Ordering::Acquire);
                let mapped = sys::map(want, flags::WRITE).ok();
                if mapped.is_some() {
                    got.fetch_add(want, Ordering::AcqRel);
                }
                tried.fetch_add(1, Ordering::AcqRel);
                while tried.load(Ordering::Acquire) < cpus as usize {
                    sys::yield_now().ctx("yield")?;
                }
                if let Some(at) = mapped {
                    // SAFETY: mapped above, used by nothing.
                    unsafe { sys::unmap(at, want) }.ctx("unmap")?;
                }
                Ok(0)
            })
            .ctx("spawn a racer")?,
        );
    }
    let deadline = now()? + 10_000 * NS_PER_MS;
    while ready.load(Ordering::Acquire) < cpus as usize {
        check!(now()? < deadline, "the racers never got ready");
        sys::yield_now().ctx("yield")?;
    }
    let mut chunks = Chunks::new();
    let stop = chunks.fill(usize::MAX);
    let mut freed = 0;
    while freed < ROOM {
        match chunks.release_last()? {
            0 => break,
            size => freed += size,
        }
    }
    let want = two_thirds(freed);
    share.store(want, Ordering::Release);
    go.store(true, Ordering::Release);
    let mut outcome = Ok(());
    for t in racers {
        if let Err(e) = join_expect(t, 0) {
            outcome = Err(e);
        }
    }
    chunks.release()?;
    outcome?;
    check_eq!(stop, Some(Error::NoMemory), "what stopped map");
    let got = got.load(Ordering::Acquire);
    check!(got <= freed, "{cpus} racers mapped {} KiB together out of {} KiB free", got >> 10, freed >> 10);
    Ok(format!("{cpus} racers for {} KiB each got {} KiB of {} KiB", want >> 10, got >> 10, freed >> 10))
}

/// The limits `quotas` gives its child.
const SMALL: Limits = Limits { memory: 8 << 20, threads: 8, processes: 2, handles: 16 };

/// `quotas`: a child with [`SMALL`] limits reaches each of them while its
/// neighbour, with this process's (default) limits, does what the child
/// cannot; then the parent checks that everything was given back.
pub fn quotas(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let (mine, used_before) = sys::limits().ctx("limits")?;
    check_eq!(mine, Limits::DEFAULT, "the limits of a process the kernel started");
    // A child may not get more than its parent.
    let greedy = Limits { threads: mine.threads + 1, ..mine };
    check_eq!(
        sys::spawn_with("hello", &[], Some(&greedy)),
        Err(Error::BadArgument),
        "a child with more threads than its parent"
    );
    let bell = sys::notification_create().ctx("notification_create")?;
    let grant = [Grant { handle: bell, rights: rights::WAIT }];
    let small = sys::spawn_with("utest child_quota", &grant, Some(&SMALL)).ctx("spawn child_quota")?;
    let neighbour = raw::spawn_grants("utest child_neighbour", &grant).ctx("spawn child_neighbour")?;
    // The small one waits at its limits until the neighbour is done.
    check_eq!(sys::wait(neighbour), Ok(0), "child_neighbour's exit code");
    sys::signal(bell, 1).ctx("release child_quota")?;
    check_eq!(sys::wait(small), Ok(0), "child_quota's exit code");
    sys::handle_close(bell).ctx("close")?;
    // A child's last thread may still be on its way off a CPU, holding the
    // process for a moment.
    let deadline = now()? + 5_000 * NS_PER_MS;
    let used_after = loop {
        let (_, used) = sys::limits().ctx("limits")?;
        if used == used_before || now()? > deadline {
            break used;
        }
        sys::sleep_ns(NS_PER_MS).ctx("sleep")?;
    };
    check_eq!(used_after.processes, 0, "processes counted once both were waited for");
    check_eq!(used_after.threads, used_before.threads, "threads counted before and after");
    check_eq!(used_after.memory, used_before.memory, "memory charged before and after");
    Ok(format!("a child at every limit of {SMALL:?}; its neighbour unhindered"))
}

/// A thread entry that exits at once, touching no stack.
#[unsafe(naked)]
extern "C" fn exit_at_once() -> ! {
    core::arch::naked_asm!("mov eax, {exit}", "xor edi, edi", "syscall", "ud2", exit = const nr::THREAD_EXIT)
}

/// `thread_spawn` of [`exit_at_once`] (on any stack: it uses none).
fn spawn_exiting() -> Result<Handle, Error> {
    let stack = ferrite_abi::USER_START + 0x10_0000;
    // SAFETY: the thread runs three instructions that touch no memory and
    // ends itself.
    unsafe { syscall::syscall3(nr::THREAD_SPAWN, exit_at_once as *const () as u64, stack, 0) }.result()
}

/// The child of `quotas`, with [`SMALL`] limits.
pub fn child_quota(_args: &str) -> Outcome {
    let (limits, used) = sys::limits().ctx("limits")?;
    check_eq!(limits, SMALL, "the limits the parent gave");
    check!(used.memory > 0 && used.memory < limits.memory, "memory charged at start: {used:?}");
    check_eq!(used.threads, 1, "threads at start");
    // Memory: maps stop short of the limit, whatever the machine has.
    let mut chunks = Chunks::new();
    let stop = chunks.fill(usize::MAX);
    let mapped = chunks.bytes() as u64;
    let (_, full) = sys::limits().ctx("limits")?;
    chunks.release()?;
    check_eq!(stop, Some(Error::NoMemory), "what stopped map");
    check!(mapped < SMALL.memory && mapped + (2 << 20) > SMALL.memory, "mapped {mapped} bytes with a limit of 8 MiB");
    check!(full.memory <= SMALL.memory && full.memory + (64 << 10) > SMALL.memory, "charged at the limit: {full:?}");
    // Threads: 8 with main; ones that have exited count until their handle
    // is closed. Pinned to this CPU, they inherit the pin, so that they
    // have all run and exited (and this CPU has switched away from them)
    // by the time the sleep below ends, however slowly other CPUs run.
    let here = sys::cpu().ctx("cpu")?;
    sys::set_affinity(here).ctx("pin to this CPU")?;
    let mut exited = Vec::new();
    let refusal = loop {
        match spawn_exiting() {
            Ok(h) => exited.push(h),
            Err(e) => break e,
        }
    };
    check_eq!(refusal, Error::NoMemory, "what stopped thread_spawn");
    check_eq!(exited.len() as u64 + 1, SMALL.threads, "threads (exited ones included) at the refusal");
    sys::sleep_ns(10 * NS_PER_MS).ctx("let them exit")?;
    check_eq!(spawn_exiting(), Err(Error::NoMemory), "thread_spawn with every exited thread unjoined");
    for h in exited.drain(..) {
        sys::handle_close(h).ctx("close an exited thread's handle")?;
    }
    let again = spawn_exiting().ctx("thread_spawn once the handles are closed")?;
    check_eq!(sys::thread_join(again), Ok(0), "join");
    sys::set_affinity(ferrite_abi::ANY_CPU).ctx("unpin")?;
    // Processes: two children at once (not yet waited for), not three.
    let first = sys::spawn("hello one", &[]).ctx("spawn the first child")?;
    let second = sys::spawn("hello two", &[]).ctx("spawn the second child")?;
    check_eq!(sys::spawn("hello three", &[]), Err(Error::NoMemory), "a third child");
    check_eq!(sys::wait(first), Ok(0), "the first child");
    let third = sys::spawn("hello three", &[]).ctx("spawn once one was waited for")?;
    check_eq!(sys::wait(second), Ok(0), "the second child");
    check_eq!(sys::wait(third), Ok(0), "the third child");
    // Handles: 16 in the table, the bell included.
    let mut handles = Vec::new();
    let refusal = loop {
        match sys::endpoint_create() {
            Ok(h) => handles.push(h),
            Err(e) => break e,
        }
    };
    check_eq!(refusal, Error::NoMemory, "what stopped endpoint_create");
    check_eq!(handles.len() as u64 + 1, SMALL.handles, "handles at the refusal (the bell included)");
    for h in handles {
        sys::handle_close(h).ctx("close")?;
    }
    // Sitting at the memory limit while the neighbour works.
    let stop = chunks.fill(usize::MAX);
    check_eq!(stop, Some(Error::NoMemory), "what stopped map again");
    sys::notify_wait(GIVEN).ctx("wait for the parent")?;
    chunks.release()?;
    Ok(format!("mapped {} KiB of 8 MiB; refused at 8 threads, 2 children, 16 handles", mapped >> 10))
}

/// What the neighbour maps: more than its sibling may, and little enough
/// for a 48 MiB machine.
const NEIGHBOUR_MAP: usize = 12 << 20;

/// The neighbour of `child_quota`: with the default limits it maps 12 MiB
/// (more than its sibling's whole limit), starts 16 threads (twice as many)
/// and makes 32 endpoints while its sibling is at its limits.
pub fn child_neighbour(_args: &str) -> Outcome {
    let big = sys::map(NEIGHBOUR_MAP, flags::WRITE).ctx("map 12 MiB")?;
    let bell = sys::notification_create().ctx("notification_create")?;
    let woken = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..16 {
        let woken = woken.clone();
        threads.push(
            thread::spawn(move || {
                let code = sys::notify_wait(bell).map_or(1, |_| 0);
                woken.fetch_add(1, Ordering::AcqRel);
                code
            })
            .ctx("spawn a thread")?,
        );
    }
    let mut handles = Vec::new();
    for _ in 0..32 {
        handles.push(sys::endpoint_create().ctx("endpoint_create")?);
    }
    // Each waiter takes the word: ring until all have.
    while woken.load(Ordering::Acquire) < threads.len() as u64 {
        sys::signal(bell, 1).ctx("signal")?;
        sys::yield_now().ctx("yield")?;
    }
    for t in threads {
        join_expect(t, 0)?;
    }
    for h in handles {
        sys::handle_close(h).ctx("close")?;
    }
    // SAFETY: mapped above, used by nothing.
    unsafe { sys::unmap(big, NEIGHBOUR_MAP) }.ctx("unmap")?;
    Ok(String::from("12 MiB, 16 threads, 32 endpoints"))
}

/// Threads `unjoined_threads` leaves unjoined.
const UNJOINED: u64 = 200;

/// `unjoined_threads`: 200 threads exit and are not joined: each still
/// counts as a thread, but the memory charged for it (and so what it
/// holds) is its structures, not its 32 KiB kernel stack.
pub fn unjoined_threads(_args: &str) -> Outcome {
    // What stays after the case (the list's memory, the handle table's
    // slots) is made first, so that only what the threads hold is counted.
    let mut handles = Vec::with_capacity(UNJOINED as usize);
    for _ in 0..UNJOINED {
        handles.push(sys::notification_create().ctx("notification_create")?);
    }
    for h in handles.drain(..) {
        sys::handle_close(h).ctx("close")?;
    }
    let (_, before) = sys::limits().ctx("limits")?;
    for _ in 0..UNJOINED {
        handles.push(spawn_exiting().ctx("thread_spawn")?);
    }
    // Until all have exited, their stacks are charged.
    let deadline = now()? + 20_000 * NS_PER_MS;
    let after = loop {
        let (_, used) = sys::limits().ctx("limits")?;
        // Structures only: far below a stack each.
        if used.memory < before.memory + UNJOINED * 4096 {
            break used;
        }
        check!(now()? < deadline, "exited threads still hold {} KiB", (used.memory - before.memory) >> 10);
        sys::sleep_ns(NS_PER_MS).ctx("sleep")?;
    };
    check_eq!(after.threads, before.threads + UNJOINED, "unjoined threads still count");
    let per_thread = (after.memory - before.memory) / UNJOINED;
    for h in handles {
        sys::handle_close(h).ctx("close")?;
    }
    // The last one may still be on its way off a CPU.
    let closed = loop {
        let (_, used) = sys::limits().ctx("limits")?;
        if used.threads == before.threads || now()? > deadline {
            break used;
        }
        sys::sleep_ns(NS_PER_MS).ctx("sleep")?;
    };
    check_eq!(closed.threads, before.threads, "threads once the handles are closed");
    check_eq!(closed.memory, before.memory, "memory once the handles are closed");
    Ok(format!("{UNJOINED} exited threads hold {per_thread} bytes each, no kernel stack"))
}

/// Children `child_respawn` starts, one after the other.
const RESPAWN_ROUNDS: u64 = 100;

/// `respawn`: a child that may have one process at a time starts
/// [`RESPAWN_ROUNDS`] children in turn, each as soon as `wait` returned
/// for the one before: the place a child takes is free again when `wait`
/// returns, not only once the child's last thread has left its CPU.
pub fn respawn(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let (mine, _) = sys::limits().ctx("limits")?;
    let one = Limits { processes: 1, ..mine };
    let child = sys::spawn_with("utest child_respawn", &[], Some(&one)).ctx("spawn child_respawn")?;
    check_eq!(sys::wait(child), Ok(0), "child_respawn's exit code");
    Ok(format!("{RESPAWN_ROUNDS} children in turn, with room for one"))
}

/// The child of `respawn`, allowed one process at a time.
pub fn child_respawn(_args: &str) -> Outcome {
    for round in 0..RESPAWN_ROUNDS {
        let child =
            sys::spawn("hello", &[]).ctx(&format!("round {round}: spawn once the last child was waited for"))?;
        check_eq!(sys::wait(child), Ok(0), "round {round}: hello's exit code");
    }
    Ok(format!("{RESPAWN_ROUNDS} rounds"))
}
