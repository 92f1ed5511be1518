//! SMP bring-up: every CPU QEMU gives the machine must come online through
//! the real-mode trampoline, under the firmware, APIC mode and topology
//! quirks real PCs have, and the kernel's `smp` suite (IPIs between all
//! pairs, per-CPU identity, a shared counter) must pass on all of them.
//!
//! Each boot must log exactly one
//! `smp: <online> of <present> CPUs online in <microseconds> us` line and no
//! line about a CPU `not responding` or ` stuck`. `present` counts the usable
//! CPUs of the ACPI MADT; `online` is at most what `smp=` or `nosmp` allow.
//!
//! Unless a test says otherwise: SeaBIOS, q35, 512M, CPU model `max` (which
//! has x2APIC under TCG on QEMU 8 and later), command line [`KERNEL_SUITES`]:
//! the suites that run in the kernel on every CPU. The user and hostile
//! suites have their own boots on several CPU counts (user.rs, hostile.rs);
//! `smp_4` and `smp_topology_with_gaps` run `test=all` here as well, so that
//! user mode also meets bring-up's quirks.

use ferrite_tests::{check_all_tests_passed, check_cpus_online, Boot, Firmware, Machine, Outcome, Status};

/// The kernel's own suites, without user mode.
const KERNEL_SUITES: &str = "test=mem,arch,smp,sched,stress";

/// A boot of [`KERNEL_SUITES`] with the defaults above and QEMU's `-smp`
/// set to `smp`.
fn smp_boot(name: &str, smp: &str) -> Boot {
    Boot::new(name)
        .firmware(Firmware::Bios)
        .machine(Machine::Q35)
        .mem("512M")
        .cpu("max")
        .smp(smp)
        .cmdline(KERNEL_SUITES)
}

/// Asserts that a boot brought `online` of `present` CPUs up,
/// that no CPU failed to start, that the `smp` suite ran, and that every
/// kernel test passed.
#[track_caller]
fn assert_smp_boot(outcome: &Outcome, online: u32, present: u32) {
    let problems = smp_boot_problems(outcome, online, present);
    fail_if_any(outcome, &problems);
}

/// What [`assert_smp_boot`] checks, as a list of problems rather than a
/// panic at the first, so that one failure report shows them all: a wrong
/// CPU count and a failing IPI test usually explain each other.
fn smp_boot_problems(outcome: &Outcome, online: u32, present: u32) -> Vec<String> {
    let mut problems = Vec::new();
    match check_cpus_online(&outcome.log, online, present) {
        Ok(r) => eprintln!("{}: {} of {} CPUs online in {} us", outcome.name, r.online, r.present, r.micros),
        Err(e) => problems.push(e),
    }
    if outcome.status != Status::Success {
        problems.push(format!("expected status Success, got {:?}", outcome.status));
    }
    match check_all_tests_passed(&outcome.log) {
        Err(e) => problems.push(e),
        Ok(_) if !outcome.lines().any(|l| l.starts_with("test smp::")) => {
            problems.push("no `test smp::…` line: the boot did not run the kernel's smp suite".to_owned());
        }
        Ok(_) => {}
    }
    problems
}

/// Fails the boot with every one of `problems`, if there are any.
#[track_caller]
fn fail_if_any(outcome: &Outcome, problems: &[String]) {
    match problems {
        [] => {}
        [one] => outcome.fail(one),
        many => outcome.fail(&format!("{} problems:\n- {}", many.len(), many.join("\n- "))),
    }
}

/// The boot CPU alone: bring-up must cope with there being no AP at all.
#[test]
fn smp_1() {
    assert_smp_boot(&smp_boot("smp_1", "1").run(), 1, 1);
}

/// The smallest real SMP machine: one AP, one INIT-SIPI-SIPI.
#[test]
fn smp_2() {
    assert_smp_boot(&smp_boot("smp_2", "2").run(), 2, 2);
}

/// A common desktop count; APs start in parallel, so their start-up races
/// on the trampoline's shared data.
#[test]
fn smp_4() {
    assert_smp_boot(&smp_boot("smp_4", "4").cmdline("test=all").run(), 4, 4);
}

