//! The screen console: the framebuffer the loader set up (VBE under a
//! BIOS, GOP under UEFI; boot.S asks for 1024x768x32), with text drawn by
//! ferrite_screen into a back buffer in main memory and copied out to the
//! framebuffer, mapped write-combining, a changed pixel line at a time.
//! The framebuffer is never read (reads of video memory are slow on real
//! hardware).
//!
//! console.rs is the only caller, from whoever drains the console's ring
//! (one CPU at a time), so the lock here is never contended but by the
//! panic path, which takes it by force ([`force_unlock`]).
//!
//! **When the screen is updated.** Text is drawn into the back buffer as
//! it is drained; the framebuffer gets it ([`flush`]) when the console has
//! nothing more to send, at most every [`FLUSH_INTERVAL_NS`] while output
//! keeps coming, never with interrupts off but in the panic path, and at
//! once in the panic path.
use crate::boot_info::{self, FramebufferKind};
use crate::mem::paging::{self, Cache};
use ferrite_screen::{Channel, PixelFormat, TextScreen};

/// While output keeps coming, the framebuffer is updated this often.
const FLUSH_INTERVAL_NS: u64 = 16_000_000;

struct Screen {
    text: TextScreen,
    /// The framebuffer's virtual address and pitch.
    fb: u64,
    pitch: usize,
    last_flush: u64,
}

static SCREEN: spin::Mutex<Option<Screen>> = spin::Mutex::new(None);

/// Sets up the screen console on the loader's framebuffer. Says on the
/// log (serial) why not, if it cannot: no framebuffer, a format it cannot
/// draw (EGA text, a palette, an odd depth), no memory for the back
/// buffer.
pub fn init() -> bool {
    let Some(fb) = boot_info::get().framebuffer() else {
        log::info!("screen: the loader set up no framebuffer; no screen console");
        return false;
    };
    let (width, height) = (fb.width as usize, fb.height as usize);
    let FramebufferKind::Rgb([r, g, b]) = fb.kind else {
        log::warn!("screen: a {:?} framebuffer ({width}x{height}) is not supported; no screen console", fb.kind);
        return false;
    };
    let channel = |(position, size)| Channel { position, size };
    let format = match PixelFormat::new(fb.bpp, channel(r), channel(g), channel(b)) {
        Ok(format) => format,
        Err(e) => {
            log::warn!("screen: the framebuffer's format ({e}) is not supported; no screen console");
            return false;
        }
    };
    let pitch = fb.pitch as usize;
    if width.checked_mul(format.bytes_per_pixel()).is_none_or(|line| line > pitch) {
        log::warn!(
            "screen: the framebuffer's pitch ({pitch}) is less than a line of {width} pixels; no screen console"
        );
        return false;
    }
    let text = match TextScreen::new(format, width, height) {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => {
            log::warn!("screen: the framebuffer's {e} is not supported; no screen console");
            return false;
        }
        Err(_) => {
            log::warn!("screen: no memory for a {width}x{height} back buffer; no screen console");
            return false;
        }
    };
    let len = pitch as u64 * height as u64;
    let virt = match paging::map_device(fb.phys, len, Cache::WriteCombining) {
        Ok(virt) => virt,
        Err(e) => {
            log::warn!("screen: cannot map the framebuffer at {:#x} ({e:?}); no screen console", fb.phys);
            return false;
        }
    };
    let (cols, rows) = text.size();
    log::info!(
        "screen: {width}x{height}, {} bpp at {:#x}, {cols}x{rows} characters, {}",
        fb.bpp,
        fb.phys,
        if crate::arch::cpu::features().pat { "write-combining" } else { "uncached (no PAT)" }
    );
    *SCREEN.lock() = Some(Screen { text, fb: virt, pitch, last_flush: 0 });
    true
}

/// Draws `bytes` (console text) into the back buffer.
pub fn write(bytes: &[u8]) {
    if let Some(s) = SCREEN.lock().as_mut() {
        s.text.write(bytes);
    }
}

/// Copies what changed to the framebuffer: now if `now`, else only if the
/// last copy is [`FLUSH_INTERVAL_NS`] old.
pub fn flush(now: bool) {
    let mut guard = SCREEN.lock();
    let Some(s) = guard.as_mut() else { return };
    let tsc = crate::arch::cpu::rdtsc();
    if !s.text.needs_flush() || (!now && crate::time::tsc_to_ns(tsc.wrapping_sub(s.last_flush)) < FLUSH_INTERVAL_NS) {
        return;
    }
    let (fb, pitch) = (s.fb, s.pitch);
    s.text.flush(|y, line| {
        // SAFETY: y is below the framebuffer's height and a line is no
        // longer than the pitch (checked in init), so this stays inside
        // the mapping of pitch * height bytes; nothing else writes there.
        unsafe { core::ptr::copy_nonoverlapping(line.as_ptr(), (fb + (y * pitch) as u64) as *mut u8, line.len()) };
    });
    // Write-combined stores are buffered: push them out (before a power
    // off, say).
    // SAFETY: sfence only orders stores.
    unsafe { core::arch::asm!("sfence", options(nostack, preserves_flags)) };
    s.last_flush = tsc;
}

/// Waits up to `ns` for whoever holds the screen's lock to let go.
pub fn wait_unlocked(ns: u64) {
    let start = crate::arch::cpu::rdtsc();
    while SCREEN.is_locked() && crate::time::tsc_to_ns(crate::arch::cpu::rdtsc().wrapping_sub(start)) < ns {
        core::hint::spin_loop();
    }
}

/// Releases the screen's lock whoever holds it.
///
/// # Safety
///
/// Only for paths that never return to what they interrupted (console.rs's
/// `emergency`): the holder's drawing may be cut short, which can garble a
/// character but not leave the screen's state out of bounds.
pub unsafe fn force_unlock() {
    // SAFETY: as the caller promises.
    unsafe { SCREEN.force_unlock() };
}
