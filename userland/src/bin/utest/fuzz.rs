//! `fuzz seed=<n> [iterations=<n>]`: threads issuing random system calls
//! with arguments drawn from a pool of interesting values. Every result
//! must be a success or a known error code, unknown numbers must be
//! `BadSyscall`, and the registers the ABI preserves must be preserved.
//!
//! The calls are random but never harmful to the fuzzer itself: no `exit`,
//! `thread_exit` or `thread_spawn` (a random entry point would crash the
//! process on purpose), nor `power` (it would end the whole test run); the calls that could block get handles no process
//! can have (or, for `sleep`, a short time); `write` gets a length or a
//! pointer it must refuse, so nothing prints; `unmap` never gets an address
//! that `map` could have given out; `handle_close` spares the handles
//! `main` needs to join the threads; and whatever a call creates (memory,
//! endpoints, notifications, processes) is released at once.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ferrite_abi::{nr, Error, ANY_CPU, MAP_MAX, MAX_HANDLES, USER_END, USER_START, WRITE_MAX};
use ferrite_user::sys;

use crate::harness::{addr, now, spawn_checked, Ctx, Outcome, Rng, Watchdog};
use crate::syscalls::{KERNEL_HALF, KERNEL_IMAGE, NON_CANONICAL, PAGE};

/// Threads that fuzz at once.
const THREADS: usize = 4;
/// Calls per thread unless `iterations=` says otherwise.
const DEFAULT_ITERATIONS: u64 = 5000;
/// Numbers past the last system call that are tried too.
const EXTRA_NUMBERS: u64 = 8;
/// Never issued (see the module documentation).
const FORBIDDEN: [u64; 4] = [nr::EXIT, nr::THREAD_EXIT, nr::THREAD_SPAWN, nr::POWER];
/// The calls that block on a handle; they get one no process can have.
const BLOCKING_ON_HANDLE: [u64; 11] = [
    nr::CALL,
    nr::RECV,
    nr::SEND,
    nr::REPLY_RECV,
    nr::CALL_HANDLE,
    nr::RECV_HANDLE,
    nr::SEND_HANDLE,
    nr::REPLY_RECV_HANDLE,
    nr::NOTIFY_WAIT,
    nr::THREAD_JOIN,
    nr::WAIT,
];
/// The IPC calls, which may change the message registers (the `_handle`
/// ones r9 too, but only when they succeed, which they never do here).
const IPC: [u64; 8] = [
    nr::CALL,
    nr::RECV,
    nr::SEND,
    nr::REPLY_RECV,
    nr::CALL_HANDLE,
    nr::RECV_HANDLE,
    nr::SEND_HANDLE,
    nr::REPLY_RECV_HANDLE,
];
/// The longest sleep the fuzzer asks for.
const SLEEP_MAX_NS: u64 = 100_000;
/// The longest `map` it asks for (a random pointer used as a length would
/// otherwise have the kernel zero megabytes again and again).
const MAP_FUZZ_MAX: u64 = 16 * PAGE;

/// Each thread's own buffer: the kernel may read it (only `limits` writes
/// user memory, and it gets a scratch buffer of its own, below), and being
/// in the program image rather than from `map` it can never be unmapped.
const BUF_LEN: usize = 16 * 1024;
static BUFFERS: [[u8; BUF_LEN]; THREADS] = [[0; BUF_LEN]; THREADS];

/// What is loaded into r12-r15 for each call, which must come back.
const CALLEE_SAVED: [u64; 4] = [0x1212_1212_1212_1212, 0x1313_1313_1313_1313, 0x1414_1414_1414_1414, 0x1515];

