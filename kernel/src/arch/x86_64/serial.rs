//! The legacy 16550 UARTs, COM1-COM4 (`ttyS0`-`ttyS3`): the kernel's serial
//! console is one of them.
//!
//! Real PCs often have no serial port, or one at COM2 only; [`init`] probes
//! all four (scratch register, then the UART's own loopback) and the
//! console uses the first that answers until [`choose`] says otherwise
//! (`console=ttyS<n>`, or the port the ACPI SPCR table names). A port that
//! never gets ready to send (a wedged UART) is given up after one bounded
//! wait, so it cannot stall the kernel byte after byte.
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use x86_64::instructions::port::Port;

/// COM1-COM4's I/O ports, in `ttyS` order.
pub const BASES: [u16; 4] = [0x3f8, 0x2f8, 0x3e8, 0x2e8];
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
/// MODEM_CTRL: loopback (transmit wired to receive), with RTS, OUT1, OUT2.
const MCR_LOOPBACK: u8 = 0x1e;
/// LINE_STATUS: a received byte is waiting.
const LSR_DATA_READY: u8 = 0x01;
/// LINE_STATUS: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 0x20;
/// 115200 baud: the divisor of the 1.8432 MHz / 16 clock.
const DIVISOR_115200: u8 = 1;
/// A byte takes ~87 µs at 115200 baud; this bounds the wait at well over
/// that on any machine (a port read takes about a microsecond), after
/// which the port is taken to be wedged and is not used again.
const TX_SPIN_LIMIT: u32 = 100_000;

pub struct SerialPort {
    base: u16,
    present: AtomicBool,
    wedged: AtomicBool,
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
        if self.read_reg(SCRATCH) != 0x5a {
            return;
        }
        self.write_reg(INT_ENABLE, 0);
        self.write_reg(LINE_CTRL, LCR_DLAB);
        self.write_reg(DATA, DIVISOR_115200);
        self.write_reg(INT_ENABLE, 0);
        self.write_reg(LINE_CTRL, LCR_8N1);
        self.write_reg(FIFO_CTRL, FCR_ENABLE_CLEAR);
        // Some other device can keep a scratch byte: a UART also hears
        // itself in loopback mode.
        self.write_reg(MODEM_CTRL, MCR_LOOPBACK);
        self.write_reg(DATA, 0xae);
        let mut heard = false;
        for _ in 0..1000 {
            if self.read_reg(LINE_STATUS) & LSR_DATA_READY != 0 {
                heard = self.read_reg(DATA) == 0xae;
                break;
            }
        }
        self.write_reg(MODEM_CTRL, MCR_DTR_RTS);
        self.present.store(heard, Ordering::Relaxed);
    }

    /// The port stopped taking bytes: not used again.
    pub fn wedged(&self) -> bool {
        self.wedged.load(Ordering::Relaxed)
    }

    /// Sends one byte: waits (a bounded time) for room in the transmitter,
    /// then writes it. Callers serialise themselves (console.rs).
    pub fn write_byte(&self, byte: u8) {
        if !self.present() {
            return;
        }
        for _ in 0..TX_SPIN_LIMIT {
            if self.read_reg(LINE_STATUS) & LSR_THR_EMPTY != 0 {
                self.write_reg(DATA, byte);
                return;
            }
            core::hint::spin_loop();
        }
        self.wedged.store(true, Ordering::Relaxed);
        self.present.store(false, Ordering::Relaxed);
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

const fn port(base: u16) -> SerialPort {
    SerialPort { base, present: AtomicBool::new(false), wedged: AtomicBool::new(false) }
}

/// COM1-COM4. They have no lock of their own: the console (console.rs) is
/// their one writer, and decides who may write when.
pub static PORTS: [SerialPort; 4] = [port(BASES[0]), port(BASES[1]), port(BASES[2]), port(BASES[3])];
/// What the console writes to when no port exists.
static NONE: SerialPort = port(0);
/// The console's port (an index into [`PORTS`]), or `NO_PORT`.
static CHOSEN: AtomicU8 = AtomicU8::new(NO_PORT);
const NO_PORT: u8 = u8::MAX;

/// Probes COM1-COM4 and gives the console the first that exists.
pub fn init() {
    for p in &PORTS {
        p.probe_and_init();
    }
    let first = PORTS.iter().position(SerialPort::present).map_or(NO_PORT, |i| i as u8);
    CHOSEN.store(first, Ordering::Relaxed);
}

/// The console's port (one that drops everything if there is none).
pub fn console() -> &'static SerialPort {
    PORTS.get(usize::from(CHOSEN.load(Ordering::Relaxed))).unwrap_or(&NONE)
}

/// Which port the console uses (`ttyS<n>`), if any.
pub fn chosen() -> Option<usize> {
    Some(usize::from(CHOSEN.load(Ordering::Relaxed))).filter(|&i| i < PORTS.len())
}

/// Moves the console to `ttyS<n>`, or to none (`None`). Fails, changing
/// nothing, if that port does not exist.
pub fn choose(n: Option<usize>) -> Result<(), ()> {
    match n {
        None => CHOSEN.store(NO_PORT, Ordering::Relaxed),
        Some(n) if PORTS.get(n).is_some_and(SerialPort::present) => CHOSEN.store(n as u8, Ordering::Relaxed),
        Some(_) => return Err(()),
    }
    Ok(())
}

/// `ttyS` numbers of the ports that answered, for the log.
pub fn present() -> impl Iterator<Item = usize> {
    (0..PORTS.len()).filter(|&i| PORTS[i].present() || PORTS[i].wedged())
}
