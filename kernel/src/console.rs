//! The console: log records, bare lines and user programs' output, on a
//! serial port and on the screen (screen.rs), as `console=` says (both by
//! default).
//!
//! **Kernel lines.** Every record is one line, `[seconds.micros] cpuN LEVEL
//! subsystem: message` (messages name their subsystem themselves), and
//! every kernel line starts at the beginning of a line: if a program left
//! one unfinished, a newline comes first.
//!
//! **User output** is marked and cannot pass for the kernel's: every line a
//! program writes starts with `[pid] `, and control characters (everything
//! below 0x20 but tab and newline, DEL, and the C1 controls U+0080-U+009F)
//! are shown escaped (`\x0d`, `\u{9b}`), so a program can neither start a
//! line that looks like a kernel record or a test verdict, nor move the
//! cursor over one. A line two writers share is split: a program's
//! unfinished line ends where another writer's output begins, and goes on
//! under a fresh prefix.
//!
//! **No long stretches with interrupts off.** Output goes into a ring
//! buffer first, under a lock that is held for a copy of a few dozen bytes
//! (an [`IrqSpinlock`], so an interrupt handler may log); whoever wrote
//! then *drains* the ring to the UART with the lock dropped and its own
//! interrupts as they were: a program's `write` with interrupts on, at the
//! UART's pace (87 µs a byte at 115200 baud on a PC). One CPU drains at a
//! time (`DRAINING`); a writer that finds another draining leaves its
//! bytes to it. A writer with interrupts off (an interrupt handler) drains
//! at most a FIFO's worth, so it never waits on the UART; the idle loop
//! and the next writer send the rest. When the ring is full, a program's
//! `write` waits for room; a kernel line that cannot wait is dropped and
//! counted, and the count is reported with the next line that fits.
//!
//! The screen is drawn by the same drainer, and copied to the framebuffer
//! when the ring is empty (at most every 16 ms while output keeps coming),
//! by a drainer with interrupts on or by the idle loop (screen.rs).
//!
//! The panic and fatal-exception paths use [`emergency`], which takes the
//! ring, the UART and the screen even if the CPU they interrupted held
//! them. Nothing here runs in an NMI (trap.rs defers what an NMI would
//! log).
use crate::arch::serial;
use crate::sync::IrqSpinlock;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;

/// The ring's size.
const RING: usize = 16 * 1024;
/// The room for a kernel line; a longer one is cut short (and ends in
/// `…`).
const LINE_MAX: usize = 480;
/// What a drain sends with interrupts off: the UART's FIFO, which takes it
/// without waiting.
const FIFO: usize = 16;
/// Bytes of user output encoded per hold of the ring's lock.
const USER_PIECE: usize = 64;
/// The most a piece can grow: every byte escaped to `\u{9b}`-style six,
/// plus a newline and a prefix.
const PIECE_MAX_OUT: usize = USER_PIECE * 6 + 32;

struct Ring {
    buf: [u8; RING],
    /// Where the oldest byte is, and how many there are.
    head: usize,
    len: usize,
    /// The last byte written was a newline (or nothing was).
    at_line_start: bool,
    /// The process whose line is unfinished (0: a kernel line, or none).
    owner: u64,
    /// Kernel bytes dropped for want of room, not yet reported.
    dropped: u64,
}

impl Ring {
    fn room(&self) -> usize {
        RING - self.len
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len == RING {
                return;
            }
            self.buf[(self.head + self.len) % RING] = b;
            self.len += 1;
        }
        if let Some(&last) = bytes.last() {
            self.at_line_start = last == b'\n';
        }
    }

    fn pop(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for slot in &mut out[..n] {
            *slot = self.buf[self.head];
            self.head = (self.head + 1) % RING;
        }
        self.len -= n;
        n
    }

    /// Ends a line another writer left unfinished.
    fn end_foreign_line(&mut self, owner: u64) {
        if !self.at_line_start && self.owner != owner {
            self.push(b"\n");
        }
    }
}

static CONSOLE: IrqSpinlock<Ring> =
    IrqSpinlock::new(Ring { buf: [0; RING], head: 0, len: 0, at_line_start: true, owner: 0, dropped: 0 });
/// A CPU is sending the ring's bytes to the UART.
static DRAINING: AtomicBool = AtomicBool::new(false);
/// The console goes to the serial port, and to the screen ([`configure`]).
static TO_SERIAL: AtomicBool = AtomicBool::new(true);
static TO_SCREEN: AtomicBool = AtomicBool::new(false);