/// Successes (slot 0) and each error of `Error::ALL` (slot i + 1).
static TOTALS: [AtomicU64; 1 + Error::ALL.len()] = [const { AtomicU64::new(0) }; 1 + Error::ALL.len()];
/// The handles `main` joins the fuzzers and stops the watchdog through,
/// which no fuzzer may close.
static PROTECTED: [AtomicU64; THREADS + 1] = [const { AtomicU64::new(u64::MAX) }; THREADS + 1];
/// Each fuzzer's rightless endpoint and notification handles, which no
/// fuzzer may close either.
static RIGHTLESS: [[AtomicU64; 2]; THREADS] = [const { [const { AtomicU64::new(u64::MAX) }; 2] }; THREADS];
/// Set once [`PROTECTED`] is filled in.
static GO: AtomicBool = AtomicBool::new(false);
/// How long a fuzzer waits for [`GO`].
const GO_NS: u64 = 5_000_000_000;

/// The addresses of a fuzzer's own that may appear as arguments.
struct Own {
    buf: u64,
    stack: u64,
    /// Where `limits` may write: this thread's alone.
    scratch: u64,
    /// A rightless endpoint handle and a rightless notification handle.
    rightless: [u64; 2],
}

/// Values in the argument pool.
const POOL: u64 = 16;

/// An argument from the pool.
fn pick(rng: &mut Rng, own: &Own) -> u64 {
    match rng.below(POOL) {
        0 => 0,
        1 => 1,
        2 => 2 + rng.below(14),
        3 => PAGE,
        4 => rng.next(),
        5 => USER_START,
        6 => USER_END - 1,
        7 => USER_END,
        8 => NON_CANONICAL,
        9 => KERNEL_HALF,
        10 => KERNEL_IMAGE,
        11 => u64::MAX,
        12 => own.buf,
        13 => own.buf + BUF_LEN as u64 / 2,
        14 => own.buf + BUF_LEN as u64 - 8,
        _ => own.stack,
    }
}

/// Whether `ptr` is in our static buffers (so not from `map`).
fn in_buffers(ptr: u64) -> bool {
    let start = addr(&BUFFERS);
    (start..start + (THREADS * BUF_LEN) as u64).contains(&ptr)
}

/// Makes the arguments of call `number` harmless (see the module
/// documentation).
fn tame(number: u64, args: &mut [u64; 6], rng: &mut Rng, own: &Own) {
    let user = (USER_START..USER_END).contains(&args[0]);
    match number {
        nr::WRITE if user && (1..=WRITE_MAX).contains(&args[1]) => {
            args[1] = if rng.below(2) == 0 { 0 } else { WRITE_MAX + 1 + rng.below(WRITE_MAX) };
        }
        nr::SLEEP => args[0] %= SLEEP_MAX_NS,
        nr::MAP if (MAP_FUZZ_MAX + 1..=MAP_MAX).contains(&args[0]) => args[0] %= MAP_FUZZ_MAX,
        nr::UNMAP if user && !in_buffers(args[0]) => args[0] = addr(&BUFFERS),
        nr::HANDLE_CLOSE if protected(args[0]) => args[0] = u64::MAX,
        // The one call that writes user memory: into the scratch buffer,
        // never over the fuzzer's stack or buffers.
        nr::LIMITS if user => args[0] = own.scratch,
        n if BLOCKING_ON_HANDLE.contains(&n) && rng.below(2) == 0 => args[0] = own.rightless[rng.below(2) as usize],
        n if BLOCKING_ON_HANDLE.contains(&n) && args[0] < MAX_HANDLES => args[0] += MAX_HANDLES,
        _ => {}
    }
}

/// Whether no fuzzer may close handle `h`.
fn protected(h: u64) -> bool {
    PROTECTED.iter().chain(RIGHTLESS.iter().flatten()).any(|p| p.load(Ordering::Acquire) == h)
}

/// What a blocking call on handle `h` must give: `NoRights` on a rightless
/// handle of the kind it takes, `BadHandle` on anything else.
fn refusal(number: u64, h: u64) -> Error {
    let kind_of = |i: usize| RIGHTLESS.iter().any(|r| r[i].load(Ordering::Acquire) == h);
    let (endpoint, notification) = (kind_of(0), kind_of(1));
    match number {
        n if IPC.contains(&n) && endpoint => Error::NoRights,
        nr::NOTIFY_WAIT if notification => Error::NoRights,
        _ => Error::BadHandle,
    }
}

