//! Hostile programs: the kernel's `hostile` suite (`test=hostile`,
//! userland's `utest` cases that attack the kernel) on 1, 4 and 8 CPUs
//! under SeaBIOS and OVMF. Each case fails on the kernel before the fix it
//! guards; see `kernel/src/ktest/hostile.rs`.

use ferrite_tests::{check_all_tests_passed, Boot, Firmware, Machine, Status};

/// The suite's cases; every boot must run them all.
const CASES: usize = 17;

/// Lines the suite's fault cases must leave in the log.
const EXPECTED_LINES: &[&str] = &["killed: #MF x87 floating-point error at rip"];

fn hostile_suite(name: &str, firmware: Firmware, smp: u32) {
    let outcome = Boot::new(name)
        .firmware(firmware)
        .machine(Machine::Q35)
        .mem("512M")
        .cpu("max")
        .smp(smp)
        .cmdline("test=hostile")
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
