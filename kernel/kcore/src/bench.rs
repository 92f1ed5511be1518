//! Benchmark arithmetic, shared by the kernel and user programs: how a run
//! of timed batches becomes one figure, and how a figure is printed.
//!
//! **Method.** An operation is timed in batches of `batch` back-to-back
//! runs, after `warmup` untimed ones, `samples` times over; the same loop
//! with nothing in it is timed the same way. A figure is the median batch
//! minus the median empty batch, divided by the batch size: the median
//! shrugs off the batches an interrupt or the host's scheduler stretched,
//! and the subtraction removes the loop and the clock reads themselves.
//! Times are TSC ticks until the end, then converted with the TSC's
//! frequency, in integer arithmetic (the kernel has no floating point).
//!
//! **Output.** One line per figure, exactly `bench <name> <value> <unit>`,
//! with the value in decimal (one decimal place for times, whole numbers
//! for rates), or `n/a` for a figure that cannot exist on this machine (a
//! cross-CPU figure on one CPU).

use alloc::vec::Vec;
use core::fmt;

#[cfg(test)]
mod tests;

/// A clock to time batches with: the TSC, read with the ordering the
/// kernel and user programs each know how to get (`lfence; rdtsc` before,
/// `rdtscp; lfence` after).
pub trait Clock {
    /// The time at which a batch starts: no earlier instruction may be
    /// timed with it.
    fn start(&self) -> u64;
    /// The time at which a batch ends: every instruction of the batch done.
    fn end(&self) -> u64;
}

/// Times `op` as `plan` says (see the module doc) and returns the medians.
pub fn measure(plan: &Plan, clock: &impl Clock, mut op: impl FnMut()) -> Measured {
    for _ in 0..plan.warmup {
        op();
    }
    let samples = plan.samples as usize;
    let (mut batches, mut empty) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..plan.samples {
        // Interleaved, so that whatever slows one kind down slows the other.
        let start = clock.start();
        for _ in 0..plan.batch {
            op();
        }
        batches.push(clock.end().wrapping_sub(start));
        let start = clock.start();
        for i in 0..plan.batch {
            core::hint::black_box(i);
        }
        empty.push(clock.end().wrapping_sub(start));
    }
    Measured::from_samples(&mut batches, &mut empty, plan.batch)
}

/// How many times to run an operation, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Untimed runs first (caches, TLB, branch predictors, lazy setup).
    pub warmup: u32,
    /// Timed batches.
    pub samples: u32,
    /// Runs per batch: enough that the clock reads are small beside them.
    pub batch: u32,
}

impl Plan {
    /// Every run, warm-up included.
    pub fn total_runs(&self) -> u64 {
        u64::from(self.warmup) + u64::from(self.samples) * u64::from(self.batch)
    }
}

/// The median of `values`, which it sorts: the lower of the two middle
/// values for an even count (so it is always a value that was measured),
/// and 0 for none.
pub fn median(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// A measured operation: median ticks of a batch, median ticks of an empty
/// batch, and the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// The median batch, in ticks.
    pub batch_ticks: u64,
    /// The median empty batch (the loop and the clock reads), in ticks.
    pub overhead_ticks: u64,
    /// Runs per batch.
    pub batch: u32,
}

impl Measured {
    /// From the batch and empty-batch samples (both sorted in place).
    pub fn from_samples(batches: &mut [u64], empty: &mut [u64], batch: u32) -> Self {
        Measured { batch_ticks: median(batches), overhead_ticks: median(empty), batch }
    }

    /// Ticks per operation in thousandths, the overhead subtracted (never
    /// below zero).
    pub fn milliticks_per_op(&self) -> u64 {
        let net = self.batch_ticks.saturating_sub(self.overhead_ticks);
        let per_op = u128::from(net) * 1000 / u128::from(self.batch.max(1));
        u64::try_from(per_op).unwrap_or(u64::MAX)
    }

    /// Nanoseconds per operation, in tenths, for a TSC of `tsc_hz` (0:
    /// unknown, gives 0).
    pub fn tenths_ns_per_op(&self, tsc_hz: u64) -> u64 {
        milliticks_to_tenths(self.milliticks_per_op(), tsc_hz, NS_PER_S)
    }
}

const NS_PER_S: u64 = 1_000_000_000;
const US_PER_S: u64 = 1_000_000;

/// Thousandths of a tick of a `tsc_hz` clock, in tenths of a unit of which
/// there are `units_per_second` in a second (0 if the clock is unknown).
fn milliticks_to_tenths(milliticks: u64, tsc_hz: u64, units_per_second: u64) -> u64 {
    if tsc_hz == 0 {
        return 0;
    }
    let tenths = u128::from(milliticks) * u128::from(units_per_second) * 10 / (1000 * u128::from(tsc_hz));
    u64::try_from(tenths).unwrap_or(u64::MAX)
}

/// Ticks of a `tsc_hz` clock in tenths of a nanosecond.
pub fn ticks_to_tenths_ns(ticks: u64, tsc_hz: u64) -> u64 {
    milliticks_to_tenths(ticks.saturating_mul(1000), tsc_hz, NS_PER_S)
}

/// Ticks of a `tsc_hz` clock in tenths of a microsecond.
pub fn ticks_to_tenths_us(ticks: u64, tsc_hz: u64) -> u64 {
    milliticks_to_tenths(ticks.saturating_mul(1000), tsc_hz, US_PER_S)
}

/// `count` events in `ticks` of a `tsc_hz` clock, per second (0 if no time
/// passed).
pub fn per_second(count: u64, ticks: u64, tsc_hz: u64) -> u64 {
    if ticks == 0 {
        return 0;
    }
    let rate = u128::from(count) * u128::from(tsc_hz) / u128::from(ticks);
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// The unit of a figure, as printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `ns`.
    Nanoseconds,
    /// `us`.
    Microseconds,
    /// `per_s`: a rate.
    PerSecond,
}

impl Unit {
    /// As printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Nanoseconds => "ns",
            Unit::Microseconds => "us",
            Unit::PerSecond => "per_s",
        }
    }
}

/// The value of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A time, in tenths of its unit.
    Tenths(u64),
    /// A whole number (a rate).
    Whole(u64),
    /// The figure does not exist on this machine.
    NotApplicable,
}

/// One figure: `bench <name> <value> <unit>` when displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure<'a> {
    /// What was measured, e.g. `null_syscall`.
    pub name: &'a str,
    /// How much.
    pub value: Value,
    /// Of what.
    pub unit: Unit,
}

impl fmt::Display for Figure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bench {} ", self.name)?;
        match self.value {
            Value::Tenths(t) => write!(f, "{}.{}", t / 10, t % 10)?,
            Value::Whole(n) => write!(f, "{n}")?,
            Value::NotApplicable => f.write_str("n/a")?,
        }
        write!(f, " {}", self.unit.as_str())
    }
}