/// A system call with every argument register given, and r12-r15 loaded
/// with [`CALLEE_SAVED`]; returns the status (`rax`), the argument
/// registers (`rdi` holding the value) and r12-r15 as they came back.
///
/// # Safety
///
/// The call must not break memory safety: [`tame`]d arguments only.
unsafe fn raw_call(number: u64, args: [u64; 6]) -> (u64, [u64; 6], [u64; 4]) {
    let status: u64;
    let mut out = [0; 6];
    let mut kept = [0; 4];
    // SAFETY: every register the kernel may change is an output (`rcx` and
    // `r11` clobbered), so nothing the compiler holds is lost even if the
    // kernel breaks the ABI; what the call does is the caller's promise.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => status,
            inout("rdi") args[0] => out[0],
            inout("rsi") args[1] => out[1],
            inout("rdx") args[2] => out[2],
            inout("r10") args[3] => out[3],
            inout("r8") args[4] => out[4],
            inout("r9") args[5] => out[5],
            inout("r12") CALLEE_SAVED[0] => kept[0],
            inout("r13") CALLEE_SAVED[1] => kept[1],
            inout("r14") CALLEE_SAVED[2] => kept[2],
            inout("r15") CALLEE_SAVED[3] => kept[3],
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    (status, out, kept)
}

/// A call as the failure messages show it (formatted only on failure).
#[derive(Clone, Copy)]
struct Call {
    number: u64,
    args: [u64; 6],
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "system call {} with {:#x?}", self.number, self.args)
    }
}

/// Checks one call's result and registers, counts it, and releases what it
/// created.
fn judge(number: u64, args: [u64; 6], status: u64, out: [u64; 6], kept: [u64; 4]) -> Result<(), String> {
    let what = Call { number, args };
    check_eq!(kept, CALLEE_SAVED, "r12-r15 after {what}");
    // rdi carries the value back; an error's is 0.
    if status != 0 {
        check_eq!(out[0], 0, "rdi after {what} failed");
    }
    if IPC.contains(&number) {
        check_eq!(out[5], args[5], "r9 after {what}");
    } else {
        check_eq!(&out[1..], &args[1..], "argument registers after {what}");
    }
    let result = match status {
        0 => Ok(out[0]),
        code => match Error::from_code(code) {
            Some(e) => Err(e),
            None => fail!("{what} returned status {code}, not an error code"),
        },
    };
    let slot = match result {
        Ok(_) => 0,
        Err(e) => 1 + Error::ALL.iter().position(|&known| known == e).unwrap_or(0),
    };
    TOTALS[slot].fetch_add(1, Ordering::Relaxed);
    if number >= nr::COUNT {
        check_eq!(result, Err(Error::BadSyscall), "{what}");
    }
    if BLOCKING_ON_HANDLE.contains(&number) {
        check_eq!(result, Err(refusal(number, args[0])), "{what}");
    }
    let Ok(value) = result else { return Ok(()) };
    match number {
        nr::WRITE => check_eq!(value, 0, "bytes written by {what}"),
        nr::MAP => {
            // SAFETY: the memory just came from `map` and nothing uses it.
            let unmapped =
                unsafe { sys::unmap(core::ptr::with_exposed_provenance_mut(value as usize), args[0] as usize) };
            check_eq!(unmapped, Ok(()), "unmap of what {what} mapped at {value:#x}");
        }
        // Another fuzzer may have closed it already (it closes random
        // numbers too), so BadHandle is fine.
        nr::ENDPOINT_CREATE | nr::NOTIFICATION_CREATE | nr::HANDLE_DERIVE | nr::HANDLE_MINT => {
            let closed = sys::handle_close(value);
            check!(matches!(closed, Ok(()) | Err(Error::BadHandle)), "close after {what}: {closed:?}");
        }
        // A process started from random bytes: let it end. Its exit code
        // says nothing, and another fuzzer may have closed the handle.
        nr::SPAWN => {
            let _ = sys::wait(value);
        }
        _ => {}
    }
    Ok(())
}