/// More APs than host cores under TCG: APs run slowly and out of step, as
/// on a loaded or power-managed machine where an AP answers late.
#[test]
fn smp_8() {
    assert_smp_boot(&smp_boot("smp_8", "8").run(), 8, 8);
}

/// Sixteen CPUs: per-CPU stacks and data beyond a handful, and the all-pairs
/// IPI test at a size where a lost IPI or a lock convoy shows.
#[test]
fn smp_16() {
    assert_smp_boot(&smp_boot("smp_16", "16").run(), 16, 16);
}

/// Gaps in the APIC IDs: with 3 cores per socket QEMU pads the core field to
/// 2 bits, so the IDs are 0-5 and 8-13, as on real parts with disabled cores
/// or odd core counts. APIC ID and CPU index must not be confused.
#[test]
fn smp_topology_with_gaps() {
    let outcome = smp_boot("smp_topology_with_gaps", "sockets=2,cores=3,threads=2").cmdline("test=all").run();
    assert_smp_boot(&outcome, 12, 12);
}

/// MADT entries for CPUs that are not there: with `maxcpus=8` QEMU lists 8
/// local APICs of which 4 are neither enabled nor online-capable, like the
/// empty sockets and hot-plug slots firmware describes on servers. Sending
/// SIPIs to them would hang or fail bring-up.
#[test]
fn smp_maxcpus_beyond_present() {
    let outcome = smp_boot("smp_maxcpus_beyond_present", "4,maxcpus=8").run();
    assert_smp_boot(&outcome, 4, 4);
}

/// xAPIC instead of x2APIC: `qemu64` has no x2APIC, so INIT/SIPI and IPIs go
/// through the MMIO ICR with 8-bit destinations, as on older machines or
/// where firmware leaves x2APIC off.
#[test]
fn smp_xapic_qemu64() {
    let outcome = smp_boot("smp_xapic_qemu64", "4").cpu("qemu64").run();
    assert_smp_boot(&outcome, 4, 4);
}

/// Firmware differences: under OVMF the MADT, the memory below 1 MiB the
/// trampoline needs, and the state the APs are left in all come from UEFI,
/// not SeaBIOS.
#[test]
fn smp_uefi_4() {
    let outcome = smp_boot("smp_uefi_4", "4").firmware(Firmware::Uefi).run();
    assert_smp_boot(&outcome, 4, 4);
}

/// The same firmware difference with more APs than host cores.
#[test]
fn smp_uefi_8() {
    let outcome = smp_boot("smp_uefi_8", "8").firmware(Firmware::Uefi).run();
    assert_smp_boot(&outcome, 8, 8);
}

/// `smp=2` on a 4-CPU machine: the limit must start exactly one AP and leave
/// the others in wait-for-SIPI, while `present` still counts the MADT, as
/// when a user works around a bad core.
#[test]
fn smp_limit_cmdline() {
    let outcome = smp_boot("smp_limit_cmdline", "4").cmdline(&format!("{KERNEL_SUITES} smp=2")).run();
    assert_smp_boot(&outcome, 2, 4);
}

/// `nosmp`: the boot CPU alone although the MADT lists four, the usual first
/// step when SMP bring-up breaks on a new machine.
#[test]
fn smp_nosmp() {
    let outcome = smp_boot("smp_nosmp", "4").cmdline(&format!("{KERNEL_SUITES} nosmp")).run();
    assert_smp_boot(&outcome, 1, 4);
}

/// No ACPI at all (`-machine pc,acpi=off`, as on old or embedded boards, or
/// broken tables the user disables): with no MADT the kernel must warn and
/// run on the boot CPU alone, not fault looking for tables or guess APIC IDs
/// to start.
#[test]
fn smp_no_acpi() {
    let outcome = smp_boot("smp_no_acpi", "2").machine(Machine::Pc).machine_opts("acpi=off").run();
    let mut problems = smp_boot_problems(&outcome, 1, 1);
    if !outcome.lines().any(|l| l.contains(" WARN ") && l.contains("MADT")) {
        let madt: Vec<&str> = outcome.lines().filter(|l| l.contains("MADT")).collect();
        problems.push(format!("no WARN line about the missing MADT; lines mentioning MADT: {madt:?}"));
    }
    fail_if_any(&outcome, &problems);
}

