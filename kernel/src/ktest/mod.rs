//! In-kernel tests, selected with `test=<all|name|suite|a,b,...>`.
//!
//! Each prints `test <name> ... ok` or `test <name> ... FAILED: <why>`,
//! and the run ends with `<N> passed, <M> failed`; `main` then powers off
//! with success only if M is 0. A test that expects a fault provokes it
//! through a probe (trap.S), which reports the exact fault it took.
use alloc::string::String;
use ferrite_kcore::cmdline::test_selected;

mod arch;
mod hostile;
mod mem;
mod sched;
pub mod smp;
mod stress;
mod user;

pub type TestResult = Result<(), String>;

/// The `i`th online CPU, counting round (`i` modulo the CPUs online): how
/// the tests spread work over CPUs, so that they also hold where an AP
/// failed to start and left a hole in the kernel's CPU numbers.
pub fn nth_cpu(i: u32) -> u32 {
    let n = crate::smp::online_count().max(1);
    crate::smp::nth_online(i % n).unwrap_or(0)
}

/// This CPU's place among the online CPUs (what [`nth_cpu`] counts).
pub fn my_rank() -> u32 {
    crate::smp::online_rank(crate::percpu::cpu_index())
}

pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// Every suite's tests.
const SUITES: &[&[Test]] =
    &[mem::TESTS, arch::TESTS, smp::TESTS, sched::TESTS, stress::TESTS, user::TESTS, hostile::TESTS];

/// Fails the test with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($why)+));
        }
    };
}

/// Runs the selected tests; true if all passed and at least one ran.
pub fn run(selector: &str) -> bool {
    let (mut passed, mut failed) = (0u32, 0u32);
    for test in SUITES.iter().flat_map(|s| s.iter()).filter(|t| test_selected(selector, t.name)) {
        let start = crate::time::uptime_ns();
        let result = (test.run)();
        log::debug!(
            "test: {} took {} ms; {} frames free, heap {} KiB",
            test.name,
            (crate::time::uptime_ns() - start) / 1_000_000,
            crate::mem::frames::free_count(),
            crate::mem::heap::usage().1 >> 10
        );
        match result {
            Ok(()) => {
                crate::println!("test {} ... ok", test.name);
                passed += 1;
            }
            Err(why) => {
                crate::println!("test {} ... FAILED: {why}", test.name);
                failed += 1;
            }
        }
    }
    if passed + failed == 0 {
        crate::println!("test {selector} ... FAILED: no test matches this selector");
        failed = 1;
    }
    if SUITES.iter().flat_map(|s| s.iter()).any(|t| t.name.starts_with("sched::") && test_selected(selector, t.name)) {
        crate::sched::log_stats();
    }
    crate::println!("{passed} passed, {failed} failed");
    failed == 0
}

/// The seed of this run's random choices: `seed=<n>` from the command line,
/// or one drawn from the TSC at first use. Logged once, so that any run can
/// be replayed.
pub fn seed() -> u64 {
    static SEED: spin::Once<u64> = spin::Once::new();
    *SEED.call_once(|| {
        let seed = crate::cmdline::options().seed.unwrap_or_else(|| {
            let mut r = ferrite_kcore::rng::XorShift64::new(crate::arch::cpu::rdtsc());
            r.next_u64() % 1_000_000_000
        });
        log::info!("test: seed={seed} (replay with seed={seed} on the command line)");
        seed
    })
}
