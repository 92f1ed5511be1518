//! The TSC from user mode (the kernel leaves `rdtsc` to programs): `lfence;
//! rdtsc` before a timed stretch and `rdtscp; lfence` after it, so nothing
//! before the first read and nothing after the second is timed; `lfence;
//! rdtsc` at both ends on a CPU without `rdtscp`.
use core::arch::asm;
use core::arch::x86_64::{__cpuid, _mm_lfence, _rdtsc};
use core::sync::atomic::{AtomicU8, Ordering};

use ferrite_kcore::bench::Clock;
use ferrite_user::sys;

use crate::Failure;

/// CPUID 8000_0001h EDX bit 27: `rdtscp`.
const CPUID_RDTSCP: u32 = 1 << 27;

/// Whether this CPU has `rdtscp`: unknown, no, yes.
static RDTSCP: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const NO: u8 = 1;
const YES: u8 = 2;

fn has_rdtscp() -> bool {
    match RDTSCP.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => {
            // CPUID exists on every x86-64 CPU, in any ring.
            let max = __cpuid(0x8000_0000).eax;
            let yes = max >= 0x8000_0001 && __cpuid(0x8000_0001).edx & CPUID_RDTSCP != 0;
            RDTSCP.store(if yes { YES } else { NO }, Ordering::Relaxed);
            yes
        }
    }
}

/// What the clock reads are, for the report.
pub fn kind() -> &'static str {
    if has_rdtscp() {
        "lfence;rdtsc / rdtscp;lfence"
    } else {
        "lfence;rdtsc"
    }
}

/// The TSC's frequency, from the kernel.
pub fn hz() -> Result<u64, Failure> {
    match sys::tsc_hz() {
        Ok(0) => Err(Failure::new(format_args!("the kernel does not know the TSC's frequency"))),
        Ok(hz) => Ok(hz),
        Err(e) => Err(Failure::new(format_args!("tsc_hz: {e:?}"))),
    }
}

/// The TSC at the start of a timed stretch.
pub fn start() -> u64 {
    // SAFETY: lfence and rdtsc have no memory effects.
    unsafe {
        _mm_lfence();
        _rdtsc()
    }
}

/// The TSC at the end of a timed stretch.
pub fn end() -> u64 {
    if !has_rdtscp() {
        return start();
    }
    let (low, high): (u32, u32);
    // SAFETY: rdtscp and lfence have no memory effects; rcx gets the TSC
    // auxiliary value, which is discarded.
    unsafe {
        asm!("rdtscp", "lfence", out("eax") low, out("edx") high, out("ecx") _, options(nomem, nostack, preserves_flags))
    };
    (u64::from(high) << 32) | u64::from(low)
}

/// [`start`] and [`end`] for ferrite_kcore::bench::measure.
pub struct Tsc;

impl Clock for Tsc {
    fn start(&self) -> u64 {
        start()
    }
    fn end(&self) -> u64 {
        end()
    }
}
