//! The benchmark suite (`bench` on the command line, `make bench`) runs to
//! its end and prints every figure as one well-formed line,
//! `bench <name> <value> <unit>`. How fast anything is, is not checked here:
//! this machine is shared and TCG's timing is noisy (the figures are
//! `make bench`'s business, and the README's).

use ferrite_tests::{user_line, Boot, Outcome, Status};

/// The figures every run prints, with their units, and whether they need a
/// second CPU (on one CPU they must read `n/a`).
const FIGURES: &[(&str, &str, bool)] = &[
    ("null_syscall", "ns", false),
    ("ipc_same_cpu", "ns", false),
    ("ipc_same_cpu_threads", "ns", false),
    ("ipc_cross_cpu", "ns", true),
    ("context_switch", "ns", false),
    ("thread_spawn_join", "ns", false),
    ("ipi_roundtrip", "ns", true),
    ("wakeup_cross_cpu", "ns", true),
    ("tlb_shootdown", "ns", false),
    ("ap_bringup", "us", true),
    ("boot_to_init", "us", false),
    ("irq_off_max", "us", false),
];

/// `bench <name> <value> <unit>`, split.
fn parse(line: &str) -> Option<(&str, &str, &str)> {
    let mut words = line.split(' ');
    let (tag, name, value, unit) = (words.next()?, words.next()?, words.next()?, words.next()?);
    (tag == "bench" && words.next().is_none()).then_some((name, value, unit))
}

/// A value as printed: `n/a`, a whole number, or one with one decimal.
fn well_formed(value: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match value.split_once('.') {
        None => digits(value),
        Some((whole, tenths)) => digits(whole) && tenths.len() == 1 && digits(tenths),
    }
}

fn problems(outcome: &Outcome, cpus: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.status != Status::Success {
        problems.push(format!("expected status Success, got {:?}", outcome.status));
    }
    // The kernel's own figures, and ubench's (user output, marked).
    let lines: Vec<&str> =
        outcome.lines().map(|l| user_line(l).map_or(l, |(_, text)| text)).filter(|l| l.starts_with("bench ")).collect();
    let mut expected: Vec<(String, &str, bool)> =
        FIGURES.iter().map(|&(name, unit, cross)| (name.to_owned(), unit, cross && cpus < 2)).collect();
    let mut n = 1;
    while n <= cpus {
        expected.push((format!("yield_throughput_{n}cpu"), "per_s", false));
        n *= 2;
    }
    for line in &lines {
        match parse(line) {
            None => problems.push(format!("malformed line {line:?}")),
            Some((name, _, _)) if !expected.iter().any(|(e, _, _)| e == name) => {
                problems.push(format!("unexpected figure {line:?}"))
            }
            Some(_) => {}
        }
    }
    for (name, unit, not_applicable) in &expected {
        let found: Vec<_> = lines.iter().filter_map(|l| parse(l)).filter(|(n, _, _)| n == name).collect();
        match found.as_slice() {
            [] => problems.push(format!("no `bench {name} …` line")),
            [(_, value, u)] => {
                if u != unit {
                    problems.push(format!("{name} is in {u}, expected {unit}"));
                }
                match (*not_applicable, *value) {
                    (true, "n/a") => {}
                    (true, v) => problems.push(format!("{name} = {v} on {cpus} CPU, expected n/a")),
                    (false, v) if !well_formed(v) => problems.push(format!("{name} = {v:?} is not a number")),
                    (false, _) => {}
                }
            }
            more => problems.push(format!("{} lines for {name}", more.len())),
        }
    }
    problems
}

fn bench(name: &str, cpus: u32) {
    let outcome = Boot::new(name).smp(cpus).cmdline("bench").run();
    let problems = problems(&outcome, cpus);
    if !problems.is_empty() {
        outcome.fail(&format!("{} problems:\n- {}", problems.len(), problems.join("\n- ")));
    }
}

#[test]
fn bench_smp_1() {
    bench("bench_smp_1", 1);
}

#[test]
fn bench_smp_4() {
    bench("bench_smp_4", 4);
}

#[test]
fn values_are_checked() {
    assert!(well_formed("12.5") && well_formed("0.0") && well_formed("1234"));
    for bad in ["", ".5", "1.", "1.23", "-1", "1e3", "n/a", "12,5"] {
        assert!(!well_formed(bad), "{bad:?}");
    }
    assert_eq!(parse("bench x 1.0 ns"), Some(("x", "1.0", "ns")));
    assert_eq!(parse("bench x 1.0 ns extra"), None);
    assert_eq!(parse("bench x 1.0"), None);
}