/// A panic on an AP (`crash=appanic` panics on CPU 1): the panic must be
/// reported from that CPU, stop every other CPU and power off with failure,
/// not hang with the boot CPU still running or deadlock on the console lock.
#[test]
fn ap_panic_stops_all() {
    Boot::new("ap_panic_stops_all")
        .firmware(Firmware::Bios)
        .machine(Machine::Q35)
        .mem("512M")
        .cpu("max")
        .smp(4)
        .cmdline("crash=appanic")
        .run()
        .assert_crashed_with(&["PANIC on cpu1", "panic: stopped all other CPUs"]);
}

/// Checks a boot in which exactly one AP was made to fail (`apfault=`): the
/// kernel must report that CPU with `report`, carry on with the other three,
/// and pass every test on them.
#[track_caller]
fn assert_one_ap_failed(outcome: &Outcome, report: &str) {
    let mut problems = Vec::new();
    match ferrite_tests::find_smp_report(&outcome.log) {
        Ok(r) if (r.online, r.present) == (3, 4) => {}
        Ok(r) => problems.push(format!("expected 3 of 4 CPUs online, the kernel says {} of {}", r.online, r.present)),
        Err(e) => problems.push(e),
    }
    match ferrite_tests::cpu_failure_lines(&outcome.log).as_slice() {
        [line] if line.contains(report) => {}
        lines => problems.push(format!("expected one failure line containing {report:?}, got {lines:?}")),
    }
    if outcome.status != Status::Success {
        problems.push(format!("expected status Success, got {:?}", outcome.status));
    }
    if let Err(e) = check_all_tests_passed(&outcome.log) {
        problems.push(e);
    }
    fail_if_any(outcome, &problems);
}

/// An AP that never answers INIT/STARTUP (a dead core, or firmware that left
/// it unable to take a STARTUP): after the timeout the kernel must name it
/// as not responding, by APIC ID, and boot on with the CPUs that came up.
/// (`apfault=silent` withholds the last AP's STARTUP IPIs.)
#[test]
fn ap_not_responding_is_reported() {
    let outcome =
        smp_boot("ap_not_responding_is_reported", "4").cmdline(&format!("{KERNEL_SUITES} apfault=silent")).run();
    assert_one_ap_failed(&outcome, "cpu3 (APIC ID 3) not responding");
}

/// An AP in the middle that gets stuck leaves a hole in the kernel's CPU
/// numbers: the CPUs above it are online and must get every kernel TLB
/// shootdown, cross-CPU call and thread, and user programs still number
/// the CPUs densely. (Before the online CPU set, `0..online_count()` left
/// cpu3 out of shootdowns, and the tests pinned threads to cpu1.)
#[test]
fn ap_stuck_in_the_middle() {
    let outcome = smp_boot("ap_stuck_in_the_middle", "4").cmdline("test=smp,sched,user apfault=stuck@1").run();
    assert_one_ap_failed(&outcome, "cpu1 (APIC ID 1) stuck: it reached long mode");
    outcome.assert_contains_all(&["smp: logical CPU:APIC ID 0:0 2:2 3:3"]);
}

/// An AP that ran the trampoline but never came online (a fault on its way
/// up): it must be told apart from a silent one by the last mode it
/// reached, and must not join later behind the boot CPU's report.
/// (`apfault=stuck` holds the last AP before it claims its boot gate.)
#[test]
fn ap_stuck_is_reported() {
    let outcome = smp_boot("ap_stuck_is_reported", "4").cmdline(&format!("{KERNEL_SUITES} apfault=stuck")).run();
    assert_one_ap_failed(&outcome, "cpu3 (APIC ID 3) stuck: it reached long mode");
}
