//! How a case reports, and the helpers every case shares.
//!
//! A case returns an [`Outcome`]. The `check!` family returns early with an
//! `Err` naming the file and line and the values seen against those
//! expected; [`Ctx::ctx`] does the same for a system call that should have
//! succeeded. A helper thread cannot return its failure to `main` while
//! `main` may be blocked waiting for it, so threads fail through
//! [`fail_now`], which prints the case's failure line and ends the whole
//! process at once ([`spawn_checked`] wires that up).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ferrite_user::sys::Handle;
use ferrite_user::thread::{self, JoinHandle};
use ferrite_user::{println, sys, Error};

use crate::EXIT_FAIL;

/// What a case returns: `Ok` with short details for its `ok` line, or `Err`
/// with why it failed.
pub type Outcome = Result<String, String>;

/// The index in [`crate::CASES`] of the case this process runs, for the
/// failure line of [`fail_now`].
pub static CURRENT_CASE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// How long a case may take before its [`Watchdog`] declares it hung: far
/// more than any case needs under emulation on one CPU.
pub const WATCHDOG_NS: u64 = 30_000_000_000;

/// How often a [`Watchdog`] looks at the clock.
const WATCHDOG_TICK_NS: u64 = 5_000_000;

/// Nanoseconds in a millisecond, for messages and short sleeps.
pub const NS_PER_MS: u64 = 1_000_000;

/// Fails the case unless the condition holds.
macro_rules! check {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{}:{}: {}", file!(), line!(), format_args!($($why)+)));
        }
    };
}

/// Fails the case unless the two values are equal; the message shows both.
macro_rules! check_eq {
    ($seen:expr, $want:expr) => {
        check_eq!($seen, $want, "{}", stringify!($seen))
    };
    ($seen:expr, $want:expr, $($what:tt)+) => {{
        let (seen, want) = ($seen, $want);
        if seen != want {
            return Err(alloc::format!(
                "{}:{}: {}: got {:?}, expected {:?}",
                file!(),
                line!(),
                format_args!($($what)+),
                seen,
                want
            ));
        }
    }};
}

/// Fails the case.
macro_rules! fail {
    ($($why:tt)+) => {
        return Err(alloc::format!("{}:{}: {}", file!(), line!(), format_args!($($why)+)))
    };
}

/// Turns a system call's error into a case failure that says which call
/// failed and where.
pub trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for Result<T, Error> {
    #[track_caller]
    fn ctx(self, what: &str) -> Result<T, String> {
        let at = Location::caller();
        self.map_err(|e| format!("{}:{}: {what}: {e:?}", at.file(), at.line()))
    }
}

/// The name of the case this process runs.
pub fn case_name() -> &'static str {
    crate::CASES.get(CURRENT_CASE.load(Ordering::Relaxed)).map_or("?", |(name, _)| name)
}

/// Set by the first [`fail_now`].
static FAILING: AtomicBool = AtomicBool::new(false);

/// Prints the case's failure line and ends the process, every thread of it,
/// with [`EXIT_FAIL`]. For threads, whose failure `main` may never get to
/// see, and for `main` itself. Only the first of several threads failing at
/// once prints, so a case fails with one line.
pub fn fail_now(why: &str) -> ! {
    if !FAILING.swap(true, Ordering::AcqRel) {
        println!("utest {}: FAILED: {why}", case_name());
    }
    sys::exit(EXIT_FAIL)
}

/// Starts a thread whose failure ends the process through [`fail_now`];
/// its exit code is the `Ok` value.
pub fn spawn_checked<F>(f: F) -> Result<JoinHandle, Error>
where
    F: FnOnce() -> Result<u64, String> + Send + 'static,
{
    thread::spawn(move || f().unwrap_or_else(|why| fail_now(&why)))
}

/// Joins a thread and checks its exit code.
#[track_caller]
pub fn join_expect(thread: JoinHandle, code: u64) -> Result<(), String> {
    let at = Location::caller();
    match thread.join() {
        Ok(seen) if seen == code => Ok(()),
        seen => Err(format!("{}:{}: join: got {seen:?}, expected Ok({code})", at.file(), at.line())),
    }
}

