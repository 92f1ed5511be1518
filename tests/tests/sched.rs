//! The scheduler's stress suite (`test=sched`: the unit tests of `sched::`
//! and the seeded `sched::stress::` tests) on 1, 2, 4 and 8 CPUs and on a
//! topology with gaps in the APIC IDs, two seeds each. The `test=all` boots
//! of smp.rs and boot.rs run the same suite once more with a seed the
//! kernel draws itself.
//!
//! Each boot gets a fresh seed, different from run to run so that the
//! suite covers more schedules over time; it is in the boot's command line,
//! in the failure report and in the log. To replay a failure, set
//! `FERRITE_SEED=<n>` (every boot here then uses that seed), or boot the
//! kernel with `seed=<n>` yourself.
//!
//! Besides every test passing, each boot must print a `sched: cpu<N>` line
//! for every CPU, each with `switches=` above zero: work ran everywhere.

use ferrite_tests::{check_all_tests_passed, Boot, Firmware, Machine, Outcome, Status};
use std::time::{SystemTime, UNIX_EPOCH};

/// The seed for one boot: `FERRITE_SEED` if set, otherwise one drawn from
/// the clock and the boot's name.
fn seed_for(name: &str) -> u64 {
    if let Ok(s) = std::env::var("FERRITE_SEED") {
        return s.trim().parse().unwrap_or_else(|_| panic!("FERRITE_SEED={s:?} is not a decimal number"));
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x =
        nanos ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    // splitmix64's finaliser, then into the kernel's accepted range.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % 1_000_000_000
}

/// Boots `test=sched` with `-smp smp`, expecting `cpus` CPUs online, and
/// checks the suite and the per-CPU statistics.
fn stress(name: &str, smp: &str, cpus: u32) {
    let seed = seed_for(name);
    eprintln!("{name}: seed={seed} (replay with FERRITE_SEED={seed})");
    let outcome = Boot::new(name)
        .firmware(Firmware::Bios)
        .machine(Machine::Q35)
        .mem("512M")
        .cpu("max")
        .smp(smp)
        .cmdline(&format!("test=sched seed={seed}"))
        .run();
    let mut problems = Vec::new();
    if outcome.status != Status::Success {
        problems.push(format!("expected status Success, got {:?}", outcome.status));
    }
    if let Err(e) = check_all_tests_passed(&outcome.log) {
        problems.push(e);
    }
    if !outcome.log.contains(&format!("seed={seed}")) {
        problems.push(format!("the kernel did not log seed={seed}"));
    }
    problems.extend(stats_problems(&outcome, cpus));
    match problems.as_slice() {
        [] => {}
        many => outcome.fail(&format!("seed {seed}: {}", many.join("; "))),
    }
}

/// What is wrong with the `sched: cpu<N> … switches=<n>` lines: one per
/// CPU `0..cpus`, each with work done.
fn stats_problems(outcome: &Outcome, cpus: u32) -> Vec<String> {
    let mut problems = Vec::new();
    for cpu in 0..cpus {
        let prefix = format!("sched: cpu{cpu} ");
        let Some(line) = outcome.lines().find(|l| l.contains(&prefix)) else {
            problems.push(format!("no `{}` line", prefix.trim_end()));
            continue;
        };
        let switches =
            line.split_whitespace().find_map(|w| w.strip_prefix("switches=")).and_then(|n| n.parse::<u64>().ok());
        match switches {
            Some(n) if n > 0 => {}
            Some(_) => problems.push(format!("cpu{cpu} did no work: {line:?}")),
            None => problems.push(format!("no switches=<n> in {line:?}")),
        }
    }
    problems
}

macro_rules! stress_tests {
    ($($name:ident: $smp:expr, $cpus:expr;)*) => {
        $(
            #[test]
            fn $name() {
                stress(stringify!($name), $smp, $cpus);
            }
        )*
    };
}

stress_tests! {
    sched_smp_1_a: "1", 1;
    sched_smp_1_b: "1", 1;
    sched_smp_2_a: "2", 2;
    sched_smp_2_b: "2", 2;
    sched_smp_4_a: "4", 4;
    sched_smp_4_b: "4", 4;
    sched_smp_8_a: "8", 8;
    sched_smp_8_b: "8", 8;
    // IDs 0-5 and 8-13 (see smp.rs): CPU indices are not APIC IDs.
    sched_topology_with_gaps_a: "sockets=2,cores=3,threads=2", 12;
    sched_topology_with_gaps_b: "sockets=2,cores=3,threads=2", 12;
}
