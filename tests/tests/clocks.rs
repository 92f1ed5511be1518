//! Time without the PIT. Recent Intel platforms gate the 8254 off, and
//! some machines lack the HPET or (hardware-reduced ACPI) the PM timer:
//! the kernel must find the TSC's rate from whatever is there (CPUID,
//! else the HPET, the ACPI PM timer, the PIT, in that order), say which it
//! used, and pass every test with it. QEMU's TCG CPUs give no CPUID leaf
//! for the TSC, so these boots measure it against the clock left.
//! (The CPUID arithmetic is host-tested in ferrite_kcore::clock.)

use ferrite_tests::{Boot, Firmware, Machine};

/// Boots `test=all` on `machine` with `opts` and checks that every test
/// passed and the log says the TSC was measured against `clock`.
fn all_tests_with(name: &str, firmware: Firmware, machine: Machine, opts: &str, smp: u32, clock: &str) {
    let outcome =
        Boot::new(name).firmware(firmware).machine(machine).machine_opts(opts).smp(smp).cmdline("test=all").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&[&format!("(measured against {clock})")]);
}

/// No PIT: the HPET measures the TSC.
#[test]
fn q35_without_pit() {
    all_tests_with("q35_without_pit", Firmware::Bios, Machine::Q35, "pit=off", 2, "the HPET");
}

/// Neither PIT nor HPET: the ACPI PM timer does.
#[test]
fn q35_without_pit_or_hpet() {
    all_tests_with("q35_without_pit_or_hpet", Firmware::Uefi, Machine::Q35, "pit=off,hpet=off", 2, "the ACPI PM timer");
}

#[test]
fn pc_without_pit() {
    all_tests_with("pc_without_pit", Firmware::Bios, Machine::Pc, "pit=off", 1, "the HPET");
}

/// No ACPI, so only the PIT is left: it is used.
#[test]
fn pit_alone() {
    let outcome = Boot::new("pit_alone").machine(Machine::Pc).machine_opts("acpi=off").cmdline("test=apic,sched").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&["(measured against the PIT)"]);
}

/// No clock at all (no ACPI, no PIT): the kernel says so, guesses, and
/// carries on rather than stopping.
#[test]
fn no_clock_at_all() {
    let outcome =
        Boot::new("no_clock_at_all").machine(Machine::Pc).machine_opts("acpi=off,pit=off").cmdline("test=apic").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&[
        "clock: the PIT does not count",
        "ERROR clock: no clock could measure the TSC; guessing",
    ]);
}
