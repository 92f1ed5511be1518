//! `ubench`: the user-mode half of Ferrite's benchmark suite.
//!
//! The kernel starts it, as the first process, when booted with `bench`
//! (`make bench`); it measures what a program sees, prints one line per
//! figure, `bench <name> <value> <unit>`, and exits 0 if it could measure
//! them all. Each figure also gets an `ubench:` line saying how it was
//! measured (CPUs, batches, runs). The method (medians of timed batches,
//! the empty loop subtracted) is ferrite_kcore::bench's; the clock is the
//! TSC, read as clock.rs says, at the frequency the kernel reports.
//!
//! A figure that needs two CPUs prints `n/a` on a machine with one.
//!
//! `ubench server <cpu>` is the other end of the IPC figures: a process of
//! its own, pinned to `cpu`, answering calls on its handle 0. `ubench
//! storm` (with `ubench hog <MiB>`) is the load the kernel measures
//! `irq_off_max` under (storm.rs).
#![no_std]
#![no_main]

extern crate alloc;

mod clock;
mod ipc;
mod memory;
mod sched;
mod storm;

use core::fmt;

use ferrite_kcore::bench::{Figure, Measured, Plan, Unit, Value};
use ferrite_user::{println, sys};

ferrite_user::entry!(main);

/// The exit code when a figure could not be measured.
const FAILED: u64 = 1;

fn main(args: &str) -> u64 {
    let mut words = args.split_whitespace();
    let outcome = match (words.next(), words.next()) {
        (None, _) => run_all(),
        (Some("server"), Some(cpu)) => match cpu.parse() {
            Ok(cpu) => ipc::serve(cpu),
            Err(_) => Err(Failure::new(format_args!("bad CPU '{cpu}'"))),
        },
        (Some("storm"), None) => storm::storm(),
        (Some("hog"), Some(mib)) => match mib.parse() {
            Ok(mib) => storm::hog(mib),
            Err(_) => Err(Failure::new(format_args!("bad size '{mib}'"))),
        },
        _ => Err(Failure::new(format_args!("unknown arguments '{args}'"))),
    };
    match outcome {
        Ok(()) => 0,
        Err(failure) => {
            println!("ubench: FAILED: {}", failure.0);
            FAILED
        }
    }
}

fn run_all() -> Result<(), Failure> {
    let cpus = sys::cpu_count().map_err(|e| Failure::new(format_args!("cpu_count: {e:?}")))?;
    let hz = clock::hz()?;
    println!("ubench: {cpus} CPUs, TSC at {hz} Hz, clock reads: {}", clock::kind());
    sys::set_affinity(0).map_err(|e| Failure::new(format_args!("set_affinity(0): {e:?}")))?;
    sched::null_syscall(hz)?;
    sched::context_switch(hz)?;
    sched::thread_spawn_join(hz)?;
    ipc::round_trips(hz, cpus)?;
    sched::wakeup_cross_cpu(hz, cpus)?;
    memory::tlb_shootdown(hz, cpus)?;
    sched::yield_throughput(hz, cpus)?;
    Ok(())
}

/// Why a figure could not be measured.
pub struct Failure(alloc::string::String);

impl Failure {
    pub fn new(why: fmt::Arguments) -> Self {
        Failure(alloc::format!("{why}"))
    }
}

/// Prints a figure and how it was measured.
pub fn report_measured(name: &str, hz: u64, plan: &Plan, measured: &Measured, divisor: u64, how: fmt::Arguments) {
    let tenths = measured.tenths_ns_per_op(hz) / divisor.max(1);
    println!(
        "ubench: {name}: {how}; {} batches of {} after {} warm-up runs; median batch {} ticks, empty loop {} ticks",
        plan.samples, plan.batch, plan.warmup, measured.batch_ticks, measured.overhead_ticks
    );
    println!("{}", Figure { name, value: Value::Tenths(tenths), unit: Unit::Nanoseconds });
}

/// Prints a figure that does not exist on this machine, and why.
pub fn report_not_applicable(name: &str, unit: Unit, why: &str) {
    println!("ubench: {name}: {why}");
    println!("{}", Figure { name, value: Value::NotApplicable, unit });
}

/// Maps a system call's error to a [`Failure`] naming the call.
pub trait Check<T> {
    fn check(self, what: &str) -> Result<T, Failure>;
}

impl<T> Check<T> for Result<T, ferrite_user::Error> {
    fn check(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(format_args!("{what}: {e:?}")))
    }
}