/// Sends `bytes` to where the console goes. The caller is the drainer.
fn send(bytes: &[u8]) {
    if TO_SERIAL.load(Ordering::Relaxed) {
        serial::console().write_bytes(bytes);
    }
    if TO_SCREEN.load(Ordering::Relaxed) {
        crate::screen::write(bytes);
    }
}

/// Set once [`configure`] has picked the serial port: until then output
/// waits in the ring (a few KiB at most), so that all of it, from the
/// first line, reaches the port `console=` or the firmware names.
static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Text being formatted, on the stack (nothing here allocates): up to `N`
/// bytes, with room after them for an ellipsis and a newline.
struct Line<const N: usize = LINE_MAX> {
    buf: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> Line<N> {
    fn new() -> Self {
        Line { buf: [0; N], len: 0, cut: false }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Write for Line<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len + 4 >= N {
                self.cut = true;
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Puts a kernel line (formatted from `args`) on the console.
fn kernel_line(args: fmt::Arguments) {
    let mut line: Line = Line::new();
    let _ = line.write_fmt(args);
    if line.cut {
        line.buf[line.len..line.len + 3].copy_from_slice("…".as_bytes());
        line.len += 3;
    }
    line.buf[line.len] = b'\n';
    line.len += 1;
    let bytes = line.bytes();
    loop {
        {
            let mut ring = CONSOLE.lock();
            if ring.room() > bytes.len() + 64 {
                ring.end_foreign_line(0);
                if ring.dropped > 0 {
                    let mut note: Line<96> = Line::new();
                    let _ = writeln!(
                        note,
                        "console: {} bytes of kernel output dropped (the console was full)",
                        ring.dropped
                    );
                    ring.dropped = 0;
                    ring.push(note.bytes());
                }
                ring.push(bytes);
                ring.owner = 0;
                break;
            }
            if !may_wait() || !CONFIGURED.load(Ordering::Acquire) {
                // Cannot wait for the UART here (an interrupt handler, a
                // lock holder, or no port picked yet): drop the line, and
                // say so later.
                ring.dropped += bytes.len() as u64;
                return;
            }
        }
        drain(usize::MAX);
        core::hint::spin_loop();
    }
    drain(if may_wait() { usize::MAX } else { FIFO });
}

/// Set once the boot CPU has interrupts on: before that, output goes out
/// at once whatever the interrupt flag says (one CPU, nothing to delay).
static BOOTED: AtomicBool = AtomicBool::new(false);

/// The kernel is up: from now on a writer with interrupts off leaves most
/// of its bytes to others.
pub fn booted() {
    BOOTED.store(true, Ordering::Release);
}

/// Whether this writer may wait for the UART.
fn may_wait() -> bool {
    interrupts::are_enabled() || !BOOTED.load(Ordering::Acquire)
}

/// Writes a bare line (no log prefix): test results, the final tally.
pub fn print_line(args: fmt::Arguments) {
    kernel_line(args);
}

/// Writes a user program's `bytes` for process `pid`, marked and escaped
/// (see the module doc), waiting for room if the console is busy. Called
/// with interrupts on.
pub fn write_user(pid: u64, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut n = rest.len().min(USER_PIECE);
        // Keep a C1 control's two bytes together.
        if n < rest.len() && rest[n - 1] == 0xc2 {
            n += 1;
        }
        let (piece, after) = rest.split_at(n);
        loop {
            {
                let mut ring = CONSOLE.lock();
                if ring.room() >= PIECE_MAX_OUT {
                    encode_user(&mut ring, pid, piece);
                    break;
                }
            }
            drain(usize::MAX);
            core::hint::spin_loop();
        }
        drain(usize::MAX);
        rest = after;
    }
}

/// Appends `piece` of process `pid`'s output: a prefix at each line start,
/// control characters escaped.
fn encode_user(ring: &mut Ring, pid: u64, piece: &[u8]) {
    ring.end_foreign_line(pid);
    ring.owner = pid;
    let mut i = 0;
    while i < piece.len() {
        if ring.at_line_start {
            let mut prefix: Line<32> = Line::new();
            let _ = write!(prefix, "[{pid}] ");
            ring.push(prefix.bytes());
            ring.at_line_start = false;
        }
        let b = piece[i];
        let mut esc: Line<16> = Line::new();
        match b {
            b'\n' | b'\t' => ring.push(&[b]),
            0x00..=0x1f | 0x7f => {
                let _ = write!(esc, "\\x{b:02x}");
                ring.push(esc.bytes());
            }
            0xc2 if piece.get(i + 1).is_some_and(|c| (0x80..=0x9f).contains(c)) => {
                let _ = write!(esc, "\\u{{{:x}}}", piece[i + 1]);
                ring.push(esc.bytes());
                i += 1;
            }
            _ => ring.push(&[b]),
        }
        i += 1;
    }
}

/// Sends what the ring holds to the UART, up to `budget` bytes, with the
/// ring's lock dropped; nothing if another CPU is at it (it sends what
/// comes meanwhile too).
fn drain(budget: usize) {
    if !CONFIGURED.load(Ordering::Acquire) {
        return;
    }
    loop {
        if DRAINING.swap(true, Ordering::Acquire) {
            return;
        }
        // Not preempted while draining (others leave their bytes to us);
        // only where preemption exists, in thread context.
        let _preempt =
            (interrupts::are_enabled() && BOOTED.load(Ordering::Acquire)).then(crate::sched::PreemptGuard::new);
        let mut sent = 0;
        let mut emptied = false;
        while sent < budget {
            let mut chunk = [0u8; FIFO];
            let n = CONSOLE.lock().pop(&mut chunk[..FIFO.min(budget - sent)]);
            if n == 0 {
                emptied = true;
                break;
            }
            send(&chunk[..n]);
            sent += n;
        }
        // The screen: what was drawn, to the framebuffer (a copy of up to
        // the whole screen; not with interrupts off).
        if TO_SCREEN.load(Ordering::Relaxed) && interrupts::are_enabled() {
            crate::screen::flush(emptied);
        }
        DRAINING.store(false, Ordering::Release);
        // Bytes pushed while we held DRAINING were left to us.
        if sent >= budget || CONSOLE.lock().len == 0 {
            return;
        }
    }
}

/// Sends some of what is waiting, with interrupts on: for the idle loop.
pub fn flush_some() {
    if CONSOLE.try_with(|r| r.len).unwrap_or(0) > 0 {
        drain(4 * FIFO);
    } else if TO_SCREEN.load(Ordering::Relaxed) && !DRAINING.swap(true, Ordering::Acquire) {
        // DRAINING first: an interrupt handler that logs meanwhile then
        // leaves its bytes to us instead of taking the screen's lock this
        // CPU holds. Not preempted while holding it, as in drain: a thread
        // woken here that waits for the console would otherwise spin on
        // this CPU for good, the idle thread (the holder) never running.
        let preempt = crate::sched::PreemptGuard::new();
        crate::screen::flush(true);
        DRAINING.store(false, Ordering::Release);
        drop(preempt);
        // Bytes pushed meanwhile were left to us.
        if CONSOLE.try_with(|r| r.len).unwrap_or(0) > 0 {
            drain(4 * FIFO);
        }
    }
}

/// Sends everything the ring holds, and brings the screen up to date,
/// whatever the interrupt flag: for power off, so that the verdict is out
/// before the machine goes. Waits up to 100 ms for a drainer on another
/// CPU to finish.
pub fn flush_all() {
    let start = crate::arch::cpu::rdtsc();
    while CONSOLE.try_with(|r| r.len).unwrap_or(1) > 0 || DRAINING.load(Ordering::Acquire) {
        if crate::time::tsc_to_ns(crate::arch::cpu::rdtsc().wrapping_sub(start)) > 100_000_000 {
            return;
        }
        drain(usize::MAX);
        core::hint::spin_loop();
    }
    if TO_SCREEN.load(Ordering::Relaxed) && !DRAINING.swap(true, Ordering::Acquire) {
        crate::screen::flush(true);
        DRAINING.store(false, Ordering::Release);
    }
}

/// How long [`emergency`] waits for the screen's holder.
const EMERGENCY_WAIT_NS: u64 = 50_000_000;

/// Where [`emergency`] writes: the serial port and the screen, whichever
/// the console goes to.
pub struct Emergency(());

impl Write for Emergency {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        send(s.as_bytes());
        Ok(())
    }
}

/// Runs `f` with the console's serial port and screen, after what the ring
/// held, taking them by force; the screen is up to date when it returns.
/// Only for paths that never return to what they interrupted.
pub fn emergency(f: impl FnOnce(&mut Emergency)) {
    // A CPU copying to the screen (milliseconds) or drawing may still be
    // running (a fatal exception stops nobody first): give it a moment to
    // let go before taking the lock by force.
    crate::screen::wait_unlocked(EMERGENCY_WAIT_NS);
    // SAFETY: callers of `emergency` never return to the interrupted holder.
    unsafe {
        CONSOLE.force_unlock();
        crate::screen::force_unlock();
    }
    DRAINING.store(true, Ordering::Release);
    let mut ring = CONSOLE.lock();
    let mut chunk = [0u8; FIFO];
    loop {
        let n = ring.pop(&mut chunk);
        if n == 0 {
            break;
        }
        send(&chunk[..n]);
    }
    let mut out = Emergency(());
    if !ring.at_line_start {
        send(b"\n");
    }
    f(&mut out);
    if TO_SCREEN.load(Ordering::Relaxed) {
        crate::screen::flush(true);
    }
}

/// Runs `f` while holding the console's lock, as a CPU in the middle of a
/// write would: for the test that an NMI then does not deadlock.
pub fn hold_for_test(f: impl FnOnce()) {
    let _ring = CONSOLE.lock();
    f();
}

/// Prints a bare line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
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
        kernel_line(format_args!(
            "[{:5}.{:06}] cpu{} {:5} {}",
            us / 1_000_000,
            us % 1_000_000,
            crate::percpu::cpu_index(),
            record.level(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

pub fn init_logger() {
    // The only logger; set_logger fails only if one is already set.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Picks where the console goes once the command line, the memory and
/// the ACPI tables can be used: the screen unless `console=` says
/// `serial` or `ttyS<n>`, and a serial port unless it says `screen` (or
/// there is no screen: then the serial port, said so). The port is
/// `ttyS<n>` if that one exists, else the one the SPCR table names if it
/// exists, else the first that answered at boot (what early output
/// already went to). Says which.
pub fn configure(choice: Option<ferrite_kcore::cmdline::Console>, acpi_root: Option<ferrite_kcore::acpi::RootTable>) {
    use ferrite_kcore::acpi::{parse_spcr, GenericAddress};
    use ferrite_kcore::cmdline::Console;
    let spcr = acpi_root
        .and_then(|root| crate::acpi::read_table(root, b"SPCR").and_then(|t| parse_spcr(&t)).ok())
        .filter(|gas| gas.space == GenericAddress::IO)
        .and_then(|gas| serial::BASES.iter().position(|&b| u64::from(b) == gas.address));
    let wants_screen = matches!(choice, None | Some(Console::Screen) | Some(Console::Both));
    let screen = wants_screen && crate::screen::init();
    if choice == Some(Console::Screen) {
        if screen {
            TO_SERIAL.store(false, Ordering::Relaxed);
        } else {
            log::warn!("console: console=screen, but there is no screen console; keeping the serial port");
        }
    }
    TO_SCREEN.store(screen, Ordering::Relaxed);
    let wanted = match choice {
        Some(Console::Tty(n)) => Some((usize::from(n), "console=")),
        _ => spcr.map(|n| (n, "the ACPI SPCR table")),
    };
    if let Some((n, by)) = wanted {
        if serial::choose(Some(n)).is_err() {
            log::warn!("console: ttyS{n} (named by {by}) does not answer; keeping the port found at boot");
        }
    }
    let mut found: Line<64> = Line::new();
    for n in serial::present() {
        let _ = write!(found, " ttyS{n}");
    }
    CONFIGURED.store(true, Ordering::Release);
    let found = core::str::from_utf8(found.bytes()).unwrap_or("");
    let screen_note = if screen { " and on the screen" } else { "" };
    match serial::chosen() {
        _ if !TO_SERIAL.load(Ordering::Relaxed) => {
            log::info!("console: serial ports:{found}; the console is on the screen only (console=screen)")
        }
        Some(n) => log::info!("console: serial ports:{found}; the console is on ttyS{n}{screen_note}"),
        None if screen => log::info!("console: no serial port answered; the console is on the screen"),
        // Nobody sees this.
        None => log::warn!("console: no serial port answered, and there is no screen"),
    }
}