/// A user address as the system calls take it.
pub fn addr<T: ?Sized>(r: &T) -> u64 {
    ptr::from_ref(r).cast::<u8>().addr() as u64
}

/// The current time; a kernel whose clock fails cannot run any case.
pub fn now() -> Result<u64, String> {
    sys::time_ns().ctx("time_ns")
}

/// A thread that ends the process with a failure if the case has not
/// finished within [`WATCHDOG_NS`]: a case waiting on a lost message or a
/// child that never ends reports that instead of hanging the runner. It
/// costs a thread and a handle, so cases that count those do without.
pub struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle>,
}

impl Watchdog {
    pub fn start() -> Result<Watchdog, String> {
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        let start = now()?;
        let thread = spawn_checked(move || {
            while !seen.load(Ordering::Acquire) {
                if now()?.saturating_sub(start) > WATCHDOG_NS {
                    fail_now(&format!(
                        "timed out after {} ms (a blocked call never returned?)",
                        WATCHDOG_NS / NS_PER_MS
                    ));
                }
                sys::sleep_ns(WATCHDOG_TICK_NS).ctx("watchdog sleep")?;
            }
            Ok(0)
        })
        .ctx("start the watchdog")?;
        Ok(Watchdog { done, thread: Some(thread) })
    }

    /// The watchdog thread's handle, which nothing else may close.
    pub fn handle(&self) -> Handle {
        self.thread.as_ref().map_or(u64::MAX, JoinHandle::handle)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // The watchdog ends within a tick; if joining fails the case
            // has already reported something, and exiting ends the thread.
            let _ = thread.join();
        }
    }
}

/// A xorshift64 generator: tiny, and the same sequence for the same seed.
pub struct Rng(u64);

impl Rng {
    /// A generator for stream `index` (a thread, a round) of a run with
    /// `seed`.
    pub fn new(seed: u64, index: usize) -> Rng {
        let mixed = seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // Zero is xorshift's one fixed point.
        Rng(if mixed == 0 { 1 } else { mixed })
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The number after `key=` among the words of `args`, if there is one.
pub fn arg(args: &str, key: &str) -> Result<Option<u64>, String> {
    for word in args.split_whitespace() {
        if let Some(value) = word.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')) {
            return value.parse().map(Some).map_err(|_| format!("bad argument '{word}'"));
        }
    }
    Ok(None)
}

/// A deadline on each step of a long case, rather than on the whole case
/// as [`Watchdog`] does: a thread that ends the process with a failure if
/// [`Stall::step`] has not been called for `limit_ns`. A case of a
/// thousand rounds fails within seconds of the round that hangs, and says
/// which round it was.
pub struct Stall {
    state: Arc<StallState>,
    thread: Option<JoinHandle>,
}

struct StallState {
    done: AtomicBool,
    last: core::sync::atomic::AtomicU64,
    step: core::sync::atomic::AtomicU64,
}

impl Stall {
    pub fn start(limit_ns: u64, what: &'static str) -> Result<Stall, String> {
        let state = Arc::new(StallState {
            done: AtomicBool::new(false),
            last: core::sync::atomic::AtomicU64::new(now()?),
            step: core::sync::atomic::AtomicU64::new(0),
        });
        let seen = state.clone();
        let thread = spawn_checked(move || {
            while !seen.done.load(Ordering::Acquire) {
                let idle = now()?.saturating_sub(seen.last.load(Ordering::Acquire));
                if idle > limit_ns {
                    fail_now(&format!(
                        "{what} {} did not finish within {} ms",
                        seen.step.load(Ordering::Acquire),
                        limit_ns / NS_PER_MS
                    ));
                }
                sys::sleep_ns(WATCHDOG_TICK_NS).ctx("stall watchdog sleep")?;
            }
            Ok(0)
        })
        .ctx("start the stall watchdog")?;
        Ok(Stall { state, thread: Some(thread) })
    }

    /// Step `n` begins: the clock starts again.
    pub fn step(&self, n: u64) -> Result<(), String> {
        self.state.step.store(n, Ordering::Release);
        self.state.last.store(now()?, Ordering::Release);
        Ok(())
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.state.done.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
