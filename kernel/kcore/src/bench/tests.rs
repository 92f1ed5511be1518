use super::*;
use alloc::string::ToString;

#[test]
fn median_is_a_measured_value() {
    assert_eq!(median(&mut []), 0);
    assert_eq!(median(&mut [7]), 7);
    assert_eq!(median(&mut [9, 1, 5]), 5);
    // Even count: the lower middle, never an average of two.
    assert_eq!(median(&mut [4, 1, 3, 2]), 2);
    // Outliers (a batch an interrupt stretched) do not move it.
    assert_eq!(median(&mut [100, 101, 99, 1_000_000, 100]), 100);
}

#[test]
fn overhead_is_subtracted_per_batch() {
    let m = Measured::from_samples(&mut [1100, 1000, 1050], &mut [100, 90, 110], 10);
    // (1050 - 100) / 10 = 95 ticks = 95_000 milliticks.
    assert_eq!(m.milliticks_per_op(), 95_000);
    // At 1 GHz a tick is a nanosecond: 95.0 ns.
    assert_eq!(m.tenths_ns_per_op(1_000_000_000), 950);
    // At 2.5 GHz: 38.0 ns.
    assert_eq!(m.tenths_ns_per_op(2_500_000_000), 380);
}

#[test]
fn overhead_larger_than_the_work_gives_zero() {
    let m = Measured { batch_ticks: 50, overhead_ticks: 60, batch: 4 };
    assert_eq!(m.milliticks_per_op(), 0);
    let m = Measured { batch_ticks: 3, overhead_ticks: 0, batch: 0 };
    assert_eq!(m.milliticks_per_op(), 3000, "a zero batch counts as one");
}

#[test]
fn fractions_of_a_tick_survive() {
    // 1001 ticks over 1000 runs: 1.001 ticks each.
    let m = Measured { batch_ticks: 1001, overhead_ticks: 0, batch: 1000 };
    assert_eq!(m.milliticks_per_op(), 1001);
    // At 100 MHz a tick is 10 ns: 10.01 ns, printed as 10.0.
    assert_eq!(m.tenths_ns_per_op(100_000_000), 100);
}

#[test]
fn conversions() {
    assert_eq!(ticks_to_tenths_ns(3, 3_000_000_000), 10);
    assert_eq!(ticks_to_tenths_us(2_500_000, 2_500_000_000), 10_000);
    assert_eq!(ticks_to_tenths_ns(123, 0), 0, "an unknown clock gives 0, not a division by zero");
    assert_eq!(per_second(1000, 2_000_000_000, 1_000_000_000), 500);
    assert_eq!(per_second(1000, 0, 1_000_000_000), 0);
    // Huge values saturate instead of wrapping.
    assert_eq!(ticks_to_tenths_ns(u64::MAX, 1), u64::MAX);
}

#[test]
fn figures_print_as_one_line() {
    let f = |value| Figure { name: "null_syscall", value, unit: Unit::Nanoseconds }.to_string();
    assert_eq!(f(Value::Tenths(1234)), "bench null_syscall 123.4 ns");
    assert_eq!(f(Value::Tenths(5)), "bench null_syscall 0.5 ns");
    assert_eq!(f(Value::NotApplicable), "bench null_syscall n/a ns");
    let rate = Figure { name: "yield_throughput_4cpu", value: Value::Whole(987_654), unit: Unit::PerSecond };
    assert_eq!(rate.to_string(), "bench yield_throughput_4cpu 987654 per_s");
    let us = Figure { name: "ap_bringup", value: Value::Tenths(105), unit: Unit::Microseconds };
    assert_eq!(us.to_string(), "bench ap_bringup 10.5 us");
}

#[test]
fn total_runs() {
    assert_eq!(Plan { warmup: 10, samples: 3, batch: 100 }.total_runs(), 310);
}

/// A clock that advances by one tick per read, and by `cost` per run of the
/// operation under test.
struct FakeClock {
    now: core::cell::Cell<u64>,
}

impl Clock for FakeClock {
    fn start(&self) -> u64 {
        self.now.set(self.now.get() + 1);
        self.now.get()
    }
    fn end(&self) -> u64 {
        self.start()
    }
}

#[test]
fn measure_runs_the_plan_and_subtracts_the_clock() {
    let clock = FakeClock { now: core::cell::Cell::new(0) };
    let mut runs = 0;
    let plan = Plan { warmup: 5, samples: 7, batch: 10 };
    let m = measure(&plan, &clock, || {
        runs += 1;
        // Each run costs 3 ticks.
        clock.now.set(clock.now.get() + 3);
    });
    assert_eq!(runs as u64, plan.total_runs());
    // A batch: 30 ticks of work plus one tick for the end read; an empty
    // batch: the one tick alone.
    assert_eq!((m.batch_ticks, m.overhead_ticks), (31, 1));
    assert_eq!(m.milliticks_per_op(), 3000);
}
