//! Time since boot, from the TSC once the APIC code has calibrated it.
use crate::arch::cpu::rdtsc;
use core::sync::atomic::{AtomicU64, Ordering};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Records the kernel's first moment (the TSC that boot.S read at its entry);
/// called first thing in kernel_main.
pub fn mark_boot(entry_tsc: u64) {
    BOOT_TSC.store(entry_tsc, Ordering::Relaxed);
}

/// The TSC at the kernel's first instructions.
pub fn boot_tsc() -> u64 {
    BOOT_TSC.load(Ordering::Relaxed)
}

/// Where the TSC's rate came from (for the log and `make bench`).
static TSC_SOURCE: spin::Once<&'static str> = spin::Once::new();

/// Sets the TSC's rate, once, saying where it came from.
pub fn set_tsc_hz(hz: u64, source: &'static str) {
    TSC_SOURCE.call_once(|| source);
    TSC_HZ.store(hz, Ordering::Relaxed);
}

/// Where the TSC's rate came from: a CPUID leaf, "measured against" a
/// clock, or a guess.
pub fn tsc_source() -> &'static str {
    TSC_SOURCE.get().copied().unwrap_or("not known yet")
}

/// TSC ticks per second, or 0 before calibration.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts a TSC interval to nanoseconds (0 before calibration).
pub fn tsc_to_ns(ticks: u64) -> u64 {
    match tsc_hz() {
        0 => 0,
        hz => (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64,
    }
}

pub fn uptime_ns() -> u64 {
    tsc_to_ns(rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

pub fn uptime_us() -> u64 {
    uptime_ns() / 1000
}

/// Spins for `ns` nanoseconds of TSC time (the SMP bring-up delays).
pub fn spin_ns(ns: u64) {
    let ticks = (u128::from(ns) * u128::from(tsc_hz()) / 1_000_000_000) as u64;
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}
