//! Port I/O for drivers: `in` and `out` on single bytes.
//!
//! They touch no memory, so they are safe to call: a port the process was
//! not given (`ioport_enable`) raises a general-protection fault, and the
//! kernel ends the process.

use core::arch::asm;

/// Reads the byte at I/O port `port`.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port input touches no memory and only the named registers;
    // without the port, the CPU faults instead (see the module doc).
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Writes `value` to I/O port `port`.
pub fn outb(port: u16, value: u8) {
    // SAFETY: as in inb.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}
