//! The SMP stress suite (part of `sched`): many threads, every CPU, seeded.
//!
//! Every random choice comes from [`super::seed`] (printed at the start,
//! and in every failure), so `seed=<n>` replays a run. No test waits
//! without a deadline: a join that times out prints every CPU's scheduling
//! state and fails, instead of hanging until the harness gives up.
use super::{seed, Test, TestResult};
use crate::ensure;
use crate::percpu::cpu_index;
use crate::sched::sync::{Mutex, Semaphore};
use crate::sched::thread::{JoinHandle, ANY_CPU};
use crate::sched::{self, spawn, yield_now};
use crate::smp;
use crate::time;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use ferrite_kcore::rng::XorShift64;
use ferrite_kcore::sched::Class;

pub const TESTS: &[Test] = &[
    Test { name: "sched::stress::spawn_storm", run: spawn_storm },
    Test { name: "sched::stress::ping_pong", run: ping_pong },
    Test { name: "sched::stress::producers_consumers", run: producers_consumers },
    Test { name: "sched::stress::migration_storm", run: migration_storm },
    Test { name: "sched::stress::fairness", run: fairness },
    Test { name: "sched::stress::backlog_spreads", run: backlog_spreads },
];

/// How long any one join may take before the test is declared hung.
const JOIN_LIMIT_NS: u64 = 60_000_000_000;
/// Logs the test's seed (so that a failure can be replayed with `seed=`)
/// and returns the watchdog's count at its start.
fn begin(name: &str) -> u64 {
    log::info!("stress: {name} seed={} (replay with seed={} on the command line)", seed(), seed());
    sched::watchdog_bites().0
}

