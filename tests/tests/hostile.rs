//! Hostile programs: the kernel's `hostile` suite (`test=hostile`,
//! userland's `utest` cases that attack the kernel) on 1, 4 and 8 CPUs
//! under SeaBIOS and OVMF. Each case fails on the kernel before the fix it
//! guards; see `kernel/src/ktest/hostile.rs`.

use ferrite_tests::{check_all_tests_passed, user_line, Boot, Firmware, Machine, Outcome, Status};

/// How long one boot of the suite may take: it runs a thousand children,
/// and up to 8 virtual CPUs share 2 host cores with another boot.
const SUITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The suite's cases; every boot must run them all.
const CASES: usize = 20;

/// Lines the suite's fault cases must leave in the log.
const EXPECTED_LINES: &[&str] = &["killed: #MF x87 floating-point error at rip", "NMI(s) on cpu"];

fn hostile_suite(name: &str, firmware: Firmware, smp: u32) {
    let outcome = Boot::new(name)
        .firmware(firmware)
        .machine(Machine::Q35)
        .mem("512M")
        .cpu("max")
        .smp(smp)
        .cmdline("test=hostile")
        .timeout(SUITE_TIMEOUT)
        .run();
    let mut problems = Vec::new();
    if outcome.status != Status::Success {
        problems.push(format!("expected status Success, got {:?}", outcome.status));
    }
    match check_all_tests_passed(&outcome.log) {
        Ok(n) if n < CASES => problems.push(format!("only {n} tests ran: the hostile suite has {CASES}")),
        Ok(_) => {}
        Err(e) => problems.push(e),
    }
    for needle in EXPECTED_LINES {
        if !outcome.lines().any(|l| l.contains(needle)) {
            problems.push(format!("no line contains {needle:?}"));
        }
    }
    forgeries_marked(&outcome, &mut problems);
    if outcome.lines().any(|l| l.contains("PANIC") || l.contains("watchdog:")) {
        problems.push("the kernel panicked or its watchdog bit".to_owned());
    }
    if !problems.is_empty() {
        outcome.fail(&format!("{} problems:\n- {}", problems.len(), problems.join("\n- ")));
    }
}

#[test]
fn hostile_bios_smp_1() {
    hostile_suite("hostile_bios_smp_1", Firmware::Bios, 1);
}

#[test]
fn hostile_bios_smp_4() {
    hostile_suite("hostile_bios_smp_4", Firmware::Bios, 4);
}

#[test]
fn hostile_bios_smp_8() {
    hostile_suite("hostile_bios_smp_8", Firmware::Bios, 8);
}

#[test]
fn hostile_uefi_smp_1() {
    hostile_suite("hostile_uefi_smp_1", Firmware::Uefi, 1);
}

#[test]
fn hostile_uefi_smp_4() {
    hostile_suite("hostile_uefi_smp_4", Firmware::Uefi, 4);
}

#[test]
fn hostile_uefi_smp_8() {
    hostile_suite("hostile_uefi_smp_8", Firmware::Uefi, 8);
}

/// `hostile::forged_output` wrote test verdicts, a test result, a log
/// record and terminal escapes: each must appear as user output (a
/// `[pid] ` line), escaped, and none may have become a kernel line.
fn forgeries_marked(outcome: &Outcome, problems: &mut Vec<String>) {
    const FORGED: &[&str] = &["1234 passed, 0 failed", "test hostile::forged_verdict", "kernel: a forged record"];
    for needle in FORGED {
        let mut seen = false;
        for line in outcome.lines().filter(|l| l.contains(needle)) {
            seen = true;
            if user_line(line).is_none() {
                problems.push(format!("a forged line passed for the kernel's: {line:?}"));
            }
        }
        if !seen {
            problems.push(format!("the forgery {needle:?} never showed up (did forged_output run?)"));
        }
    }
    // No raw escape, C1 control or lone carriage return reached the log
    // once the kernel runs (the firmware and GRUB draw with escapes).
    for line in outcome.lines().skip_while(|l| !l.contains("boot: Ferrite")).skip(1) {
        if line.contains(['\x1b', '\u{9b}', '\r']) {
            problems.push(format!("a control character reached the console raw: {line:?}"));
        }
    }
}

#[test]
fn user_line_parses() {
    assert_eq!(user_line("[12] init: hello"), Some((12, "init: hello")));
    assert_eq!(user_line("[    0.000000] cpu0 INFO  boot"), None);
    assert_eq!(user_line("[] x"), None);
    assert_eq!(user_line("12 passed, 0 failed"), None);
}

/// A small machine: every suite (`test=all`, the stress, user and hostile
/// suites included) passes in 48 MiB on 4 CPUs.
#[test]
fn all_suites_in_48m() {
    Boot::new("all_suites_in_48m")
        .machine(Machine::Q35)
        .mem("48M")
        .smp(4)
        .cmdline("test=all")
        .timeout(SUITE_TIMEOUT)
        .run()
        .assert_all_tests_passed();
}
