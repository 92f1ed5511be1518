//! Scheduler tests: threads start, run, block, wake, get preempted and
//! exit everywhere, and leave nothing behind.
use super::{Test, TestResult};
use crate::ensure;
use crate::mem::frames;
use crate::percpu::cpu_index;
use crate::sched::thread::{live_threads, ANY_CPU};
use crate::sched::wait::WaitQueue;
use crate::sched::{self, spawn, yield_now};
use crate::smp;
use crate::time;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use ferrite_kcore::sched::Class;

pub const TESTS: &[Test] = &[
    Test { name: "sched::spawn_join_many", run: spawn_join_many },
    Test { name: "sched::placement_spreads", run: placement_spreads },
    Test { name: "sched::yield_alternates", run: yield_alternates },
    Test { name: "sched::timer_preempts", run: timer_preempts },
    Test { name: "sched::high_class_preempts", run: high_class_preempts },
    Test { name: "sched::wait_queue_across_cpus", run: wait_queue_across_cpus },
    Test { name: "sched::preempt_guard_holds", run: preempt_guard_holds },
    Test { name: "sched::idle_not_switched_while_polling", run: idle_not_switched_while_polling },
    Test { name: "sched::mutex_excludes", run: mutex_excludes },
    Test { name: "sched::sleep_not_early", run: sleep_not_early },
    Test { name: "sched::idle_cpu_takes_no_ticks", run: idle_cpu_takes_no_ticks },
    Test { name: "sched::semaphore_bounds", run: semaphore_bounds },
    Test { name: "sched::affinity_change_moves", run: affinity_change_moves },
    Test { name: "sched::affinity_change_while_queued", run: affinity_change_while_queued },
    Test { name: "sched::crossed_switches", run: crossed_switches },
    Test { name: "sched::no_leaks", run: no_leaks },
];

/// Waits (yielding) until `done` holds or `limit_ns` passes.
fn wait_for(limit_ns: u64, done: impl Fn() -> bool) -> bool {
    let deadline = time::uptime_ns() + limit_ns;
    while !done() {
        if time::uptime_ns() > deadline {
            return false;
        }
        yield_now();
    }
    true
}

fn spawn_join_many() -> TestResult {
    const THREADS: u64 = 300;
    let sum = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for i in 0..THREADS {
        let sum = sum.clone();
        let h = spawn("worker", Class::Normal, ANY_CPU, move || {
            sum.fetch_add(i, Ordering::Relaxed);
        })
        .map_err(|e| alloc::format!("spawn {i}: {e}"))?;
        handles.push(h);
    }
    for h in handles {
        h.join();
    }
    let got = sum.load(Ordering::Relaxed);
    ensure!(got == THREADS * (THREADS - 1) / 2, "the threads' sum is {got}");
    Ok(())
}

