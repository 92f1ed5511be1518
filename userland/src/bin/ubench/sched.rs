//! System calls, switches, threads and wakeups: `null_syscall`,
//! `context_switch`, `thread_spawn_join`, `wakeup_cross_cpu` and
//! `yield_throughput_<n>cpu`.
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ferrite_abi::{map, nr};
use ferrite_kcore::bench::{measure, median, per_second, ticks_to_tenths_ns, Figure, Plan, Unit, Value};
use ferrite_user::{println, sys, thread};

use crate::clock::{self, Tsc};
use crate::{report_measured, report_not_applicable, Check, Failure};

/// `null_syscall`: a system call that does nothing, on CPU 0.
pub fn null_syscall(hz: u64) -> Result<(), Failure> {
    let plan = Plan { warmup: 1000, samples: 201, batch: 100 };
    let mut failed = false;
    let measured = measure(&plan, &Tsc, || failed |= sys::null().is_err());
    if failed {
        return Err(Failure::new(format_args!("null() failed")));
    }
    report_measured("null_syscall", hz, &plan, &measured, 1, format_args!("null() on cpu0"));
    Ok(())
}

/// `context_switch`: two threads pinned to CPU 0 yield to each other; one
/// yield of the measuring thread is two switches (there and back).
pub fn context_switch(hz: u64) -> Result<(), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let partner = {
        let stop = stop.clone();
        thread::spawn(move || {
            if sys::set_affinity(0).is_err() {
                return 1;
            }
            while !stop.load(Ordering::Relaxed) {
                thread::yield_now();
            }
            0
        })
        .check("spawn the partner")?
    };
    // Wait until the partner runs on CPU 0 (its first yield comes back to us).
    thread::yield_now();
    let plan = Plan { warmup: 200, samples: 201, batch: 50 };
    let measured = measure(&plan, &Tsc, thread::yield_now);
    stop.store(true, Ordering::Relaxed);
    let code = partner.join().check("join the partner")?;
    if code != 0 {
        return Err(Failure::new(format_args!("the partner could not pin itself to cpu0")));
    }
    report_measured(
        "context_switch",
        hz,
        &plan,
        &measured,
        2,
        format_args!("two threads yielding on cpu0, per switch"),
    );
    Ok(())
}

/// A thread entry that exits at once.
#[unsafe(naked)]
extern "C" fn exit_at_once() -> ! {
    core::arch::naked_asm!("mov eax, {exit}", "xor edi, edi", "syscall", "ud2", exit = const nr::THREAD_EXIT)
}

/// `thread_spawn_join`: create a thread that exits at once and join it; the
/// stack is mapped once and reused, as a thread library caches stacks.
pub fn thread_spawn_join(hz: u64) -> Result<(), Failure> {
    const STACK: usize = 16 * 1024;
    let stack = sys::map(STACK, map::WRITE).check("map a stack")?;
    let top = stack.addr() as u64 + STACK as u64;
    let entry = exit_at_once as *const () as u64;
    let plan = Plan { warmup: 20, samples: 101, batch: 10 };
    let mut failed = None;
    let measured = measure(&plan, &Tsc, || {
        // SAFETY: the entry exits at once without touching the stack, which
        // is ours and used by one thread at a time (each is joined before
        // the next starts).
        let done = unsafe { sys::thread_spawn(entry, top, 0) }.and_then(sys::thread_join);
        if let Err(e) = done {
            failed = Some(e);
        }
    });
    // SAFETY: every thread that used the stack has been joined.
    unsafe { sys::unmap(stack, STACK) }.check("unmap the stack")?;
    if let Some(e) = failed {
        return Err(Failure::new(format_args!("thread_spawn/join: {e:?}")));
    }
    report_measured("thread_spawn_join", hz, &plan, &measured, 1, format_args!("thread_spawn + thread_join"));
    Ok(())
}

