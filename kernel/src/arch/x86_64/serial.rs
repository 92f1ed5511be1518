//! COM1, the 16550 UART at I/O port 0x3f8: the kernel's console.
//!
//! Real PCs often have no serial port; [`init`] probes for one through the
//! scratch register and, if it finds none, output is dropped instead of
//! spinning forever on a status register that never changes.
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
/// Register offsets from the base (16550 data sheet).
const DATA: u16 = 0;
const INT_ENABLE: u16 = 1;
const FIFO_CTRL: u16 = 2;
const LINE_CTRL: u16 = 3;
const MODEM_CTRL: u16 = 4;
const LINE_STATUS: u16 = 5;
const SCRATCH: u16 = 7;
/// LINE_CTRL: divisor latch access, and 8 data bits / no parity / 1 stop.
const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;
/// FIFO_CTRL: enable and clear both FIFOs, 14-byte threshold.
const FCR_ENABLE_CLEAR: u8 = 0xc7;
/// MODEM_CTRL: DTR and RTS.
const MCR_DTR_RTS: u8 = 0x03;
/// LINE_STATUS: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 0x20;
/// 115200 baud: the divisor of the 1.8432 MHz / 16 clock.
const DIVISOR_115200: u8 = 1;
/// A byte takes ~87 µs at 115200 baud; this bounds the wait at well over
/// that on any machine, so a wedged UART cannot hang the kernel.
const TX_SPIN_LIMIT: u32 = 1_000_000;

pub struct SerialPort {
    base: u16,
    present: AtomicBool,
}

impl SerialPort {
    fn port(&self, offset: u16) -> Port<u8> {
        Port::new(self.base + offset)
    }

    /// Whether a UART answered at [`init`].
    pub fn present(&self) -> bool {
        self.present.load(Ordering::Relaxed)
    }

    fn write_reg(&self, offset: u16, value: u8) {
        // SAFETY: the UART's registers have no memory side effects.
        unsafe { self.port(offset).write(value) }
    }

    fn read_reg(&self, offset: u16) -> u8 {
        // SAFETY: as in write_reg.
        unsafe { self.port(offset).read() }
    }

    fn probe_and_init(&self) {
        // A missing UART reads back 0xff (floating bus), not what we wrote.
        self.write_reg(SCRATCH, 0x5a);
        let present = self.read_reg(SCRATCH) == 0x5a;
        self.present.store(present, Ordering::Relaxed);
        if !present {
            return;
        }
        self.write_reg(INT_ENABLE, 0);
        self.write_reg(LINE_CTRL, LCR_DLAB);
        self.write_reg(DATA, DIVISOR_115200);
        self.write_reg(INT_ENABLE, 0);
        self.write_reg(LINE_CTRL, LCR_8N1);
        self.write_reg(FIFO_CTRL, FCR_ENABLE_CLEAR);
        self.write_reg(MODEM_CTRL, MCR_DTR_RTS);
    }

    /// Sends one byte: waits (a bounded time) for room in the transmitter,
    /// then writes it. Callers serialise themselves (console.rs).
    pub fn write_byte(&self, byte: u8) {
        if !self.present() {
            return;
        }
        for _ in 0..TX_SPIN_LIMIT {
            if self.read_reg(LINE_STATUS) & LSR_THR_EMPTY != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        self.write_reg(DATA, byte);
    }
}

impl SerialPort {
    /// Writes `bytes` as they are, but for a carriage return before each
    /// line feed (what a terminal on the other end expects).
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
    }
}

impl fmt::Write for &SerialPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// COM1. It has no lock of its own: the console (console.rs) is its one
/// writer, and decides who may write when.
pub static COM1_PORT: SerialPort = SerialPort { base: COM1, present: AtomicBool::new(false) };

pub fn init() {
    COM1_PORT.probe_and_init();
}
