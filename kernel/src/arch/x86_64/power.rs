//! Powering off: through QEMU's isa-debug-exit device where it exists.
//!
//! QEMU (`-device isa-debug-exit,iobase=0xf4`) exits with status
//! `(value << 1) | 1` when a value is written to the port. scripts/qemu.sh
//! maps these statuses back to success and failure; keep them in sync.
use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;
const DEBUG_EXIT_SUCCESS: u32 = 0x10;
const DEBUG_EXIT_FAILURE: u32 = 0x11;

/// Powers off reporting `success`; where there is no isa-debug-exit device
/// (a real PC), stops the CPU instead.
pub fn power_off(success: bool) -> ! {
    let value = if success { DEBUG_EXIT_SUCCESS } else { DEBUG_EXIT_FAILURE };
    // SAFETY: port 0xf4 is QEMU's debug-exit device, or unused on a PC
    // (it is outside every standard legacy device's range).
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(value) };
    halt_forever()
}

/// Stops this CPU for good: interrupts off, then `hlt` in a loop (an NMI
/// can still wake it, hence the loop).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
