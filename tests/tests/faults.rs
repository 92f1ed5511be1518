//! Crashes, command-line handling and the plain idle boot: the kernel must
//! report a fault and power off with failure (never reboot, which QEMU's
//! `-no-reboot` would show as [`Status::QemuEnded`]), report options it does
//! not know, and boot without tests to an idle system.

use ferrite_tests::{Boot, Firmware, Machine, Status};

/// A 512 MiB q35 machine with one CPU booting `cmdline`.
fn q35(name: &str, firmware: Firmware, cmdline: &str) -> Boot {
    Boot::new(name).firmware(firmware).machine(Machine::Q35).mem("512M").smp(1).cmdline(cmdline)
}

/// A null-pointer write in the kernel: the page-fault handler must name the
/// fault and the faulting address.
#[test]
fn crash_pagefault_bios() {
    q35("crash_pagefault_bios", Firmware::Bios, "crash=pagefault")
        .run()
        .assert_crashed_with(&["page fault", "cr2=0x0000000000000000"]);
}

/// Unbounded recursion runs into the stack's guard page; the page fault
/// cannot be delivered on the dead stack, so the double-fault handler (on
/// its own IST stack) must diagnose it rather than the CPU triple-faulting.
#[test]
fn crash_overflow_bios() {
    q35("crash_overflow_bios", Firmware::Bios, "crash=overflow")
        .run()
        .assert_crashed_with(&["double fault", "kernel stack overflow"]);
}

/// The same under OVMF, whose memory map and page tables differ.
#[test]
fn crash_overflow_uefi() {
    q35("crash_overflow_uefi", Firmware::Uefi, "crash=overflow")
        .run()
        .assert_crashed_with(&["double fault", "kernel stack overflow"]);
}

/// An unknown option is logged, not fatal: the command-line tests still run
/// and pass.
#[test]
fn unknown_option_reported() {
    let outcome = q35("unknown_option_reported", Firmware::Bios, "test=cmdline bogus=1").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&["unknown option 'bogus=1'"]);
}

/// With no command line the kernel boots, says so, and idles on the timer
/// forever; the harness stops it once it is up.
#[test]
fn plain_boot_idles() {
    let outcome = Boot::new("plain_boot_idles").machine(Machine::Q35).mem("512M").smp(2).run_until("boot: done");
    outcome.assert_status(Status::PatternFound);
    outcome.assert_lacks("PANIC");
}

/// A 32-bit CPU (`pentium3`: GRUB runs, long mode does not exist): the
/// kernel's 32-bit entry must say so on the serial port and halt, not
/// fault into a reboot. The halt never powers off, so the boot stops at
/// the message.
#[test]
fn cpu_without_long_mode_reported() {
    let outcome = Boot::new("cpu_without_long_mode_reported")
        .machine(Machine::Pc)
        .mem("128M")
        .smp(1)
        .cpu("pentium3")
        .run_until("this CPU does not support 64-bit long mode");
    outcome.assert_status(Status::PatternFound);
}
