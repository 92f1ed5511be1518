//! Powering off and resetting.
//!
//! Powering off goes through QEMU's isa-debug-exit device where it exists:
//! QEMU (`-device isa-debug-exit,iobase=0xf4`) exits with status
//! `(value << 1) | 1` when a value is written to the port. scripts/qemu.sh
//! maps these statuses back to success and failure; keep them in sync.
//! The device reads as 0, where a port nothing decodes reads as all ones:
//! that is how the kernel tells. QEMU (since 9.1) acts on the write
//! asynchronously, so the CPU runs on for a moment after it; the kernel
//! waits for QEMU to stop it (up to [`DEBUG_EXIT_WAIT_NS`]), saying
//! nothing more, so that the verdict stays the log's last line. Without
//! the device (a PC, or `DEBUG_EXIT=no`), or if QEMU did not stop it, the
//! kernel stops the other CPUs, says its verdict on the console (the only
//! place it can reach now) and enters ACPI S5 ([`super::sleep`]); if that
//! does not power off within 100 ms, it says so and halts.
//!
//! Resetting tries, in order, what Linux's `reboot=` methods try on a PC:
//! the FADT's reset register (ACPI 2.0 and later, where the firmware says
//! it is supported), the chipset's reset control register at port 0xCF9,
//! the keyboard controller's reset line, and last a triple fault, which
//! resets every PC. Each is given 100 ms to work; one that does not is
//! reported and the next is tried.
use core::fmt::Write;
use ferrite_kcore::acpi::{self, GenericAddress, RootTable};
use ferrite_kcore::cmdline::ResetMethod;
use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;
const DEBUG_EXIT_SUCCESS: u32 = 0x10;
const DEBUG_EXIT_FAILURE: u32 = 0x11;
/// What the debug-exit device reads as.
const DEBUG_EXIT_READS: u32 = 0;
/// How long QEMU may take to act on a debug-exit write.
const DEBUG_EXIT_WAIT_NS: u64 = 2_000_000_000;

/// How long a reset method has to work before the next is tried.
const RESET_WAIT_NS: u64 = 100_000_000;

/// The chipset's reset control register (Intel's `RST_CNT`): bit 1 asks
/// for a hard reset, bit 2 starts the reset.
const RESET_CONTROL_PORT: u16 = 0xcf9;
const RESET_CONTROL_HARD: u8 = 1 << 1;
const RESET_CONTROL_START: u8 = 1 << 2;

/// The 8042 keyboard controller: status (read) and command (write) port,
/// the status bit "input buffer full", and the command that pulses the
/// CPU's reset line.
const KBD_STATUS_COMMAND_PORT: u16 = 0x64;
const KBD_INPUT_FULL: u8 = 1 << 1;
const KBD_PULSE_RESET: u8 = 0xfe;
/// How long to wait for the 8042 to take a command.
const KBD_WAIT_MS: u64 = 10;

/// PCI configuration mechanism #1: the address port, the data port, and
/// the address's enable bit.
const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
const PCI_CONFIG_DATA: u16 = 0xcfc;
const PCI_CONFIG_ENABLE: u32 = 1 << 31;

/// The FADT's reset register, ready to be written: found (and, in memory
/// space, mapped) at boot, so that a reset needs neither the heap nor the
/// ACPI tables.
#[derive(Clone, Copy)]
enum ResetRegister {
    Port(u16, u8),
    /// Mapped at this virtual address.
    Memory(u64, u8),
    /// PCI configuration space of bus 0: device, function, offset, value.
    PciConfig(u8, u8, u8, u8),
}

static ACPI_RESET: spin::Once<ResetRegister> = spin::Once::new();
/// The PM1a event block's port and the SCI's ISA line, where the FADT
/// gives both (for the tests of level-triggered interrupt lines).
static SCI: spin::Once<(u16, u8)> = spin::Once::new();

/// I/O ports the kernel drives itself (first, count, what): the PICs it
/// keeps masked, the PIT it calibrates against, and QEMU's debug-exit
/// port, which carries a test run's verdict. (Port 0xCF9, the reset
/// control register, is a byte of the PCI configuration address at 0xCF8
/// that a PCI driver needs, and the keyboard controller's reset is the
/// keyboard driver's port: a reset stays reachable through those.)
const KERNEL_PORTS: [(u16, u16, &str); 4] = [
    (0x20, 2, "the master PIC"),
    (0xa0, 2, "the slave PIC"),
    (0x40, 4, "the PIT"),
    (DEBUG_EXIT_PORT, 4, "QEMU's debug exit"),
];