fn spawn_or_fail(
    name: &'static str,
    cpu: u32,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle, alloc::string::String> {
    spawn(name, Class::Normal, cpu, f).map_err(|e| alloc::format!("spawn {name}: {e}"))
}

/// Joins all, deadline-bound, then checks that the watchdog did not bite
/// while they ran (`bites_before` is `sched::watchdog_bites().0` from the
/// test's start). A hang or a bite dumps every CPU's state and fails.
fn join_all(handles: Vec<JoinHandle>, what: &str, bites_before: u64) -> TestResult {
    for h in handles {
        if !h.join_within(JOIN_LIMIT_NS) {
            sched::dump_state();
            return Err(alloc::format!("seed {}: {what}: a thread did not finish within 60 s", seed()));
        }
    }
    let (bites, cpu) = sched::watchdog_bites();
    if bites != bites_before {
        sched::dump_state();
        return Err(alloc::format!(
            "seed {}: {what}: the watchdog bit {} times (last on cpu{cpu}): {} timer interrupts without a pass through the scheduler while threads waited",
            seed(),
            bites - bites_before,
            sched::WATCHDOG_TICKS
        ));
    }
    Ok(())
}

/// Thousands of short threads, spawned by a spawner on every CPU; each adds
/// a seeded value to its spawner's sum, and every sum comes out exact.
/// Each spawner keeps at most `OUTSTANDING` children alive, so the churn
/// fits a 64 MiB machine.
fn spawn_storm() -> TestResult {
    let bites = begin("spawn_storm");
    const TOTAL: u64 = 4000;
    const OUTSTANDING: usize = 32;
    let n = u64::from(smp::online_count());
    let per = TOTAL / n;
    let base = seed();
    let sums: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let failures = Arc::new(AtomicU64::new(0));
    let mut spawners = Vec::new();
    for s in 0..n {
        let (sums, failures) = (sums.clone(), failures.clone());
        spawners.push(spawn_or_fail("spawner", super::nth_cpu(s as u32), move || {
            let mut rng = XorShift64::new(base ^ s);
            let mut children = VecDeque::new();
            for _ in 0..per {
                if children.len() >= OUTSTANDING {
                    let oldest: JoinHandle = children.pop_front().expect("non-empty");
                    oldest.join();
                }
                let value = rng.next_u64();
                let sums = sums.clone();
                match spawn("child", Class::Normal, ANY_CPU, move || {
                    sums[s as usize].fetch_add(child_work(value), Ordering::Relaxed);
                }) {
                    Ok(h) => children.push_back(h),
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            for h in children {
                h.join();
            }
        })?);
    }
    join_all(spawners, "spawners", bites)?;
    ensure!(
        failures.load(Ordering::Relaxed) == 0,
        "seed {base}: {} children failed to spawn",
        failures.load(Ordering::Relaxed)
    );
    for s in 0..n {
        let mut rng = XorShift64::new(base ^ s);
        let expected: u64 = (0..per).map(|_| child_work(rng.next_u64())).fold(0, u64::wrapping_add);
        let got = sums[s as usize].load(Ordering::Relaxed);
        ensure!(got == expected, "seed {base}: spawner {s}'s children summed to {got}, expected {expected}");
    }
    Ok(())
}

/// A spawn-storm child's work: a few hundred steps of a generator seeded
/// with `value`, folded into a number small enough to sum without overflow.
fn child_work(value: u64) -> u64 {
    let mut rng = XorShift64::new(value | 1);
    (0..100 + value % 400).fold(0, |acc, _| acc ^ rng.next_u64()) >> 24
}

/// Pairs of threads pinned to different CPUs (the same one on a single
/// CPU) bounce a token through two semaphores: every round trip is two
/// cross-CPU wakeups, and a lost wakeup hangs the pair (and fails the test).
fn ping_pong() -> TestResult {
    let bites = begin("ping_pong");
    const ROUND_TRIPS: u64 = 200_000;
    let n = smp::online_count();
    let pairs = (n / 2).max(1);
    let per_pair = ROUND_TRIPS / u64::from(pairs);
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for p in 0..pairs {
        let (a_cpu, b_cpu) = if n == 1 { (0, 0) } else { (super::nth_cpu(2 * p), super::nth_cpu(2 * p + 1)) };
        let ping = Arc::new(Semaphore::new(0));
        let pong = Arc::new(Semaphore::new(0));
        let (ping_a, pong_a) = (ping.clone(), pong.clone());
        handles.push(spawn_or_fail("ping", a_cpu, move || {
            for _ in 0..per_pair {
                ping_a.release();
                pong_a.acquire();
            }
        })?);
        let done = done.clone();
        handles.push(spawn_or_fail("pong", b_cpu, move || {
            for _ in 0..per_pair {
                ping.acquire();
                pong.release();
                done.fetch_add(1, Ordering::Relaxed);
            }
        })?);
    }
    join_all(handles, "ping-pong", bites)?;
    let got = done.load(Ordering::Relaxed);
    ensure!(got == per_pair * u64::from(pairs), "{got} round trips of {}", per_pair * u64::from(pairs));
    Ok(())
}

/// Producers and consumers on every CPU share a bounded buffer (a sleeping
/// mutex and two semaphores); every item is consumed exactly once.
fn producers_consumers() -> TestResult {
    let bites = begin("producers_consumers");
    const ITEMS: u64 = 20_000;
    const CAPACITY: u64 = 64;
    let n = u64::from(smp::online_count());
    let producers = n.max(2);
    let per = ITEMS / producers;
    let total = per * producers;
    let buffer = Arc::new(Mutex::new(VecDeque::with_capacity(CAPACITY as usize)));
    let slots = Arc::new(Semaphore::new(CAPACITY));
    let filled = Arc::new(Semaphore::new(0));
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let mut rng = XorShift64::new(seed() ^ 0x9c);
    let mut handles = Vec::new();
    for p in 0..producers {
        let (buffer, slots, filled) = (buffer.clone(), slots.clone(), filled.clone());
        let yield_every = 1 + rng.below(16);
        handles.push(spawn_or_fail("producer", super::nth_cpu((p % n) as u32), move || {
            for i in 0..per {
                slots.acquire();
                buffer.lock().push_back(p * per + i);
                filled.release();
                if i % yield_every == 0 {
                    yield_now();
                }
            }
        })?);
    }
    for c in 0..producers {
        let (buffer, slots, filled, seen) = (buffer.clone(), slots.clone(), filled.clone(), seen.clone());
        handles.push(spawn_or_fail("consumer", super::nth_cpu(((c + 1) % n) as u32), move || {
            for _ in 0..per {
                filled.acquire();
                let item = buffer.lock().pop_front();
                slots.release();
                if let Some(item) = item {
                    seen[item as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        })?);
    }
    join_all(handles, "producers and consumers", bites)?;
    let wrong: Vec<u64> = (0..total).filter(|&i| seen[i as usize].load(Ordering::Relaxed) != 1).take(5).collect();
    ensure!(wrong.is_empty(), "seed {}: items not consumed exactly once, e.g. {wrong:?}", seed());
    ensure!(buffer.lock().is_empty(), "items left in the buffer");
    Ok(())
}

/// Threads re-pin themselves to a random CPU at every step while running;
/// after each move they must be running where they are pinned.
fn migration_storm() -> TestResult {
    let bites = begin("migration_storm");
    const STEPS: u64 = 300;
    let n = smp::online_count();
    let misplaced = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..(2 * n) {
        let misplaced = misplaced.clone();
        let mut rng = XorShift64::new(seed() ^ (0x5151 + u64::from(t)));
        handles.push(spawn_or_fail("migrant", ANY_CPU, move || {
            let me = sched::current();
            for _ in 0..STEPS {
                let cpu = super::nth_cpu(rng.below(u64::from(n)) as u32);
                sched::set_affinity(&me, cpu);
                if rng.chance(2) {
                    yield_now();
                }
                if cpu_index() != cpu {
                    misplaced.fetch_add(1, Ordering::Relaxed);
                }
            }
            sched::set_affinity(&me, ANY_CPU);
        })?);
    }
    join_all(handles, "migration storm", bites)?;
    ensure!(
        misplaced.load(Ordering::Relaxed) == 0,
        "seed {}: {} steps ran off their CPU",
        seed(),
        misplaced.load(Ordering::Relaxed)
    );
    Ok(())
}

/// K = 2N CPU-bound threads on N CPUs: each gets its fair share of CPU
/// time, within +-50% of the mean. They start badly placed, three on one
/// CPU and one on another (chosen by the seed), and are then let run
/// anywhere; balancing must even that out, or the lone one gets twice the
/// mean. Time is the scheduler's own accounting (TSC time from switch-in to
/// switch-out). The bound is loose because under TCG with more virtual
/// CPUs than host cores a slice can end late when the host does not run
/// the virtual CPU; the 16-CPU runs measured up to +-30%.
fn fairness() -> TestResult {
    let bites = begin("fairness");
    const WINDOW_NS: u64 = 800_000_000;
    const SETTLE_NS: u64 = 100_000_000;
    let n = smp::online_count();
    let k = 2 * n;
    // Two hogs per CPU, except that `crowded` takes one from `lonely`.
    let mut rng = XorShift64::new(seed() ^ 0xfa1e);
    let crowded = rng.below(u64::from(n)) as u32;
    let lonely = if n == 1 { crowded } else { (crowded + 1 + rng.below(u64::from(n) - 1) as u32) % n };
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..k {
        let stop = stop.clone();
        let cpu = super::nth_cpu(if i / 2 == lonely && i % 2 == 1 { crowded } else { i / 2 });
        handles.push(spawn_or_fail("hog", cpu, move || {
            while !stop.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        })?);
    }
    for h in &handles {
        sched::set_affinity(h.thread(), ANY_CPU);
    }
    sched::sleep_ns(SETTLE_NS);
    let threads: Vec<_> = handles.iter().map(|h| h.thread().clone()).collect();
    let before: Vec<u64> = threads.iter().map(|t| sched::runtime_ns(t)).collect();
    sched::sleep_ns(WINDOW_NS);
    let after: Vec<u64> = threads.iter().map(|t| sched::runtime_ns(t)).collect();
    stop.store(true, Ordering::Release);
    join_all(handles, "fairness", bites)?;
    let shares: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let mean = shares.iter().sum::<u64>() / u64::from(k);
    ensure!(mean > 0, "the hogs got no CPU time");
    log::info!(
        "fairness: {k} hogs on {n} CPUs, started 3 on cpu{crowded} and 1 on cpu{lonely}, ms each: {:?}",
        shares.iter().map(|s| s / 1_000_000).collect::<Vec<_>>()
    );
    for (i, &s) in shares.iter().enumerate() {
        ensure!(
            s >= mean / 2 && s <= mean + mean / 2,
            "thread {i} ran {} ms, mean {} ms (all: {:?} ms)",
            s / 1_000_000,
            mean / 1_000_000,
            shares.iter().map(|s| s / 1_000_000).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// 2N hogs queued on one CPU while the others are halted, then let go
/// anywhere: the busy CPU wakes the halted ones and they take their share,
/// until no CPU has two more threads than another. (With stealing only on
/// the way into idle, the halted CPUs would never look.)
fn backlog_spreads() -> TestResult {
    let bites = begin("backlog_spreads");
    let n = smp::online_count();
    if n < 2 {
        return Ok(());
    }
    // The test thread stays off the CPU it loads and counts for nothing.
    let me = sched::current();
    sched::set_affinity(&me, super::nth_cpu(n - 1));
    let k = 2 * n;
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..k {
        let stop = stop.clone();
        handles.push(spawn_or_fail("hog", 0, move || {
            while !stop.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        })?);
    }
    for h in &handles {
        sched::set_affinity(h.thread(), ANY_CPU);
    }
    let deadline = time::uptime_ns() + JOIN_LIMIT_NS;
    let balanced = loop {
        let all = sched::loads_snapshot();
        let loads: Vec<usize> = smp::online_cpus().iter().map(|c| all[c as usize]).collect();
        let (min, max) = (loads.iter().min().copied().unwrap_or(0), loads.iter().max().copied().unwrap_or(0));
        if min >= 1 && max - min <= 1 {
            break Ok(());
        }
        if time::uptime_ns() > deadline {
            sched::dump_state();
            break Err(alloc::format!("loads still {loads:?} after 60 s"));
        }
        sched::sleep_ns(1_000_000);
    };
    stop.store(true, Ordering::Release);
    sched::set_affinity(&me, ANY_CPU);
    join_all(handles, "backlog", bites)?;
    balanced
}
