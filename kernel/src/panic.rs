//! The panic handler: stop the other CPUs, report, power off with a
//! failure status (at once, after `panic=<n>` seconds, or never with
//! `panic=halt`, which keeps the report on a PC's screen).
//!
//! It allocates nothing and takes the console by force (the panicking code,
//! or a CPU it just stopped, may have held it). Other CPUs get a STOP IPI
//! and, if that does not stop them (interrupts off), an NMI. A second CPU
//! that panics meanwhile halts and leaves the report to the first; a panic
//! inside the panic path powers off at once.
use crate::arch::{ipi, power};
use crate::percpu;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};
use ferrite_kcore::cmdline::AfterPanic;

/// 1 + the index of the CPU that is handling a panic; 0 if none.
static PANICKING_CPU: AtomicU32 = AtomicU32::new(0);
const STOP_WAIT_NS: u64 = 100_000_000;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    let cpu = percpu::cpu_index();
    if let Err(first) = PANICKING_CPU.compare_exchange(0, cpu + 1, Ordering::SeqCst, Ordering::SeqCst) {
        if first == cpu + 1 {
            power::power_off(false); // panicked while panicking
        }
        power::halt_forever(); // the first panicking CPU reports and powers off
    }
    let others = crate::smp::online_count().saturating_sub(1);
    let after = crate::cmdline::parsed().map_or(AfterPanic::default(), |o| o.panic);
    let stopped = if others > 0 { ipi::stop_others(others, STOP_WAIT_NS) } else { 0 };
    crate::console::emergency(|out| {
        let _ = write!(out, "\nPANIC on cpu{cpu}");
        if let Some(loc) = info.location() {
            let _ = write!(out, " at {}:{}", loc.file(), loc.line());
        }
        let _ = writeln!(out, ": {}", info.message());
        if others > 0 {
            if stopped >= others {
                let _ = writeln!(out, "panic: stopped all other CPUs ({others})");
            } else {
                let _ = writeln!(out, "panic: {} of {others} other CPUs did not stop", others - stopped);
            }
        }
        let _ = match after {
            AfterPanic::PowerOff { after_s: 0 } => writeln!(out, "ferrite: powering off (failure)"),
            AfterPanic::PowerOff { after_s } => writeln!(out, "ferrite: powering off in {after_s} s (failure)"),
            AfterPanic::Halt => writeln!(out, "ferrite: halted (panic=halt); the machine stays on"),
        };
    });
    match after {
        AfterPanic::PowerOff { after_s } => {
            crate::time::spin_ns(u64::from(after_s) * 1_000_000_000);
            power::power_off(false)
        }
        AfterPanic::Halt => {
            crate::console::flush_all();
            power::halt_forever()
        }
    }
}
