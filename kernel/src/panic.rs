//! The panic handler: report, then power off with a failure status.
//!
//! It allocates nothing and takes the console by force (the panicking code
//! may have held it). A panic inside the panic path powers off at once.
use crate::arch::power;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, Ordering::SeqCst) {
        power::power_off(false);
    }
    let cpu = crate::cpu_index();
    crate::console::emergency(|out| {
        let _ = write!(out, "\nPANIC on cpu{cpu}");
        if let Some(loc) = info.location() {
            let _ = write!(out, " at {}:{}", loc.file(), loc.line());
        }
        let _ = writeln!(out, ": {}", info.message());
        let _ = writeln!(out, "ferrite: powering off (failure)");
    });
    power::power_off(false)
}
