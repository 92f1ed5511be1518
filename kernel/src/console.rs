//! The console: log records and bare lines, on COM1.
//!
//! Every record is one line, `[seconds.micros] cpuN LEVEL subsystem: message`
//! (messages name their subsystem themselves),
//! written whole under the serial lock (an [`IrqSpinlock`]), so lines never
//! interleave and an interrupt handler may log. The panic and fatal-exception
//! paths use [`emergency`], which takes the port even if the CPU they
//! interrupted held it.
use crate::arch::serial::{SerialPort, COM1_PORT};
use crate::sync::IrqSpinlock;
use core::fmt::{self, Write};

/// Writes a bare line (no log prefix): test results, the final tally.
pub fn print_line(args: fmt::Arguments) {
    let mut port = COM1_PORT.lock();
    let _ = port.write_fmt(args);
    let _ = port.write_str("\n");
}

/// Writes bytes as they are (a user program's `write`), in one piece.
pub fn write_bytes(bytes: &[u8]) {
    COM1_PORT.lock().write_bytes(bytes);
}

/// Prints a bare line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}

/// Runs `f` with the console, taking it by force if it is held. Only for
/// paths that never return to what they interrupted.
pub fn emergency(f: impl FnOnce(&mut SerialPort)) {
    force_unlock(&COM1_PORT);
    f(&mut COM1_PORT.lock());
}

fn force_unlock<T>(lock: &IrqSpinlock<T>) {
    // SAFETY: callers of `emergency` never return to the interrupted holder.
    unsafe { lock.force_unlock() };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = crate::time::uptime_us();
        let mut port = COM1_PORT.lock();
        let _ = writeln!(
            port,
            "[{:5}.{:06}] cpu{} {:5} {}",
            us / 1_000_000,
            us % 1_000_000,
            crate::percpu::cpu_index(),
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

pub fn init_logger() {
    // The only logger; set_logger fails only if one is already set.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
