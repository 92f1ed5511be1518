//! `test=all` under every firmware, machine type and memory size the kernel
//! must handle: each boot runs the kernel's whole in-kernel test suite and
//! must power off reporting that every test passed.
//!
//! The configurations differ where kernels break: how memory is described
//! (E820 under SeaBIOS, the UEFI memory map under OVMF), memory above 4 GiB,
//! chipset (ACPI tables and interrupt routing on pc vs q35), AP start-up
//! (SMP > 1) and the local APIC mode (x2APIC or xAPIC MMIO).

use ferrite_tests::{Boot, Firmware, Machine};

/// Boots `test=all` and asserts that every kernel test passed.
fn all_tests(name: &str, firmware: Firmware, machine: Machine, mem: &str, smp: u32) -> Boot {
    Boot::new(name).firmware(firmware).machine(machine).mem(mem).smp(smp).cmdline("test=all")
}

/// The smallest configuration: legacy PC, one CPU, 64 MiB.
#[test]
fn bios_pc_64m() {
    all_tests("bios_pc_64m", Firmware::Bios, Machine::Pc, "64M", 1).run().assert_all_tests_passed();
}

#[test]
fn bios_q35_512m() {
    all_tests("bios_q35_512m", Firmware::Bios, Machine::Q35, "512M", 2).run().assert_all_tests_passed();
}

/// 5 GiB puts RAM above the 4 GiB PCI hole, so the memory map has a gap and
/// frames beyond 32-bit addresses.
#[test]
fn bios_q35_5g() {
    all_tests("bios_q35_5g", Firmware::Bios, Machine::Q35, "5G", 2).run().assert_all_tests_passed();
}

/// The kernel loaded far above its 2 MiB link address (its relocatable
/// header tag asking GRUB for the highest place it may go, below 1 GiB):
/// the 32-bit entry runs where it lies, the higher half maps onto it there,
/// and every test passes (among them, that no frame of the moved image is
/// ever handed out).
#[test]
fn uefi_q35_loaded_high() {
    let outcome = all_tests("uefi_q35_loaded_high", Firmware::Uefi, Machine::Q35, "512M", 2).loaded_high().run();
    outcome.assert_all_tests_passed();
    let line = outcome
        .lines()
        .find(|l| l.contains("boot: kernel image loaded at"))
        .unwrap_or_else(|| outcome.fail("the log does not say where the kernel was loaded"));
    if line.contains("(0x0 above its link address)") {
        outcome.fail(&format!("the kernel was loaded at its link address: {line}"));
    }
}

#[test]
fn uefi_q35_256m() {
    all_tests("uefi_q35_256m", Firmware::Uefi, Machine::Q35, "256M", 1).run().assert_all_tests_passed();
}

#[test]
fn uefi_pc_512m() {
    all_tests("uefi_pc_512m", Firmware::Uefi, Machine::Pc, "512M", 2).run().assert_all_tests_passed();
}

#[test]
fn uefi_q35_5g() {
    all_tests("uefi_q35_5g", Firmware::Uefi, Machine::Q35, "5G", 2).run().assert_all_tests_passed();
}

/// `qemu64` lacks x2APIC, so the kernel must drive the local APIC through
/// its xAPIC MMIO window.
#[test]
fn cpu_without_x2apic() {
    all_tests("cpu_without_x2apic", Firmware::Bios, Machine::Q35, "512M", 2)
        .cpu("qemu64")
        .run()
        .assert_all_tests_passed();
}