/// As many threads as CPUs, each holding its CPU until all have started:
/// placement must have put one on every CPU.
fn placement_spreads() -> TestResult {
    let n = smp::online_count();
    // Start from every CPU idle but this one: a joined thread is marked
    // exited before its CPU has switched away from it, and until then that
    // CPU rightly counts as busy.
    let quiet = wait_for(2_000_000_000, || {
        let loads = sched::loads_snapshot();
        let me = cpu_index() as usize;
        (0..smp::cpu_span() as usize).all(|c| loads[c] == usize::from(c == me))
    });
    ensure!(quiet, "CPUs still busy before the test: loads {:?}", &sched::loads_snapshot()[..smp::cpu_span() as usize]);
    let started = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..n {
        let (started, seen) = (started.clone(), seen.clone());
        handles.push(
            spawn("spread", Class::Normal, ANY_CPU, move || {
                seen.fetch_or(1 << (cpu_index() % 64), Ordering::Relaxed);
                started.fetch_add(1, Ordering::Relaxed);
                let deadline = time::uptime_ns() + 60_000_000_000;
                while started.load(Ordering::Relaxed) < n && time::uptime_ns() < deadline {
                    core::hint::spin_loop();
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?,
        );
    }
    let loads = sched::loads_snapshot();
    let spawner = cpu_index();
    for h in handles {
        h.join();
    }
    let cpus = seen.load(Ordering::Relaxed).count_ones();
    ensure!(
        cpus >= n.min(64),
        "{n} threads ran on only {cpus} CPUs (mask {:#x}; loads after spawning {:?}, spawned from cpu{spawner})",
        seen.load(Ordering::Relaxed),
        &loads[..n as usize]
    );
    Ok(())
}

/// Two threads pinned to one CPU, each yielding after every step, take
/// turns. They first wait for each other (so that neither finishes before
/// the other is spawned); from then on no thread logs more than two steps
/// in a row (two: a timer preemption between a step and its yield).
fn yield_alternates() -> TestResult {
    const STEPS: usize = 200;
    let cpu = super::nth_cpu(smp::online_count() - 1);
    let log = Arc::new(crate::sync::IrqSpinlock::new(Vec::new()));
    let ready = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for who in 0..2u8 {
        let (log, ready) = (log.clone(), ready.clone());
        handles.push(
            spawn("yielder", Class::Normal, cpu, move || {
                ready.fetch_add(1, Ordering::AcqRel);
                while ready.load(Ordering::Acquire) < 2 {
                    yield_now();
                }
                for _ in 0..STEPS {
                    log.lock().push(who);
                    yield_now();
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?,
        );
    }
    for h in handles {
        h.join();
    }
    let log = log.lock();
    ensure!(log.len() == 2 * STEPS, "{} steps logged", log.len());
    let longest = log.chunk_by(|a, b| a == b).map(|run| run.len()).max().unwrap_or(0);
    ensure!(longest <= 2, "a thread ran {longest} steps in a row");
    Ok(())
}

/// A thread that never yields cannot keep another thread of its class
/// off its CPU: the timer takes the CPU away when its slice ends.
fn timer_preempts() -> TestResult {
    let cpu = super::nth_cpu(smp::online_count() - 1);
    let flag = Arc::new(AtomicBool::new(false));
    let spinner = {
        let flag = flag.clone();
        spawn("spinner", Class::Normal, cpu, move || {
            let deadline = time::uptime_ns() + 10_000_000_000;
            while !flag.load(Ordering::Acquire) && time::uptime_ns() < deadline {
                core::hint::spin_loop();
            }
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    // Let the spinner get the CPU first.
    wait_for(1_000_000_000, || spinner.thread().state() == sched::thread::state::RUNNING);
    let setter = {
        let flag = flag.clone();
        spawn("setter", Class::Normal, cpu, move || flag.store(true, Ordering::Release))
            .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    setter.join();
    spinner.join();
    ensure!(flag.load(Ordering::Acquire), "the setter never ran while the spinner spun");
    Ok(())
}

/// A High thread woken on a CPU busy with a Normal one runs at once, not
/// at the end of the Normal thread's slice.
fn high_class_preempts() -> TestResult {
    let cpu = super::nth_cpu(smp::online_count() - 1);
    let stop = Arc::new(AtomicBool::new(false));
    let high_ran = Arc::new(AtomicBool::new(false));
    let busy = {
        let (stop, high_ran) = (stop.clone(), high_ran.clone());
        spawn("busy", Class::Normal, cpu, move || {
            let deadline = time::uptime_ns() + 10_000_000_000;
            while !stop.load(Ordering::Acquire) && time::uptime_ns() < deadline {
                core::hint::spin_loop();
            }
            // If the High thread ran, it ran while we were spinning.
            let _ = high_ran.load(Ordering::Acquire);
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    wait_for(1_000_000_000, || busy.thread().state() == sched::thread::state::RUNNING);
    let high = {
        let (stop, high_ran) = (stop.clone(), high_ran.clone());
        spawn("high", Class::High, cpu, move || {
            high_ran.store(true, Ordering::Release);
            stop.store(true, Ordering::Release);
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    high.join();
    busy.join();
    ensure!(high_ran.load(Ordering::Acquire), "the High thread did not run");
    Ok(())
}

/// Threads on every CPU block on one wait queue; the main thread hands out
/// one ticket at a time with `wake_one` and waits for someone to use it.
/// A woken thread may find the ticket taken by a late arrival and sleep
/// again; every round still ends with exactly one more thread done, and the
/// last round leaves no one behind: a lost wakeup would hang a round.
fn wait_queue_across_cpus() -> TestResult {
    let n = smp::online_count();
    let wq = Arc::new(WaitQueue::new());
    let tickets = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for cpu in smp::online_cpus().iter() {
        for _ in 0..4 {
            let (wq, tickets, done) = (wq.clone(), tickets.clone(), done.clone());
            handles.push(
                spawn("waiter", Class::Normal, cpu, move || {
                    wq.wait_until(|| {
                        let t = tickets.load(Ordering::Acquire);
                        t > 0 && tickets.compare_exchange(t, t - 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
                    });
                    done.fetch_add(1, Ordering::AcqRel);
                })
                .map_err(|e| alloc::format!("spawn: {e}"))?,
            );
        }
    }
    let total = n * 4;
    for round in 0..total {
        tickets.fetch_add(1, Ordering::AcqRel);
        wq.wake_one();
        let finished = wait_for(10_000_000_000, || done.load(Ordering::Acquire) > round);
        ensure!(finished, "round {round}: nobody used the ticket within 10 s (a lost wakeup?)");
    }
    for h in handles {
        h.join();
    }
    ensure!(wq.wake_all() == 0, "threads still waiting after every ticket was used");
    Ok(())
}

/// While a thread holds a PreemptGuard, another thread of its class
/// queued on its CPU does not run, however many ticks pass; once it lets
/// go, it does. The other thread is spawned only after the guard is held,
/// from a CPU the test pins itself to. (Needs a second CPU to spawn from.)
fn preempt_guard_holds() -> TestResult {
    let n = smp::online_count();
    if n < 2 {
        return Ok(());
    }
    let main = sched::current();
    let me = cpu_index();
    sched::set_affinity(&main, me);
    let result = guard_holds_on(super::nth_cpu(super::my_rank() + 1));
    sched::set_affinity(&main, ANY_CPU);
    result
}

/// A thread woken onto a CPU whose idle thread polls gets no IPI (the
/// waker sees `polling` and only sets need_resched), so the idle thread
/// must never be switched out while it says it polls: the thread that
/// ran instead would keep that CPU's wakeups waiting without an IPI until
/// it blocked. The window this test aims at: the idle thread's console
/// drain at the start of a poll, with bytes a writer left in the ring,
/// whose preemption guard, when dropped, switched to the woken thread at
/// once. Each round the woken thread leaves bytes behind and blocks, the
/// test waits for the idle thread to poll, wakes it, and the thread checks
/// that its CPU's idle thread no longer says it polls.
fn idle_not_switched_while_polling() -> TestResult {
    let n = smp::online_count();
    if n < 2 {
        return Ok(());
    }
    const ROUNDS: u32 = 24;
    let main = sched::current();
    sched::set_affinity(&main, cpu_index());
    let target = super::nth_cpu(super::my_rank() + 1);
    let wq = Arc::new(WaitQueue::new());
    let tickets = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let bad = Arc::new(AtomicU32::new(0));
    let waiter = {
        let (wq, tickets, done, bad) = (wq.clone(), tickets.clone(), done.clone(), bad.clone());
        spawn("poll-waker", Class::Normal, target, move || {
            for round in 0..=ROUNDS {
                if round > 0 && sched::idle_polling(cpu_index()) {
                    bad.fetch_add(1, Ordering::AcqRel);
                }
                if round == ROUNDS {
                    break;
                }
                // With interrupts off a writer sends a FIFO's worth and
                // leaves the rest to the console's next drainer: this
                // CPU's idle thread, as it starts to poll.
                x86_64::instructions::interrupts::without_interrupts(|| {
                    log::info!("idle_not_switched_while_polling: round {round}, a line left for the idle CPU to send");
                });
                done.fetch_add(1, Ordering::AcqRel);
                wq.wait_until(|| {
                    let t = tickets.load(Ordering::Acquire);
                    t > 0 && tickets.compare_exchange(t, t - 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
                });
            }
        })
    };
    let result = (|| {
        let waiter = waiter.as_ref().map_err(|e| alloc::format!("spawn: {e}"))?;
        let mut seen_polling = 0;
        for round in 0..ROUNDS {
            ensure!(
                wait_for(10_000_000_000, || done.load(Ordering::Acquire) > round),
                "round {round}: the woken thread did not come back within 10 s (a lost wakeup?)"
            );
            // Spin (not yield) to catch the poll as it starts.
            let start = crate::arch::cpu::rdtsc();
            while !sched::idle_polling(target) && time::tsc_to_ns(crate::arch::cpu::rdtsc() - start) < 100_000_000 {
                core::hint::spin_loop();
            }
            seen_polling += sched::idle_polling(target) as u32;
            tickets.fetch_add(1, Ordering::AcqRel);
            wq.wake_one();
        }
        let _ = waiter;
        ensure!(seen_polling > 0, "cpu{target}'s idle thread was never seen polling in {ROUNDS} rounds");
        Ok(())
    })();
    if let Ok(w) = waiter {
        w.join();
    }
    sched::set_affinity(&main, ANY_CPU);
    result?;
    let bad = bad.load(Ordering::Acquire);
    ensure!(
        bad == 0,
        "cpu{target}'s idle thread was switched out while polling in {bad} of {ROUNDS} rounds (its wakeups then go without an IPI)"
    );
    Ok(())
}

fn guard_holds_on(cpu: u32) -> TestResult {
    let holding = Arc::new(AtomicBool::new(false));
    let other_queued = Arc::new(AtomicBool::new(false));
    let other_ran = Arc::new(AtomicBool::new(false));
    let verdict = Arc::new(AtomicU32::new(0));
    let guarded = {
        let (holding, other_queued, other_ran, verdict) =
            (holding.clone(), other_queued.clone(), other_ran.clone(), verdict.clone());
        spawn("guarded", Class::Normal, cpu, move || {
            let guard = sched::PreemptGuard::new();
            holding.store(true, Ordering::Release);
            let deadline = time::uptime_ns() + 60_000_000_000;
            while !other_queued.load(Ordering::Acquire) && time::uptime_ns() < deadline {
                core::hint::spin_loop();
            }
            // Several slices with the other thread waiting behind us.
            let until = time::uptime_ns() + 100_000_000;
            while time::uptime_ns() < until {
                core::hint::spin_loop();
            }
            let ran_inside = other_ran.load(Ordering::Acquire);
            drop(guard);
            let deadline = time::uptime_ns() + 60_000_000_000;
            while !other_ran.load(Ordering::Acquire) && time::uptime_ns() < deadline {
                core::hint::spin_loop();
            }
            let ran_after = other_ran.load(Ordering::Acquire);
            verdict.store(
                if ran_inside {
                    1
                } else if !ran_after {
                    2
                } else {
                    3
                },
                Ordering::Release,
            );
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    let held = wait_for(30_000_000_000, || holding.load(Ordering::Acquire));
    if !held {
        other_queued.store(true, Ordering::Release);
        guarded.join();
        return Err("the guarded thread never started within 30 s".into());
    }
    let other = {
        let other_ran = other_ran.clone();
        spawn("other", Class::Normal, cpu, move || other_ran.store(true, Ordering::Release))
            .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    other_queued.store(true, Ordering::Release);
    other.join();
    guarded.join();
    match verdict.load(Ordering::Acquire) {
        3 => Ok(()),
        1 => Err("the other thread ran while preemption was disabled".into()),
        2 => Err("the other thread did not run after preemption was enabled again".into()),
        v => Err(alloc::format!("no verdict ({v})")),
    }
}

/// Threads on every CPU increment a plain counter under a sleeping mutex,
/// yielding inside the critical section to invite contention: the count
/// is exact.
fn mutex_excludes() -> TestResult {
    const ROUNDS: u64 = 300;
    let n = u64::from(smp::online_count());
    let threads = 2 * n;
    let counter = Arc::new(sched::sync::Mutex::new(0u64));
    let mut handles = Vec::new();
    for _ in 0..threads {
        let counter = counter.clone();
        handles.push(
            spawn("locker", Class::Normal, ANY_CPU, move || {
                for _ in 0..ROUNDS {
                    let mut c = counter.lock();
                    let v = core::hint::black_box(*c);
                    yield_now();
                    *c = v + 1;
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?,
        );
    }
    for h in handles {
        h.join();
    }
    let got = *counter.lock();
    ensure!(got == threads * ROUNDS, "counter {got}, expected {}", threads * ROUNDS);
    Ok(())
}

/// A semaphore of K permits never lets more than K threads in at once,
/// and every thread gets in.
fn semaphore_bounds() -> TestResult {
    const PERMITS: u64 = 3;
    let n = u64::from(smp::online_count());
    let sem = Arc::new(sched::sync::Semaphore::new(PERMITS));
    let inside = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let entered = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..4 * n + 4 {
        let (sem, inside, most, entered) = (sem.clone(), inside.clone(), most.clone(), entered.clone());
        handles.push(
            spawn("permit", Class::Normal, ANY_CPU, move || {
                for _ in 0..20 {
                    sem.acquire();
                    let now = inside.fetch_add(1, Ordering::AcqRel) + 1;
                    most.fetch_max(now, Ordering::AcqRel);
                    entered.fetch_add(1, Ordering::Relaxed);
                    yield_now();
                    inside.fetch_sub(1, Ordering::AcqRel);
                    sem.release();
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?,
        );
    }
    let expected = (4 * n + 4) * 20;
    for h in handles {
        h.join();
    }
    ensure!(most.load(Ordering::Acquire) <= PERMITS, "{} threads inside at once", most.load(Ordering::Acquire));
    ensure!(entered.load(Ordering::Relaxed) == expected, "{} of {expected} entries", entered.load(Ordering::Relaxed));
    ensure!(sem.available() == PERMITS, "{} permits left of {PERMITS}", sem.available());
    Ok(())
}

/// Threads on every CPU sleep for pseudo-random durations (seeded, the
/// seed printed on failure) and each checks it woke no earlier than asked,
/// and within a generous bound (a lost timer would hang it).
fn sleep_not_early() -> TestResult {
    let seed = super::seed();
    log::info!("sleep_not_early: seed={seed} (replay with seed={seed} on the command line)");
    let n = smp::online_count();
    let early = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let mut rng = ferrite_kcore::rng::XorShift64::new(seed);
    let mut handles = Vec::new();
    for i in 0..(4 * n) {
        let (early, late) = (early.clone(), late.clone());
        let naps: Vec<u64> = (0..5).map(|_| 100_000 + rng.below(20_000_000)).collect();
        handles.push(
            spawn("sleeper", Class::Normal, super::nth_cpu(i), move || {
                for ns in naps {
                    let start = time::uptime_ns();
                    sched::sleep_ns(ns);
                    let slept = time::uptime_ns() - start;
                    if slept < ns {
                        early.fetch_add(1, Ordering::Relaxed);
                    }
                    if slept > ns + 10_000_000_000 {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?,
        );
    }
    for h in handles {
        h.join();
    }
    ensure!(early.load(Ordering::Relaxed) == 0, "seed {seed}: {} sleeps ended early", early.load(Ordering::Relaxed));
    ensure!(late.load(Ordering::Relaxed) == 0, "seed {seed}: {} sleeps overran 10 s", late.load(Ordering::Relaxed));
    Ok(())
}

/// A CPU with nothing but its idle thread arms no timer: over a quarter of
/// a second it takes no timer interrupts at all. The CPU watched is one
/// other than the test's own (whose sleep arms a timer there); an attempt
/// in which the test thread moved CPUs proves nothing and is retried.
/// (Needs a second CPU.)
fn idle_cpu_takes_no_ticks() -> TestResult {
    let n = smp::online_count();
    if n < 2 {
        return Ok(());
    }
    for _ in 0..3 {
        let me = cpu_index();
        let watched = super::nth_cpu(super::my_rank() + 1);
        // Make the watched CPU run a thread and go back to idle, so that it
        // has been through the scheduler (and armed timers) first.
        spawn("brief", Class::Normal, watched, || {}).map_err(|e| alloc::format!("spawn: {e}"))?.join();
        // Let the last timer it armed fire.
        sched::sleep_ns(50_000_000);
        let before = crate::percpu::get(watched).timer_ticks.load(Ordering::Relaxed);
        sched::sleep_ns(250_000_000);
        let after = crate::percpu::get(watched).timer_ticks.load(Ordering::Relaxed);
        if cpu_index() == me {
            ensure!(after == before, "idle cpu{watched} took {} timer interrupts in 250 ms", after - before);
            return Ok(());
        }
    }
    Err("the test thread moved between CPUs in every attempt".into())
}

/// A running thread whose affinity moves to another CPU continues there.
fn affinity_change_moves() -> TestResult {
    let n = smp::online_count();
    let path = Arc::new(crate::sync::IrqSpinlock::new(Vec::new()));
    let h = {
        let path = path.clone();
        spawn("mover", Class::Normal, 0, move || {
            let me = sched::current();
            for step in 0..(2 * n) {
                let target = super::nth_cpu(step);
                sched::set_affinity(&me, target);
                yield_now();
                path.lock().push((target, cpu_index()));
            }
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    h.join();
    for &(want, got) in path.lock().iter() {
        ensure!(want == got, "pinned to cpu{want} but ran on cpu{got}");
    }
    Ok(())
}

/// A thread whose affinity changes while it waits on one CPU's queue runs
/// on the CPU it was moved to, not where it was queued. (Needs two CPUs.)
fn affinity_change_while_queued() -> TestResult {
    let n = smp::online_count();
    if n < 2 {
        return Ok(());
    }
    // This thread stays where it is, off `from`: the blocker there does not
    // let anything else run until it is released.
    let main = sched::current();
    let me = cpu_index();
    sched::set_affinity(&main, me);
    let from = super::nth_cpu(super::my_rank() + 1);
    let to = if n == 2 { me } else { super::nth_cpu(super::my_rank() + 2) };
    let result = queued_move(from, to);
    sched::set_affinity(&main, ANY_CPU);
    result
}

fn queued_move(from: u32, to: u32) -> TestResult {
    // Keep `from` busy so that the thread below waits in its queue.
    let release = Arc::new(AtomicBool::new(false));
    let blocker = {
        let release = release.clone();
        spawn("blocker", Class::Normal, from, move || {
            let _hold = sched::PreemptGuard::new();
            let deadline = time::uptime_ns() + 60_000_000_000;
            while !release.load(Ordering::Acquire) && time::uptime_ns() < deadline {
                core::hint::spin_loop();
            }
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    // The test means something only once the blocker holds the CPU; on a
    // loaded host that can take a while.
    let holding = wait_for(30_000_000_000, || blocker.thread().state() == sched::thread::state::RUNNING);
    ensure!(holding, "the blocker never got its CPU within 30 s");
    let ran_on = Arc::new(AtomicU32::new(u32::MAX));
    let moved = {
        let ran_on = ran_on.clone();
        spawn("moved", Class::Normal, from, move || ran_on.store(cpu_index(), Ordering::Release))
            .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    sched::set_affinity(moved.thread(), to);
    release.store(true, Ordering::Release);
    moved.join();
    blocker.join();
    let cpu = ran_on.load(Ordering::Acquire);
    ensure!(cpu == to, "the thread re-pinned to cpu{to} while queued on cpu{from} ran on cpu{cpu}");
    Ok(())
}

/// After churn, threads and memory return to where they started.
///
/// Kernel-stack slots, their page tables and the run queues keep what they
/// grew to for reuse, so the baseline is taken after a warm-up that reaches
/// the churn's peak on purpose: all of its threads alive at once.
fn no_leaks() -> TestResult {
    const PEAK: usize = 300;
    let gate = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..PEAK {
        let gate = gate.clone();
        handles.push(
            spawn("warmup", Class::Normal, ANY_CPU, move || {
                while !gate.load(Ordering::Acquire) {
                    yield_now();
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?,
        );
    }
    gate.store(true, Ordering::Release);
    for h in handles {
        h.join();
    }
    // Exited threads are freed by whichever CPU switches away from them.
    let settled = |threads: u64| wait_for(2_000_000_000, || live_threads() == threads);
    let idle_threads = u64::from(smp::online_count()) + 1; // idle threads and main
    settled(idle_threads);
    // Cached stacks are reclaimable memory, not leaks: both counts are taken
    // with the cache emptied.
    crate::mem::stack::trim();
    // Frames the heap grew by, and the kernel half's page tables (a stack
    // slot in a 2 MiB stretch not used before needs one), never go back
    // and are not lost: they count with the free ones, as in the user
    // suite's leak checks (ktest::user::settle).
    let free_frames = || {
        frames::free_count()
            + crate::mem::heap::usage().1 as u64 / crate::mem::PAGE_SIZE
            + crate::mem::paging::table_frames()
    };
    let (threads, free, heap) = (live_threads(), free_frames(), crate::mem::heap::usage().0);
    for _ in 0..3 {
        spawn_join_many()?;
    }
    settled(threads);
    crate::mem::stack::trim();
    ensure!(live_threads() == threads, "threads: {threads} before, {} after", live_threads());
    ensure!(free_frames() == free, "free frames: {free} before, {} after", free_frames());
    let heap_after = crate::mem::heap::usage().0;
    ensure!(heap_after == heap, "heap use: {heap} bytes before, {heap_after} after");
    Ok(())
}

/// Two CPUs each switching to the thread the other is leaving: A goes from
/// R to T while B goes from T to R. T, on its way to block on B, was woken
/// into A's queue (its affinity now A); R blocked on A and B handed off to
/// it. Each switch found its next thread still on the other CPU, and both
/// spun with interrupts off for ever (the user fuzz hit it: a CPU "running"
/// one thread for two minutes, its queue full, taking no timer interrupt).
/// Both threads must get through, and end where they were sent. (Needs two
/// CPUs; with three the runner, elsewhere, reports a hang.)
fn crossed_switches() -> TestResult {
    use crate::sched::thread::Thread;
    use crate::sched::InterruptsOff;
    use core::sync::atomic::AtomicU8;
    let n = smp::online_count();
    if n < 2 {
        return Ok(());
    }
    let (a, b) = if n == 2 {
        (super::nth_cpu(super::my_rank() + 1), cpu_index())
    } else {
        (super::nth_cpu(super::my_rank() + 1), super::nth_cpu(super::my_rank() + 2))
    };
    const T_BLOCKED: u8 = 1;
    const R_BLOCKED: u8 = 2;
    struct Shared {
        t: spin::Once<Arc<Thread>>,
        r: spin::Once<Arc<Thread>>,
        phase: AtomicU8,
        t_ended_on: AtomicU32,
        r_ended_on: AtomicU32,
    }
    let shared = Arc::new(Shared {
        t: spin::Once::new(),
        r: spin::Once::new(),
        phase: AtomicU8::new(0),
        t_ended_on: AtomicU32::new(u32::MAX),
        r_ended_on: AtomicU32::new(u32::MAX),
    });
    let wait = |what: &dyn Fn() -> bool| {
        let deadline = time::uptime_ns() + 2_000_000_000;
        while !what() && time::uptime_ns() < deadline {
            core::hint::spin_loop();
        }
    };
    let t = {
        let s = shared.clone();
        spawn("crossed-t", Class::Normal, b, move || {
            let me = sched::current();
            sched::set_affinity(&me, ANY_CPU);
            s.t.call_once(|| me.clone());
            wait(&|| s.r.get().is_some());
            let Some(r) = s.r.get().cloned() else { return };
            let irq = InterruptsOff::new();
            sched::block_unless(|| false);
            s.phase.store(T_BLOCKED, Ordering::SeqCst);
            wait(&|| s.phase.load(Ordering::SeqCst) == R_BLOCKED);
            // Long enough for A to be inside its switch to T.
            time::spin_ns(200_000);
            sched::handoff(&irq, r);
            drop(irq);
            s.t_ended_on.store(cpu_index(), Ordering::Release);
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    let r = {
        let s = shared.clone();
        spawn("crossed-r", Class::Normal, a, move || {
            let me = sched::current();
            // Allowed on B too, so that B may hand off to it.
            sched::set_affinity(&me, ANY_CPU);
            s.r.call_once(|| me.clone());
            wait(&|| s.t.get().is_some());
            let Some(t) = s.t.get().cloned() else { return };
            let irq = InterruptsOff::new();
            wait(&|| s.phase.load(Ordering::SeqCst) == T_BLOCKED);
            // T is still on B: woken into this CPU's queue.
            sched::set_affinity(&t, a);
            sched::wake(t);
            sched::block_unless(|| false);
            s.phase.store(R_BLOCKED, Ordering::SeqCst);
            sched::schedule(&irq);
            drop(irq);
            s.r_ended_on.store(cpu_index(), Ordering::Release);
        })
        .map_err(|e| alloc::format!("spawn: {e}"))?
    };
    let t_done = t.join_within(10_000_000_000);
    let r_done = r.join_within(10_000_000_000);
    if !(t_done && r_done) {
        sched::dump_state();
    }
    ensure!(t_done && r_done, "crossed switches on cpu{a} and cpu{b} never finished (t: {t_done}, r: {r_done})");
    ensure!(shared.phase.load(Ordering::SeqCst) == R_BLOCKED, "the threads never met");
    let t_on = shared.t_ended_on.load(Ordering::Acquire);
    ensure!(t_on == a, "T, pinned to cpu{a}, ended on cpu{t_on}");
    Ok(())
}