/// One fuzzing thread.
fn fuzz_thread(index: usize, seed: u64, iterations: u64) -> Result<u64, String> {
    let deadline = now()? + GO_NS;
    while !GO.load(Ordering::Acquire) {
        check!(now()? < deadline, "fuzzer {index} never got the go");
        sys::yield_now().ctx("yield")?;
    }
    let mut rng = Rng::new(seed, index);
    let local = 0u64;
    let rightless = RIGHTLESS[index].each_ref().map(|h| h.load(Ordering::Acquire));
    // Written by the kernel, never read: a cell, so that Rust knows it may
    // change behind its back.
    let scratch = core::cell::UnsafeCell::new([0u64; 8]);
    let own = Own { buf: addr(&BUFFERS[index]), stack: addr(&local), scratch: scratch.get().addr() as u64, rightless };
    for _ in 0..iterations {
        let number = loop {
            let n = rng.below(nr::COUNT + EXTRA_NUMBERS);
            if !FORBIDDEN.contains(&n) {
                break n;
            }
        };
        let mut args = [0; 6];
        for arg in &mut args {
            *arg = pick(&mut rng, &own);
        }
        tame(number, &mut args, &mut rng, &own);
        // SAFETY: the arguments are tamed.
        let (status, out, kept) = unsafe { raw_call(number, args) };
        judge(number, args, status, out, kept)?;
    }
    sys::set_affinity(ANY_CPU).ctx("unpin")?;
    Ok(iterations)
}

/// Reads `key=<decimal>` words.
fn parse(args: &str) -> Result<(Option<u64>, u64), String> {
    let (mut seed, mut iterations) = (None, DEFAULT_ITERATIONS);
    for word in args.split_whitespace() {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        let Ok(value) = value.parse::<u64>() else { fail!("bad argument '{word}'") };
        match key {
            "seed" => seed = Some(value),
            "iterations" => iterations = value,
            _ => fail!("unknown argument '{word}'"),
        }
    }
    Ok((seed, iterations))
}

/// Random system calls from several threads at once.
pub fn fuzz(args: &str) -> Outcome {
    let (seed, iterations) = parse(args)?;
    // Without a seed, the clock picks one; the ok line shows it for a
    // replay.
    let seed = match seed {
        Some(seed) => seed,
        None => now()?,
    };
    let watchdog = Watchdog::start()?;
    PROTECTED[THREADS].store(watchdog.handle(), Ordering::Release);
    // Made before any fuzzer runs, so that none can close them first.
    for slots in &RIGHTLESS {
        let e = sys::endpoint_create().ctx("endpoint_create")?;
        let n = sys::notification_create().ctx("notification_create")?;
        slots[0].store(sys::handle_derive(e, 0).ctx("a rightless endpoint handle")?, Ordering::Release);
        slots[1].store(sys::handle_derive(n, 0).ctx("a rightless notification handle")?, Ordering::Release);
        sys::handle_close(e).ctx("close")?;
        sys::handle_close(n).ctx("close")?;
    }
    let mut threads = Vec::new();
    for (index, protected) in PROTECTED[..THREADS].iter().enumerate() {
        let t = spawn_checked(move || fuzz_thread(index, seed, iterations)).ctx("spawn a fuzzer")?;
        protected.store(t.handle(), Ordering::Release);
        threads.push(t);
    }
    GO.store(true, Ordering::Release);
    for (index, t) in threads.into_iter().enumerate() {
        check_eq!(t.join(), Ok(iterations), "fuzzer {index}");
    }
    drop(watchdog);
    let mut totals = format!("seed={seed}, {THREADS}x{iterations} calls: ok {}", TOTALS[0].load(Ordering::Relaxed));
    for (e, total) in Error::ALL.iter().zip(&TOTALS[1..]) {
        totals += &format!(", {e:?} {}", total.load(Ordering::Relaxed));
    }
    Ok(totals)
}
