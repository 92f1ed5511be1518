//! Kills that race with system calls: a process ends (by `exit` from one
//! of its threads) while its other threads are on their way into, or out
//! of, every kind of blocking call. Every wait of the parent must return,
//! with the child's exit code, and fast: a kill that a thread missed
//! because it arrived between the thread's last look at its process and
//! its going to sleep leaves the process alive for ever.

use alloc::format;
use alloc::vec::Vec;

use ferrite_user::sys::{self, Handle};
use ferrite_user::thread::{self, JoinHandle};

use crate::harness::{arg, now, Ctx, Outcome, Rng, Stall, NS_PER_MS};

/// Rounds unless `rounds=` says otherwise.
const DEFAULT_ROUNDS: u64 = 1000;
/// How long one round (a spawn, the child's life, the wait) may take:
/// seconds more than it needs on 8 virtual CPUs sharing 2 host cores.
const ROUND_LIMIT_NS: u64 = 20_000 * NS_PER_MS;
/// The child's life before it exits: up to this much.
const LIFE_MAX_NS: u64 = 3 * NS_PER_MS;
/// The handles a child gets: an endpoint and a notification.
const ENDPOINT: Handle = 0;
const NOTIFICATION: Handle = 1;

/// The exit code round `round` of a run with `seed` expects.
fn code_of(seed: u64, round: u64) -> u64 {
    (seed ^ round.wrapping_mul(0x9e37_79b9)) & 0xffff_ffff
}

/// `kill_race [rounds=N] [seed=S]`: spawns a [`child_kill_race`] per round
/// and waits for it; each wait must return the child's code within
/// [`ROUND_LIMIT_NS`].
pub fn kill_race(args: &str) -> Outcome {
    let rounds = arg(args, "rounds")?.unwrap_or(DEFAULT_ROUNDS);
    let seed = match arg(args, "seed")? {
        Some(seed) => seed,
        None => now()?,
    };
    let stall = Stall::start(ROUND_LIMIT_NS, "round")?;
    let started = now()?;
    for round in 0..rounds {
        stall.step(round)?;
        let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
        let notification = sys::notification_create().ctx("notification_create")?;
        let code = code_of(seed, round);
        let command = format!("utest child_kill_race seed={} code={code}", seed ^ round);
        let child = sys::spawn(&command, &[endpoint, notification]).ctx("spawn")?;
        check_eq!(sys::wait(child), Ok(code), "round {round}: the child's exit code");
        sys::handle_close(endpoint).ctx("close the endpoint")?;
        sys::handle_close(notification).ctx("close the notification")?;
    }
    drop(stall);
    let took = (now()? - started) / NS_PER_MS;
    Ok(format!("seed={seed}: {rounds} children killed mid-call, every wait returned ({took} ms)"))
}

/// Spins for `ns`, reading the clock (system calls too, so that preemption
/// lands in the kernel as well as in user mode).
fn spin(ns: u64) {
    let Ok(start) = sys::time_ns() else { return };
    while sys::time_ns().is_ok_and(|t| t.saturating_sub(start) < ns) {}
}

/// Starts a thread that runs `body` for ever, pinned to `cpu` unless it is
/// `None`.
fn forever(cpu: Option<u64>, mut body: impl FnMut() + Send + 'static) -> Result<JoinHandle, alloc::string::String> {
    thread::spawn(move || {
        if let Some(cpu) = cpu {
            let _ = sys::set_affinity(cpu);
        }
        loop {
            body();
        }
    })
    .ctx("thread::spawn")
}

/// The child of [`kill_race`]: threads loop on `call`, `reply_recv`,
/// `recv` and `send` on the endpoint (pinned to different CPUs), on
/// `sleep` after a random spin, on `notify_wait`, and one just computes
/// (so that on one CPU the timer preempts the others inside their system
/// calls); the main thread exits with `code=` after a random 0-3 ms.
pub fn child_kill_race(args: &str) -> Outcome {
    let seed = arg(args, "seed")?.unwrap_or(1);
    let code = arg(args, "code")?.unwrap_or(0);
    let cpus = sys::cpu_count().ctx("cpu_count")?;
    let mut rng = Rng::new(seed, 0);
    let msg = [seed, 1, 2, 3];
    let mut threads: Vec<JoinHandle> = Vec::new();
    threads.push(forever(Some(1 % cpus), move || _ = sys::reply_recv(ENDPOINT, msg))?);
    threads.push(forever(Some(2 % cpus), || _ = sys::recv(ENDPOINT))?);
    threads.push(forever(Some(3 % cpus), move || _ = sys::call(ENDPOINT, msg))?);
    threads.push(forever(None, move || _ = sys::send(ENDPOINT, msg))?);
    let mut sleepy = Rng::new(seed, 1);
    threads.push(forever(None, move || {
        spin(sleepy.below(100_000));
        let _ = sys::sleep_ns(sleepy.below(500_000));
        let _ = sys::signal(NOTIFICATION, 1);
    })?);
    threads.push(forever(None, || _ = sys::notify_wait(NOTIFICATION))?);
    threads.push(forever(None, core::hint::spin_loop)?);
    spin(rng.below(LIFE_MAX_NS));
    sys::exit(code)
}
