//! Port I/O for drivers: `in` and `out` on bytes and 16-bit words.
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

/// Reads the 16-bit word at I/O port `port`.
pub fn inw(port: u16) -> u16 {
    let value: u16;
    // SAFETY: as in inb.
    unsafe { asm!("in ax, dx", in("dx") port, out("ax") value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Writes the 16-bit `value` to I/O port `port`.
pub fn outw(port: u16, value: u16) {
    // SAFETY: as in inb.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags)) };
}
