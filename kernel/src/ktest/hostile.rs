//! The hostile-programs suite (`test=hostile`): what a user program that
//! lies, races, exhausts or never returns can do to the kernel and to
//! other processes. Each case runs `utest <case>` (userland's
//! `utest/hostile` cases) like the user suite, and where a program cannot
//! see the harm from the inside (a leak, the kernel's own state) the
//! kernel checks it here.
use super::user::{run_case, run_leak_checked};
use super::{Test, TestResult};
use crate::mem::frames;
use alloc::format;

pub const TESTS: &[Test] = &[
    Test { name: "hostile::kill_race", run: kill_race },
    Test { name: "hostile::ipc_leak", run: ipc_leak },
    Test { name: "hostile::rights_endpoint", run: rights_endpoint },
    Test { name: "hostile::rights_badge", run: rights_badge },
    Test { name: "hostile::rights_notification", run: rights_notification },
    Test { name: "hostile::dead_endpoint", run: dead_endpoint },
    Test { name: "hostile::abi_edges", run: abi_edges },
    Test { name: "hostile::heap_exhaust", run: heap_exhaust },
    Test { name: "hostile::concurrent_maps", run: concurrent_maps },
    Test { name: "hostile::quotas", run: quotas },
    Test { name: "hostile::unjoined_threads", run: unjoined_threads },
];

/// Cases that must exit 0, run as they are.
macro_rules! passing_cases {
    ($($name:ident),* $(,)?) => {
        $(fn $name() -> TestResult { run_case(stringify!($name), 0) })*
    };
}

passing_cases!(rights_endpoint, rights_badge, rights_notification, dead_endpoint, abi_edges, quotas, unjoined_threads);

/// A thousand children killed while their threads are on their way into
/// and out of every blocking call: every wait returns.
fn kill_race() -> TestResult {
    run_case(&format!("kill_race seed={}", super::seed()), 0)
}

/// Children that end with threads blocked in IPC on handles their parent
/// passed them give everything back.
fn ipc_leak() -> TestResult {
    run_leak_checked("ipc_leak", 0)
}

/// Runs `command` checked by `run` and then checks that the free frames
/// never went below half the kernel's reserve meanwhile: programs may not
/// take it, and the kernel's own needs in the meantime are small.
fn reserve_kept(run: impl FnOnce() -> TestResult) -> TestResult {
    frames::reset_low_water();
    run()?;
    let low = frames::low_water();
    log::info!("hostile: the fewest free frames meanwhile: {low} (reserve {})", frames::KERNEL_RESERVE);
    crate::ensure!(
        low >= frames::KERNEL_RESERVE / 2,
        "free frames went down to {low}, below half the kernel's reserve of {}",
        frames::KERNEL_RESERVE
    );
    Ok(())
}

/// Dozens of processes fill their handle tables while user memory is at
/// the reserve: every one gets NoMemory, the kernel does not panic, the
/// reserve stays, and everything comes back.
fn heap_exhaust() -> TestResult {
    reserve_kept(|| run_leak_checked("heap_exhaust", 0))
}

/// `map`s on every CPU at once, sized to what is left: the reserve stays.
fn concurrent_maps() -> TestResult {
    reserve_kept(|| run_case("concurrent_maps", 0))
}