/// What the kernel drives among the I/O ports `first..first + count`, if
/// anything: those, the ACPI sleep control registers and the FADT's reset
/// register (if a port) are no process's (`ioport_enable` refuses them).
pub fn kernel_port(first: u32, count: u32) -> Option<&'static str> {
    let end = first.saturating_add(count);
    let hit = |base: u16, len: u16| u32::from(base) < end && first < u32::from(base) + u32::from(len);
    if let Some(&(_, _, what)) = KERNEL_PORTS.iter().find(|&&(base, len, _)| hit(base, len)) {
        return Some(what);
    }
    if super::sleep::control_ports().into_iter().flatten().any(|(base, len)| hit(base, len)) {
        return Some("an ACPI sleep control register");
    }
    match ACPI_RESET.get() {
        Some(&ResetRegister::Port(port, _)) if hit(port, 1) => Some("the ACPI reset register"),
        _ => None,
    }
}

/// The PM1a event block's I/O port and the SCI's ISA IRQ, if known.
pub fn sci() -> Option<(u16, u8)> {
    SCI.get().copied()
}

/// Reads from the FADT (and the DSDT it names) the reset register and how
/// to enter S5, where the machine has them in a form the kernel can use;
/// logs what it found.
pub fn init(root: Option<RootTable>) {
    let Some(root) = root else { return };
    let fadt = match crate::acpi::read_table(root, b"FACP").and_then(|t| acpi::parse_fadt(&t)) {
        Ok(fadt) => fadt,
        Err(acpi::AcpiError::NotFound(_)) => {
            log::info!("power: no FADT: no ACPI reset or power off");
            return;
        }
        Err(e) => {
            log::warn!("power: cannot read the FADT: {e}; no ACPI reset or power off");
            return;
        }
    };
    init_reset(fadt.reset);
    if let (Some(event), Some(irq)) = (fadt.pm1a_event, fadt.sci_irq) {
        if let (acpi::GenericAddress::IO, Ok(port), Ok(irq @ 0..=15)) =
            (event.space, u16::try_from(event.address), u8::try_from(irq))
        {
            SCI.call_once(|| (port, irq));
        }
    }
    super::sleep::init(&fadt);
}

/// Keeps the FADT's reset register, if the kernel can use it.
fn init_reset(reset: Option<acpi::ResetRegister>) {
    let Some(reset) = reset else {
        log::info!("power: the FADT names no reset register");
        return;
    };
    let GenericAddress { space, address, .. } = reset.register;
    let register = match space {
        GenericAddress::IO => u16::try_from(address).ok().map(|port| ResetRegister::Port(port, reset.value)),
        GenericAddress::MEMORY => match crate::mem::paging::map_mmio(address, 1) {
            Ok(virt) => Some(ResetRegister::Memory(virt, reset.value)),
            Err(e) => {
                log::warn!("power: cannot map the reset register at {address:#x}: {e:?}");
                None
            }
        },
        // Bits 47:32 the device, 31:16 the function, 15:0 the offset.
        GenericAddress::PCI_CONFIG => {
            let (device, function, offset) = ((address >> 32) & 0xffff, (address >> 16) & 0xffff, address & 0xffff);
            (device < 32 && function < 8 && offset < 256).then_some(ResetRegister::PciConfig(
                device as u8,
                function as u8,
                offset as u8,
                reset.value,
            ))
        }
        _ => None,
    };
    match register {
        Some(r) => {
            log::info!("power: ACPI reset register: {} {address:#x}, value {:#x}", space_name(space), reset.value);
            ACPI_RESET.call_once(|| r);
        }
        None => log::warn!("power: unusable ACPI reset register ({} {address:#x})", space_name(space)),
    }
}

fn space_name(space: u8) -> &'static str {
    match space {
        GenericAddress::IO => "port",
        GenericAddress::MEMORY => "memory",
        GenericAddress::PCI_CONFIG => "PCI config",
        _ => "space",
    }
}

/// How long ACPI S5 has to power off before the kernel gives up (and the
/// other CPUs have to stop before it starts).
const POWER_OFF_WAIT_NS: u64 = 100_000_000;

/// Powers off reporting `success`: through isa-debug-exit where QEMU has
/// it, else through ACPI S5, else (no usable ACPI) by halting.
pub fn power_off(success: bool) -> ! {
    x86_64::instructions::interrupts::disable();
    let value = if success { DEBUG_EXIT_SUCCESS } else { DEBUG_EXIT_FAILURE };
    // The verdict may still be in the console's ring, left to a drainer
    // on another CPU: out with it before QEMU goes.
    crate::console::flush_all();
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is QEMU's debug-exit device, or unused on a PC (it
    // is outside every standard legacy device's range); reading it has no
    // effect on either.
    if unsafe { port.read() } == DEBUG_EXIT_READS {
        // SAFETY: as above; the write ends QEMU.
        unsafe { port.write(value) };
        crate::time::spin_ns(DEBUG_EXIT_WAIT_NS);
    }
    // Still running: no debug-exit device. The verdict can only go to the
    // console now; the other CPUs stop first so that it is the last line.
    let others = crate::smp::online_count().saturating_sub(1);
    if others > 0 {
        super::ipi::stop_others(others, POWER_OFF_WAIT_NS);
    }
    let verdict = if success { "success" } else { "failure" };
    if super::sleep::available() {
        say(format_args!("power: powering off through ACPI S5 ({verdict})"));
        super::sleep::enter_s5();
        crate::time::spin_ns(POWER_OFF_WAIT_NS);
        say(format_args!("power: ACPI S5 did not power off the machine; halting"));
    } else {
        say(format_args!("power: no ACPI power off on this machine ({verdict}); halting"));
    }
    halt_forever()
}