/// `wakeup_cross_cpu`: a thread on CPU 1 waits on a notification; CPU 0
/// reads the clock and signals; the waiter reads the clock as soon as it
/// runs. Between samples CPU 1 has time to go idle (halt), so each wakeup
/// is an idle CPU's.
pub fn wakeup_cross_cpu(hz: u64, cpus: u64) -> Result<(), Failure> {
    if cpus < 2 {
        report_not_applicable("wakeup_cross_cpu", Unit::Nanoseconds, "needs 2 CPUs");
        return Ok(());
    }
    const SAMPLES: usize = 201;
    const WARMUP: usize = 20;
    const IDLE_GAP_NS: u64 = 200_000;
    let wake = sys::notification_create().check("notification_create")?;
    let done = sys::notification_create().check("notification_create")?;
    let woke_at = Arc::new(AtomicU64::new(0));
    let waiter = {
        let woke_at = woke_at.clone();
        thread::spawn(move || {
            if sys::set_affinity(1).is_err() {
                return 1;
            }
            for _ in 0..WARMUP + SAMPLES {
                if sys::notify_wait(wake).is_err() {
                    return 1;
                }
                woke_at.store(clock::end(), Ordering::Release);
                if sys::signal(done, 1).is_err() {
                    return 1;
                }
            }
            0
        })
        .check("spawn the waiter")?
    };
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        sys::sleep_ns(IDLE_GAP_NS).check("sleep")?;
        let sent = clock::start();
        sys::signal(wake, 1).check("signal")?;
        sys::notify_wait(done).check("notify_wait")?;
        if i >= WARMUP {
            samples.push(woke_at.load(Ordering::Acquire).wrapping_sub(sent));
        }
    }
    if waiter.join().check("join the waiter")? != 0 {
        return Err(Failure::new(format_args!("the waiter failed")));
    }
    for handle in [wake, done] {
        sys::handle_close(handle).check("handle_close")?;
    }
    let ticks = median(&mut samples);
    println!("ubench: wakeup_cross_cpu: signal on cpu0 until the waiter runs on cpu1; median of {SAMPLES} wakeups after {WARMUP}, {IDLE_GAP_NS} ns apart");
    println!(
        "{}",
        Figure {
            name: "wakeup_cross_cpu",
            value: Value::Tenths(ticks_to_tenths_ns(ticks, hz)),
            unit: Unit::Nanoseconds
        }
    );
    Ok(())
}

/// `yield_throughput_<n>cpu` for n = 1, 2, 4, … up to the CPU count: one
/// thread per CPU yields as fast as it can; the figure is all their yields
/// per second (the median of a few rounds).
pub fn yield_throughput(hz: u64, cpus: u64) -> Result<(), Failure> {
    const ROUNDS: usize = 3;
    const ROUND_NS: u64 = 200_000_000;
    let mut n = 1;
    while n <= cpus {
        let mut rates = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            rates.push(yield_round(n, ROUND_NS, hz)?);
        }
        let rate = median(&mut rates);
        let name = alloc::format!("yield_throughput_{n}cpu");
        println!("ubench: {name}: {n} threads, one pinned to each of cpus 0..{n}, yielding; median of {ROUNDS} rounds of {} ms", ROUND_NS / 1_000_000);
        println!("{}", Figure { name: &name, value: Value::Whole(rate), unit: Unit::PerSecond });
        n *= 2;
    }
    Ok(())
}

/// One round: `n` pinned threads yield from a common start until a common
/// stop; returns their total yields per second.
fn yield_round(n: u64, round_ns: u64, hz: u64) -> Result<u64, Failure> {
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for cpu in 0..n {
        let (go, stop, ready) = (go.clone(), stop.clone(), ready.clone());
        let worker = thread::spawn(move || {
            if sys::set_affinity(cpu).is_err() {
                return u64::MAX;
            }
            ready.fetch_add(1, Ordering::AcqRel);
            while !go.load(Ordering::Acquire) {
                thread::yield_now();
            }
            let mut yields = 0;
            while !stop.load(Ordering::Relaxed) {
                thread::yield_now();
                yields += 1;
            }
            yields
        })
        .check("spawn a yielder")?;
        workers.push(worker);
    }
    while ready.load(Ordering::Acquire) < n {
        thread::yield_now();
    }
    let start = clock::start();
    go.store(true, Ordering::Release);
    sys::sleep_ns(round_ns).check("sleep")?;
    stop.store(true, Ordering::Relaxed);
    let elapsed = clock::end() - start;
    let mut total = 0u64;
    for worker in workers {
        match worker.join().check("join a yielder")? {
            u64::MAX => return Err(Failure::new(format_args!("a yielder could not pin itself"))),
            yields => total += yields,
        }
    }
    Ok(per_second(total, elapsed, hz))
}
