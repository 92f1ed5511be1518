//! Resetting: `reboot=<method>` resets the machine right after boot by
//! that method. QEMU runs with `-no-reboot`, so a reset ends it without a
//! verdict; what shows that the method itself worked is that the kernel
//! never had to report it failing and try the next (each gets 100 ms).
//!
//! Powering off through ACPI: without QEMU's debug-exit device the kernel
//! enters S5, as on a PC. QEMU then exits by itself, with no verdict in its
//! status, so the log's last line must be the kernel's success verdict.

use ferrite_tests::{Boot, Firmware, Machine, Outcome, Status};

/// `test=smp` on 2 CPUs without the debug-exit device: every test passes,
/// then the kernel powers QEMU off through ACPI S5 (with the other CPU
/// stopped first, so that the verdict is the last line).
fn acpi_power_off(name: &str, firmware: Firmware, machine: Machine, pm1a: &str) {
    let outcome =
        Boot::new(name).firmware(firmware).machine(machine).smp(2).cmdline("test=smp").debug_exit(false).run();
    outcome.assert_all_tests_passed_acpi_off();
    outcome.assert_contains_all(&[&format!("power: ACPI S5 sleep type a=0 b=0 (PM1a port {pm1a})")]);
}

/// PM1a_CNT is at the PM base + 4; the firmware chooses the base: 0x600
/// on q35 and, under SeaBIOS, on pc too; OVMF puts PIIX4's at 0xb000.
#[test]
fn acpi_power_off_bios_pc() {
    acpi_power_off("acpi_power_off_bios_pc", Firmware::Bios, Machine::Pc, "0x604");
}

#[test]
fn acpi_power_off_bios_q35() {
    acpi_power_off("acpi_power_off_bios_q35", Firmware::Bios, Machine::Q35, "0x604");
}

#[test]
fn acpi_power_off_uefi_pc() {
    acpi_power_off("acpi_power_off_uefi_pc", Firmware::Uefi, Machine::Pc, "0xb004");
}

#[test]
fn acpi_power_off_uefi_q35() {
    acpi_power_off("acpi_power_off_uefi_q35", Firmware::Uefi, Machine::Q35, "0x604");
}

fn reboot(name: &str, machine: Machine, method: &str) -> Outcome {
    Boot::new(name).machine(machine).smp("2").cmdline(&format!("reboot={method}")).run()
}

/// The machine reset through `how` and nothing after it was needed.
#[track_caller]
fn assert_reset_through(outcome: &Outcome, how: &str) {
    if !matches!(outcome.status, Status::QemuEnded(_)) {
        outcome.fail(&format!("expected QEMU to end with the reset, got {:?}", outcome.status));
    }
    outcome.assert_contains_all(&[&format!("power: resetting through {how}")]);
    outcome.assert_lacks("did not reset the machine");
    let attempts = outcome.lines().filter(|l| l.contains("power: resetting through")).count();
    if attempts != 1 {
        outcome.fail(&format!("{attempts} reset methods tried; expected exactly one"));
    }
}

/// q35 (ICH9): the FADT names the reset register (port 0xCF9).
#[test]
fn reset_acpi_q35() {
    let outcome = reboot("reset_acpi_q35", Machine::Q35, "acpi");
    outcome.assert_contains_all(&["power: ACPI reset register: port 0xcf9"]);
    assert_reset_through(&outcome, "the ACPI reset register");
}

/// pc (PIIX): QEMU's FADT there names no reset register, so `acpi` is
/// reported missing and port 0xCF9 comes next.
#[test]
fn reset_acpi_missing_falls_back() {
    let outcome = reboot("reset_acpi_missing_falls_back", Machine::Pc, "acpi");
    outcome.assert_contains_all(&["power: the FADT names no reset register", "power: no acpi reset on this machine"]);
    assert_reset_through(&outcome, "port 0xcf9");
}

#[test]
fn reset_cf9_pc() {
    assert_reset_through(&reboot("reset_cf9_pc", Machine::Pc, "cf9"), "port 0xcf9");
}

#[test]
fn reset_kbd_q35() {
    assert_reset_through(&reboot("reset_kbd_q35", Machine::Q35, "kbd"), "the keyboard controller");
}

#[test]
fn reset_triple_fault_q35() {
    assert_reset_through(&reboot("reset_triple_fault_q35", Machine::Q35, "triple"), "a triple fault");
}

/// `panic=<n>`: a panic's report, then the power off `n` seconds later
/// (through ACPI here, as on a PC), not at once.
#[test]
fn panic_powers_off_after_a_wait() {
    let outcome = Boot::new("panic_powers_off_after_a_wait")
        .machine(Machine::Q35)
        .smp(2)
        .cmdline("crash=appanic panic=2")
        .debug_exit(false)
        .run();
    outcome.assert_status(Status::GuestPowerOff);
    outcome.assert_contains_all(&[
        "PANIC on cpu1",
        "ferrite: powering off in 2 s (failure)",
        "power: powering off through ACPI S5 (failure)",
    ]);
}

/// `panic=halt`: the machine stays on after the report (which is on the
/// screen as well: screen.rs), so a PC's user can read it; QEMU is still
/// running when the harness gives up on it, seconds later.
#[test]
fn panic_halt_keeps_the_machine_on() {
    let outcome = Boot::new("panic_halt_keeps_the_machine_on")
        .machine(Machine::Pc)
        .smp(2)
        .cmdline("crash=appanic panic=halt")
        .debug_exit(false)
        .timeout(std::time::Duration::from_secs(12))
        .run();
    outcome.assert_status(Status::Timeout);
    outcome.assert_contains_all(&["PANIC on cpu1", "ferrite: halted (panic=halt); the machine stays on"]);
    outcome.assert_lacks("powering off");
}