/// Resets the machine: `first` first (if given), then every other method
/// in order. Stops the other CPUs before it starts. Never returns.
pub fn reset(first: Option<ResetMethod>) -> ! {
    x86_64::instructions::interrupts::disable();
    let others = crate::smp::online_count().saturating_sub(1);
    if others > 0 {
        super::ipi::stop_others(others, RESET_WAIT_NS);
    }
    let order = first.into_iter().chain(ResetMethod::ALL.into_iter().filter(|&m| Some(m) != first));
    for method in order {
        let tried = match method {
            ResetMethod::Acpi => ACPI_RESET.get().copied().map(acpi_reset).is_some(),
            ResetMethod::Cf9 => {
                cf9_reset();
                true
            }
            ResetMethod::Kbd => {
                kbd_reset();
                true
            }
            ResetMethod::Triple => triple_fault(),
        };
        if tried {
            crate::time::spin_ns(RESET_WAIT_NS);
            say(format_args!("power: {} reset did not reset the machine", method.as_str()));
        } else {
            say(format_args!("power: no {} reset on this machine", method.as_str()));
        }
    }
    // The triple fault comes in every order, and does not return.
    unreachable!("power: every reset method returned")
}

/// Writes a line straight to the console: the other CPUs are stopped.
fn say(args: core::fmt::Arguments) {
    crate::console::emergency(|out| {
        let _ = writeln!(out, "{args}");
    });
}

fn acpi_reset(register: ResetRegister) {
    say(format_args!("power: resetting through the ACPI reset register"));
    match register {
        // SAFETY: the register the firmware names for resetting; writing
        // its value is what it is for.
        ResetRegister::Port(port, value) => unsafe { Port::<u8>::new(port).write(value) },
        // SAFETY: as above, mapped uncached at boot.
        ResetRegister::Memory(virt, value) => unsafe { core::ptr::write_volatile(virt as *mut u8, value) },
        ResetRegister::PciConfig(device, function, offset, value) => {
            let address =
                PCI_CONFIG_ENABLE | u32::from(device) << 11 | u32::from(function) << 8 | u32::from(offset & 0xfc);
            // SAFETY: PCI configuration mechanism #1, on the register the
            // firmware names; nothing else uses it now.
            unsafe {
                Port::<u32>::new(PCI_CONFIG_ADDRESS).write(address);
                Port::<u8>::new(PCI_CONFIG_DATA + u16::from(offset & 3)).write(value);
            }
        }
    }
}

/// The reset control register of Intel (and compatible) chipsets: a hard
/// reset asked for, then started (Linux's `reboot=pci`).
fn cf9_reset() {
    say(format_args!("power: resetting through port 0xcf9"));
    let mut port = Port::<u8>::new(RESET_CONTROL_PORT);
    // SAFETY: the chipset's reset control register, or nothing; these
    // writes can only reset the machine.
    unsafe {
        port.write(RESET_CONTROL_HARD);
        crate::time::spin_ns(50_000);
        port.write(RESET_CONTROL_HARD | RESET_CONTROL_START);
    }
}

/// Pulses the reset line through the 8042 keyboard controller, once its
/// input buffer is empty (or after [`KBD_WAIT_MS`]).
fn kbd_reset() {
    say(format_args!("power: resetting through the keyboard controller"));
    let mut port = Port::<u8>::new(KBD_STATUS_COMMAND_PORT);
    let deadline = crate::arch::cpu::rdtsc() + crate::time::tsc_hz() / 1000 * KBD_WAIT_MS;
    // SAFETY: the 8042's status and command port; reading the status has no
    // side effect, and this command only pulses the reset line.
    unsafe {
        while port.read() & KBD_INPUT_FULL != 0 && crate::arch::cpu::rdtsc() < deadline {
            core::hint::spin_loop();
        }
        port.write(KBD_PULSE_RESET);
    }
}

/// Loads an empty IDT and raises an exception: with no handler for it nor
/// for the double fault, the CPU shuts down, which resets a PC.
fn triple_fault() -> ! {
    say(format_args!("power: resetting through a triple fault"));
    let empty = x86_64::structures::DescriptorTablePointer { limit: 0, base: x86_64::VirtAddr::new(0) };
    // SAFETY: meant to bring the machine down: nothing runs after this.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3");
    }
    unreachable!("power: a triple fault returned")
}

/// Stops this CPU for good: interrupts off, then `hlt` in a loop (an NMI
/// can still wake it, hence the loop).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
