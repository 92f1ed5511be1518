//! Tests of traps, the local APIC timer and the command line.
use super::{Test, TestResult};
use crate::arch::{apic, cpu, trap};
use crate::ensure;

pub const TESTS: &[Test] = &[
    Test { name: "trap::breakpoint_returns", run: breakpoint_returns },
    Test { name: "trap::exception_names", run: exception_names },
    Test { name: "apic::timer_ticks", run: timer_ticks },
    Test { name: "apic::timer_rate_matches_tsc", run: timer_rate_matches_tsc },
    Test { name: "cmdline::parse", run: cmdline_parse },
];

fn breakpoint_returns() -> TestResult {
    let before = trap::breakpoints();
    // SAFETY: int3 traps to the breakpoint handler, which returns.
    unsafe { core::arch::asm!("int3") };
    ensure!(trap::breakpoints() == before + 1, "the breakpoint handler did not run exactly once");
    Ok(())
}

fn exception_names() -> TestResult {
    for v in 0..32u8 {
        let (mnemonic, name) = trap::exception_name(v);
        ensure!(mnemonic.starts_with('#') || v == 2, "vector {v} has no mnemonic");
        ensure!(!name.is_empty(), "vector {v} has no name");
    }
    ensure!(trap::exception_name(14).1 == "page fault", "vector 14 is not the page fault");
    Ok(())
}

/// Waits (with interrupts on) until `ticks` timer interrupts have arrived,
/// giving up after `limit_ns` of TSC time.
fn wait_ticks(ticks: u64, limit_ns: u64) -> Option<u64> {
    let start_ticks = apic::ticks();
    let start = cpu::rdtsc();
    let limit = limit_ns * crate::time::tsc_hz() / 1_000_000_000;
    while apic::ticks() - start_ticks < ticks {
        if cpu::rdtsc() - start > limit {
            return None;
        }
        x86_64::instructions::hlt();
    }
    Some(crate::time::tsc_to_ns(cpu::rdtsc() - start))
}

fn timer_ticks() -> TestResult {
    ensure!(x86_64::instructions::interrupts::are_enabled(), "interrupts are off");
    ensure!(wait_ticks(3, 5_000_000_000).is_some(), "fewer than 3 timer ticks in 5 s");
    Ok(())
}

/// The two calibrations agree: 20 ticks take about 20 tick periods of TSC
/// time. The bounds are loose (a busy host delays virtual interrupts), but
/// catch a calibration that is off by a factor.
fn timer_rate_matches_tsc() -> TestResult {
    ensure!(crate::time::tsc_hz() > 0 && apic::timer_hz() > 0, "a clock is not calibrated");
    let expected_ns = 20 * 1_000_000_000 / apic::TICK_HZ;
    let took = wait_ticks(20, 20 * expected_ns).ok_or("20 ticks did not arrive in 20x their period")?;
    ensure!(
        took >= expected_ns / 2,
        "20 ticks took {took} ns of TSC time, expected about {expected_ns}: calibration is off"
    );
    Ok(())
}

fn cmdline_parse() -> TestResult {
    use ferrite_kcore::cmdline::{parse, LogLevel};
    let mut problems = 0;
    let o = parse("log=debug  test=mem::x,apic bogus crash=overflow", |_| problems += 1);
    ensure!(o.log == LogLevel::Debug, "log level {:?}", o.log);
    ensure!(o.test == Some("mem::x,apic"), "test selector {:?}", o.test);
    ensure!(o.crash == Some("overflow"), "crash kind {:?}", o.crash);
    ensure!(problems == 1, "{problems} problems reported, expected 1 (bogus)");
    Ok(())
}
