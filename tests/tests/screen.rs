//! The screen console, read back: QEMU without a serial port at all
//! (`SERIAL=none`) and without the debug-exit device, as a PC; when the
//! kernel has powered off through ACPI, the harness dumps QEMU's screen
//! and reads its text with the kernel's font. What a user of a PC without
//! a serial port sees must say how many CPUs came up and the verdict.

use ferrite_tests::{Boot, Firmware, Machine, Status};

/// `test=smp` on 2 CPUs, seen on the screen only.
fn screen_shows_boot(name: &str, firmware: Firmware, machine: Machine) {
    let outcome = Boot::new(name)
        .firmware(firmware)
        .machine(machine)
        .smp(2)
        .serial("none")
        .debug_exit(false)
        .read_screen()
        .cmdline("test=smp")
        .run();
    if outcome.status != Status::GuestPowerOff {
        outcome.fail(&format!("expected an ACPI power off, got {:?}", outcome.status));
    }
    let screen = outcome.assert_screen_shows(&[
        "screen: 1024x768, 32 bpp",
        "console: no serial port answered; the console is on the screen",
        "smp: 2 of 2 CPUs online",
        " passed, 0 failed",
        "power: powering off through ACPI S5 (success)",
    ]);
    // The verdict is the screen's last text, as on serial.
    let last = screen.iter().rev().find(|l| !l.is_empty());
    assert!(last.is_some_and(|l| l.contains("powering off through ACPI S5 (success)")), "{name}: {screen:#?}");
}

#[test]
fn screen_bios_pc() {
    screen_shows_boot("screen_bios_pc", Firmware::Bios, Machine::Pc);
}

#[test]
fn screen_bios_q35() {
    screen_shows_boot("screen_bios_q35", Firmware::Bios, Machine::Q35);
}

#[test]
fn screen_uefi_pc() {
    screen_shows_boot("screen_uefi_pc", Firmware::Uefi, Machine::Pc);
}

#[test]
fn screen_uefi_q35() {
    screen_shows_boot("screen_uefi_q35", Firmware::Uefi, Machine::Q35);
}

/// A panic on another CPU than the boot CPU, while the boot CPU waits:
/// the message, with its CPU, reaches the screen before the power off.
#[test]
fn screen_shows_panic() {
    let outcome = Boot::new("screen_shows_panic")
        .smp(2)
        .serial("none")
        .debug_exit(false)
        .read_screen()
        .cmdline("crash=appanic")
        .run();
    outcome.assert_screen_shows(&[
        "PANIC on cpu1",
        "crash=appanic: a deliberate panic on cpu1",
        "powering off through ACPI S5 (failure)",
    ]);
}

/// `console=serial`: the log stays off the screen (and is all on serial).
#[test]
fn console_serial_leaves_the_screen_alone() {
    let outcome = Boot::new("console_serial_leaves_the_screen_alone")
        .smp(2)
        .debug_exit(false)
        .read_screen()
        .cmdline("console=serial test=smp")
        .run();
    outcome.assert_all_tests_passed_acpi_off();
    let screen = outcome.screen.clone().expect("read").expect("readable");
    assert!(!screen.iter().any(|l| l.contains("CPUs online")), "the log reached the screen: {screen:#?}");
}

/// Another depth than the header asks for (GRUB's `gfxpayload`), drawn in
/// that format and read back the same.
fn screen_in_mode(name: &str, firmware: Firmware, mode: &str, bpp: &str) {
    let outcome = Boot::new(name)
        .firmware(firmware)
        .smp(2)
        .serial("none")
        .debug_exit(false)
        .gfxpayload(mode)
        .read_screen()
        .cmdline("test=smp")
        .run();
    outcome.assert_screen_shows(&[
        &format!("screen: 1024x768, {bpp} bpp"),
        "smp: 2 of 2 CPUs online",
        "power: powering off through ACPI S5 (success)",
    ]);
}

#[test]
fn screen_24_bits() {
    screen_in_mode("screen_24_bits", Firmware::Bios, "1024x768x24", "24");
}

#[test]
fn screen_16_bits() {
    screen_in_mode("screen_16_bits", Firmware::Bios, "1024x768x16", "16");
}

/// GRUB left in text mode: no framebuffer the kernel can draw on. The
/// serial log says so, and the boot goes on.
#[test]
fn text_mode_is_reported_not_drawn() {
    let outcome = Boot::new("text_mode_is_reported_not_drawn").smp(2).gfxpayload("text").cmdline("test=smp").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&["no screen console", "the console is on ttyS0"]);
    outcome.assert_lacks("on the screen");
}
