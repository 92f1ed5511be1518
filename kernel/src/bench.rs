//! `bench` (the command-line flag; `make bench`): the benchmark suite.
//!
//! The figures that user programs see are measured in user mode by the
//! program `ubench` (userland/src/bin/ubench), started here as the first
//! process since boot; the kernel measures the rest itself: how long the
//! APs took to come up, how long from the kernel's first instruction to the
//! first user instruction (ubench's), and an IPI's round trip. Every figure
//! is printed as one line, `bench <name> <value> <unit>` (ferrite_kcore::
//! bench has the method and the format), and the machine then powers off,
//! with success if every figure could be measured.
use crate::arch::cpu;
use crate::arch::ipi::{self, Ipi};
use crate::percpu;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use ferrite_kcore::bench::{measure, ticks_to_tenths_us, Clock, Figure, Plan, Unit, Value};

/// How long ubench may run before it is declared hung.
const UBENCH_LIMIT_NS: u64 = 600_000_000_000;

/// The TSC, read for timing (arch::cpu).
struct Tsc;

impl Clock for Tsc {
    fn start(&self) -> u64 {
        cpu::timer_start()
    }
    fn end(&self) -> u64 {
        cpu::timer_end()
    }
}

fn print(name: &str, value: Value, unit: Unit) {
    crate::println!("{}", Figure { name, value, unit });
}

/// Runs the suite; true if every figure was measured.
pub fn run() -> bool {
    let hz = crate::time::tsc_hz();
    let source = crate::time::tsc_source();
    log::info!(
        "bench: TSC at {hz} Hz ({source}); each figure is a median of timed batches with the empty loop's median subtracted; {} CPUs",
        crate::smp::online_count()
    );
    let user_ok = user_figures();
    match crate::proc::boot_to_first_user_ticks() {
        Some(ticks) => print("boot_to_init", Value::Tenths(ticks_to_tenths_us(ticks, hz)), Unit::Microseconds),
        None => print("boot_to_init", Value::NotApplicable, Unit::Microseconds),
    }
    let bringup =
        crate::smp::bringup_ticks().map_or(Value::NotApplicable, |t| Value::Tenths(ticks_to_tenths_us(t, hz)));
    print("ap_bringup", bringup, Unit::Microseconds);
    ipi_roundtrip(hz);
    let storm_ok = irq_off_max(hz);
    user_ok && storm_ok
}

/// `irq_off_max`: the longest stretch any CPU spends with interrupts off
/// while every CPU maps, unmaps and tears down 16 MiB at a time (`ubench
/// storm`), traced by arch::irqtrace; the info line says where it began.
fn irq_off_max(hz: u64) -> bool {
    crate::arch::irqtrace::start();
    let ok = run_to_end("ubench", "storm");
    let (ticks, cpu, from) = crate::arch::irqtrace::stop();
    if !ok {
        print("irq_off_max", Value::NotApplicable, Unit::Microseconds);
        return false;
    }
    match from {
        Some(at) => log::info!("bench: irq_off_max on cpu{cpu}, interrupts off at {}:{}", at.file(), at.line()),
        None => log::info!("bench: irq_off_max on cpu{cpu}"),
    }
    print("irq_off_max", Value::Tenths(ticks_to_tenths_us(ticks, hz)), Unit::Microseconds);
    true
}

/// Starts ubench and waits for it; its figures are its own output lines.
fn user_figures() -> bool {
    run_to_end("ubench", "")
}

/// Starts `name` with `args` and waits for it to exit 0.
fn run_to_end(name: &str, args: &str) -> bool {
    let process = match crate::proc::spawn(name, args, Vec::new()) {
        Ok(p) => p,
        Err(e) => {
            log::error!("bench: cannot start '{name} {args}': {e:?}");
            return false;
        }
    };
    let deadline = crate::time::uptime_ns() + UBENCH_LIMIT_NS;
    while process.exit_code().is_none() {
        if crate::time::uptime_ns() > deadline {
            log::error!("bench: ubench did not finish within {} s", UBENCH_LIMIT_NS / 1_000_000_000);
            process.kill(ferrite_abi::EXIT_FAULT);
            return false;
        }
        crate::sched::sleep_ns(10_000_000);
    }
    match process.exit_code() {
        Some(0) => true,
        code => {
            log::error!("bench: ubench ended with {code:?}");
            false
        }
    }
}

/// `ipi_roundtrip`: a PING IPI to another, idle CPU and back (its handler
/// counts the ping, and this CPU waits until it sees the count move), so
/// the figure includes waking a halted CPU, as a wakeup IPI must.
fn ipi_roundtrip(hz: u64) {
    let me = percpu::cpu_index();
    let Some(target) = crate::smp::online_cpus().iter().find(|&c| c != me) else {
        print("ipi_roundtrip", Value::NotApplicable, Unit::Nanoseconds);
        return;
    };
    let pings = &percpu::get(target).pings;
    let plan = Plan { warmup: 100, samples: 201, batch: 10 };
    let measured = measure(&plan, &Tsc, || {
        let before = pings.load(Ordering::Acquire);
        ipi::send(target, Ipi::Ping);
        while pings.load(Ordering::Acquire) == before {
            core::hint::spin_loop();
        }
    });
    log::info!("bench: ipi_roundtrip: cpu{me} to cpu{target}, {} pings", plan.total_runs());
    print("ipi_roundtrip", Value::Tenths(measured.tenths_ns_per_op(hz)), Unit::Nanoseconds);
}
