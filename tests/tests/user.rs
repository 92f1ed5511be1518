//! User mode: the kernel's `user` suite (`test=user`, userland's `utest`
//! driven case by case) on 1, 4 and 8 CPUs under SeaBIOS and OVMF, and a
//! normal boot in which init must run on every CPU.
//!
//! Besides every test passing, a `test=user` boot must log what a user
//! cannot see from the inside: one line per killed process naming it, the
//! fault and the address, and one line per refused boot module saying why.

use ferrite_tests::{check_all_tests_passed, Boot, Firmware, Machine, Outcome, Status};

/// Lines the `user` suite's fault cases and module checks must leave in the
/// log (each a part of one line).
const EXPECTED_LINES: &[&str] = &[
    "killed: #PF page fault at address 0x0 (not present, read, user)",
    "killed: #UD invalid opcode at rip",
    "killed: #GP general protection fault at rip",
    "killed: #DE divide error at rip",
    "(protection violation, write, user)",
    "(protection violation, instruction fetch, user)",
    "user: module 'notelf' refused: image is not an ELF file (bad magic)",
    "user: module 'truncated' refused: program header table lies outside the file",
];

fn user_suite(name: &str, firmware: Firmware, smp: u32) {
    let outcome = Boot::new(name)
        .firmware(firmware)
        .machine(Machine::Q35)
        .mem("512M")
        .cpu("max")
        .smp(smp)
        .cmdline("test=user")
        .run();
    let mut problems = Vec::new();
    if outcome.status != Status::Success {
        problems.push(format!("expected status Success, got {:?}", outcome.status));
    }
    match check_all_tests_passed(&outcome.log) {
        Ok(n) if n < 30 => problems.push(format!("only {n} tests ran: the user suite has more")),
        Ok(_) => {}
        Err(e) => problems.push(e),
    }
    for needle in EXPECTED_LINES {
        if !outcome.lines().any(|l| l.contains(needle)) {
            problems.push(format!("no line contains {needle:?}"));
        }
    }
    // Every kill names a process and a pid.
    for line in outcome.lines().filter(|l| l.contains(" killed: ")) {
        if !line.contains("user: process 'utest' (pid ") {
            problems.push(format!("a kill line does not name the process: {line:?}"));
        }
    }
    fail_if_any(&outcome, &problems);
}

fn fail_if_any(outcome: &Outcome, problems: &[String]) {
    match problems {
        [] => {}
        many => outcome.fail(&format!("{} problems:\n- {}", many.len(), many.join("\n- "))),
    }
}

#[test]
fn user_bios_smp_1() {
    user_suite("user_bios_smp_1", Firmware::Bios, 1);
}

#[test]
fn user_bios_smp_4() {
    user_suite("user_bios_smp_4", Firmware::Bios, 4);
}

#[test]
fn user_bios_smp_8() {
    user_suite("user_bios_smp_8", Firmware::Bios, 8);
}

#[test]
fn user_uefi_smp_1() {
    user_suite("user_uefi_smp_1", Firmware::Uefi, 1);
}

#[test]
fn user_uefi_smp_4() {
    user_suite("user_uefi_smp_4", Firmware::Uefi, 4);
}

#[test]
fn user_uefi_smp_8() {
    user_suite("user_uefi_smp_8", Firmware::Uefi, 8);
}

/// A normal boot: init reports the CPU count, one line per CPU with the
/// calls it made and answered, and the total; then it idles (the boot is
/// stopped once the total appears).
fn init_runs(name: &str, smp: u32) {
    let outcome = Boot::new(name).smp(smp).run_until("IPC round trips across");
    let mut problems = Vec::new();
    if outcome.status != Status::PatternFound {
        problems.push(format!("init never reported its IPC round trips (status {:?})", outcome.status));
    }
    let running = format!("init: running on {smp} CPUs");
    if !outcome.user_lines().any(|(_, l)| l == running) {
        problems.push(format!("no line {running:?}"));
    }
    for cpu in 0..smp {
        let to = (cpu + 1) % smp;
        let prefix = format!("init: cpu{cpu} made ");
        match outcome.user_lines().map(|(_, l)| l).find(|l| l.starts_with(&prefix)) {
            None => problems.push(format!("no line starting {prefix:?}")),
            Some(line) => {
                let words: Vec<&str> = line.split_whitespace().collect();
                // init: cpu<i> made <M> calls to cpu<j> and answered <M>
                let made = words.get(3).and_then(|w| w.parse::<u64>().ok());
                let answered = words.last().and_then(|w| w.parse::<u64>().ok());
                if made.is_none_or(|m| m == 0) || made != answered || words.get(6) != Some(&format!("cpu{to}").as_str())
                {
                    problems.push(format!("unexpected per-CPU line {line:?}"));
                }
            }
        }
    }
    if outcome.lines().any(|l| l.contains("FAILED") || l.contains("killed:") || l.contains("panic")) {
        problems.push("init or the kernel reported a failure".to_owned());
    }
    fail_if_any(&outcome, &problems);
}

#[test]
fn init_smp_1() {
    init_runs("init_smp_1", 1);
}

#[test]
fn init_smp_4() {
    init_runs("init_smp_4", 4);
}

#[test]
fn init_smp_8() {
    init_runs("init_smp_8", 8);
}
