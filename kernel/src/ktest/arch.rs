//! Tests of traps, the local APIC timer and the command line.
use super::{Test, TestResult};
use crate::arch::{apic, cpu, trap};
use crate::ensure;

pub const TESTS: &[Test] = &[
    Test { name: "trap::breakpoint_returns", run: breakpoint_returns },
    Test { name: "trap::exception_names", run: exception_names },
    Test { name: "apic::timer_ticks", run: timer_ticks },
    Test { name: "apic::timer_counts_at_calibrated_rate", run: timer_counts_at_calibrated_rate },
    Test { name: "cmdline::parse", run: cmdline_parse },
    Test { name: "ioapic::inputs_masked", run: ioapic_inputs_masked },
    Test { name: "ioapic::routes_rtc", run: ioapic_routes_rtc },
];

/// Every I/O APIC input is masked: nothing is routed yet (the user-space
/// drivers will route what they own), whatever the firmware left.
fn ioapic_inputs_masked() -> TestResult {
    let ranges = crate::arch::ioapic::gsi_ranges();
    ensure!(!ranges.is_empty(), "no I/O APIC in use");
    for (base, count) in ranges {
        for gsi in base..base + count {
            let (low, _) = crate::arch::ioapic::entry(gsi).map_err(|e| alloc::format!("GSI {gsi}: {e:?}"))?;
            ensure!(low & 1 << 16 != 0, "GSI {gsi} is unmasked: {low:#x}");
        }
    }
    Ok(())
}

/// The RTC's periodic interrupt (ISA IRQ 8, on every PC), routed through
/// the I/O APIC to this CPU, arrives; masked again afterwards.
fn ioapic_routes_rtc() -> TestResult {
    use crate::arch::ioapic;
    use x86_64::instructions::port::Port;
    const RTC_IRQ: u8 = 8;
    const STATUS_B: u8 = 0x0b;
    const STATUS_C: u8 = 0x0c;
    const PERIODIC: u8 = 1 << 6;
    // CMOS index and data ports; index bit 7 clear keeps NMIs enabled.
    let read = |reg: u8| -> u8 {
        // SAFETY: the RTC's index and data ports; nothing else in the
        // kernel uses the RTC.
        unsafe {
            Port::<u8>::new(0x70).write(reg);
            Port::<u8>::new(0x71).read()
        }
    };
    let write = |reg: u8, value: u8| {
        // SAFETY: as above.
        unsafe {
            Port::<u8>::new(0x70).write(reg);
            Port::<u8>::new(0x71).write(value);
        }
    };
    let before = ioapic::isa_count(RTC_IRQ);
    // Reading C clears what is pending, so that the line can rise again.
    read(STATUS_C);
    let gsi = ioapic::route_isa(RTC_IRQ, apic::id()).map_err(|e| alloc::format!("routing IRQ 8: {e:?}"))?;
    let b = read(STATUS_B);
    write(STATUS_B, b | PERIODIC);
    let start = cpu::rdtsc();
    while ioapic::isa_count(RTC_IRQ) == before && crate::time::tsc_to_ns(cpu::rdtsc().wrapping_sub(start)) < 500_000_000
    {
        core::hint::spin_loop();
    }
    write(STATUS_B, b & !PERIODIC);
    read(STATUS_C);
    let masked = ioapic::mask_isa(RTC_IRQ);
    let got = ioapic::isa_count(RTC_IRQ) - before;
    ensure!(got > 0, "no RTC interrupt arrived on GSI {gsi} in 500 ms");
    ensure!(masked.is_ok(), "masking IRQ 8: {masked:?}");
    let (low, _) = ioapic::entry(gsi).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(low & 1 << 16 != 0, "GSI {gsi} is still unmasked after the test: {low:#x}");
    Ok(())
}

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

/// Waits (with interrupts on) until `ticks` timer interrupts have arrived;
/// false if `limit_ns` of TSC time passed first.
fn wait_ticks(ticks: u64, limit_ns: u64) -> bool {
    let start_ticks = apic::ticks();
    let start = cpu::rdtsc();
    let limit = limit_ns * crate::time::tsc_hz() / 1_000_000_000;
    while apic::ticks() - start_ticks < ticks {
        if cpu::rdtsc() - start > limit {
            return false;
        }
        x86_64::instructions::hlt();
    }
    true
}

fn timer_ticks() -> TestResult {
    ensure!(x86_64::instructions::interrupts::are_enabled(), "interrupts are off");
    ensure!(wait_ticks(3, 5_000_000_000), "fewer than 3 timer ticks in 5 s");
    Ok(())
}

/// The two calibrations agree: the APIC timer's count register, read
/// against the TSC over a few short windows, falls at the rate measured at
/// boot. This reads two clocks and counts no interrupts, so a busy host
/// that delays this virtual CPU cannot skew it, while a calibration off by
/// a factor fails.
fn timer_counts_at_calibrated_rate() -> TestResult {
    let calibrated = apic::timer_hz();
    ensure!(crate::time::tsc_hz() > 0 && calibrated > 0, "a clock is not calibrated");
    if cpu::features().tsc_deadline {
        // The count register is unused in TSC-deadline mode; the ticks test
        // covers that timer.
        return Ok(());
    }
    let window = 2_500_000;
    let mut rates = alloc::vec::Vec::new();
    for _ in 0..5 {
        rates.push(apic::measure_timer_hz(window).ok_or("the timer count could not be read")?);
    }
    // The measurement borrowed the timer; give it back to the scheduler.
    x86_64::instructions::interrupts::without_interrupts(crate::sched::reset_timer);
    rates.sort_unstable();
    let median = rates[rates.len() / 2];
    ensure!(
        median >= calibrated * 9 / 10 && median <= calibrated * 11 / 10,
        "the APIC timer counts at {median} Hz, calibrated {calibrated} Hz (samples {rates:?})"
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
