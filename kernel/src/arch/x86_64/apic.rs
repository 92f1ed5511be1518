//! The local APIC: xAPIC (MMIO) or x2APIC (MSRs), chosen by CPUID, and its
//! timer, whose rate (and the TSC's) CPUID gives or the boot CPU measures
//! once against a reference clock (`refclock`).
//!
//! Register offsets are the xAPIC MMIO offsets (Intel SDM vol. 3, table
//! 11-1); in x2APIC mode the same register is MSR `0x800 + offset / 16`.
use super::cpu;
use super::idt::vector;
use super::refclock::RefClock;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Once;
use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE (Intel SDM vol. 3, 11.4.4).
const MSR_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// First x2APIC register MSR.
const X2APIC_MSR_BASE: u32 = 0x800;

/// Register offsets.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Reg {
    Id = 0x20,
    Version = 0x30,
    TaskPriority = 0x80,
    Eoi = 0xb0,
    SpuriousVector = 0xf0,
    ErrorStatus = 0x280,
    IcrLow = 0x300,
    IcrHigh = 0x310,
    LvtTimer = 0x320,
    LvtLint0 = 0x350,
    LvtLint1 = 0x360,
    TimerInitialCount = 0x380,
    TimerCurrentCount = 0x390,
    TimerDivide = 0x3e0,
}

/// IA32_TSC_DEADLINE (SDM vol. 3, 11.5.4.1).
const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// ICR delivery status (xAPIC only): the previous IPI is still being sent.
const ICR_SEND_PENDING: u32 = 1 << 12;
/// Polls of the delivery-status bit before reporting a wedged APIC.
const ICR_SPIN_LIMIT: u32 = 1_000_000;

/// Spurious-vector register: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT bits.
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_ONE_SHOT: u32 = 0;
const LVT_TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// Timer divide configuration for divide-by-16 (SDM figure 11-10).
const TIMER_DIVIDE_BY_16: u32 = 0b0011;
/// Calibration: five windows of 2 ms of the reference clock (10 ms of
/// boot in all). Each window's error is its two brackets (`sample`: a few
/// microseconds under emulation, far less on hardware), so a few tenths of
/// a percent at worst, and the median drops the worst windows; Linux's
/// quick PIT calibration settles for the same order in about as long.
const CALIBRATION_WINDOWS_PER_S: u64 = 500;
const CALIBRATION_RUNS: usize = 5;
/// TSC ticks to wait for a reference clock to count through a window
/// before deciding it does not count: a quarter of a second at 4 GHz,
/// ten at 100 MHz (the slowest TSC believed).
const CALIBRATION_GIVE_UP_TSC: u64 = 1 << 30;
/// What the TSC is taken to run at when no clock can measure it: fast, so
/// that delays are too long rather than too short (time runs slow).
const GUESSED_TSC_HZ: u64 = 4_000_000_000;
/// The window over which the APIC timer is measured against the TSC.
const APIC_WINDOW_NS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Registers at this virtual address (mapped uncached).
    XApic(u64),
    X2Apic,
}

static MODE: Once<Mode> = Once::new();
/// Timer input frequency after the divider, in Hz.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// The timer runs in TSC-deadline mode (else one-shot count mode).
static DEADLINE_MODE: AtomicBool = AtomicBool::new(false);

/// An interrupt-command-register value (SDM vol. 3, figure 11-12): what
/// to send, and to which APIC ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icr {
    low: u32,
    dest: u32,
}

impl Icr {
    const DELIVERY_FIXED: u32 = 0b000 << 8;
    const DELIVERY_NMI: u32 = 0b100 << 8;
    const DELIVERY_INIT: u32 = 0b101 << 8;
    const DELIVERY_STARTUP: u32 = 0b110 << 8;
    const LEVEL_ASSERT: u32 = 1 << 14;
    const TRIGGER_LEVEL: u32 = 1 << 15;
    const SHORTHAND_ALL_EXCLUDING_SELF: u32 = 0b11 << 18;

    /// An interrupt on `vector` for the CPU with APIC ID `dest`.
    pub fn fixed(dest: u32, vector: u8) -> Self {
        Icr { low: Self::DELIVERY_FIXED | Self::LEVEL_ASSERT | u32::from(vector), dest }
    }
    /// A non-maskable interrupt.
    pub fn nmi(dest: u32) -> Self {
        Icr { low: Self::DELIVERY_NMI | Self::LEVEL_ASSERT, dest }
    }
    /// INIT, level-triggered, asserted: resets the target to wait for SIPI.
    pub fn init(dest: u32) -> Self {
        Icr { low: Self::DELIVERY_INIT | Self::TRIGGER_LEVEL | Self::LEVEL_ASSERT, dest }
    }
    /// INIT level de-assert, which older CPUs need after INIT (xAPIC only).
    pub fn init_deassert(dest: u32) -> Self {
        Icr { low: Self::DELIVERY_INIT | Self::TRIGGER_LEVEL, dest }
    }
    /// STARTUP: the target starts in real mode at `page` (below 1 MiB).
    pub fn startup(dest: u32, page: u32) -> Self {
        debug_assert!(page.is_multiple_of(4096) && page < 1 << 20);
        Icr { low: Self::DELIVERY_STARTUP | Self::LEVEL_ASSERT | (page >> 12), dest }
    }
    /// The same IPI to every CPU but this one (the destination is ignored).
    pub fn to_all_but_self(self) -> Self {
        Icr { low: self.low | Self::SHORTHAND_ALL_EXCLUDING_SELF, dest: 0 }
    }
}

/// Sends an IPI. Returns false if an xAPIC never finished sending it.
pub fn send(icr: Icr) -> bool {
    match mode() {
        Mode::X2Apic => {
            // WRMSR to the x2APIC ICR is not serializing: without a fence
            // the IPI could overtake this CPU's earlier stores (a mailbox
            // the target is about to read). SDM vol. 3, 11.12.3.
            // SAFETY: fences have no other effect; the x2APIC ICR is one
            // 64-bit MSR, and writing it sends.
            unsafe {
                core::arch::x86_64::_mm_mfence();
                core::arch::x86_64::_mm_lfence();
                Msr::new(X2APIC_MSR_BASE + (Reg::IcrLow as u32 >> 4))
                    .write(u64::from(icr.dest) << 32 | u64::from(icr.low))
            };
            true
        }
        Mode::XApic(_) => {
            if icr.dest > 0xff && icr.low & Icr::SHORTHAND_ALL_EXCLUDING_SELF == 0 {
                log::error!("apic: APIC ID {} cannot be addressed in xAPIC mode", icr.dest);
                return false;
            }
            // The two halves must not be split by an interrupt handler
            // that sends an IPI of its own.
            x86_64::instructions::interrupts::without_interrupts(|| {
                write(Reg::IcrHigh, icr.dest << 24);
                write(Reg::IcrLow, icr.low);
                for _ in 0..ICR_SPIN_LIMIT {
                    if read(Reg::IcrLow) & ICR_SEND_PENDING == 0 {
                        return true;
                    }
                    core::hint::spin_loop();
                }
                log::error!("apic: IPI {:?} still pending after {ICR_SPIN_LIMIT} polls", icr);
                false
            })
        }
    }
}

/// True when in x2APIC mode (no INIT de-assert, no delivery status).
pub fn is_x2apic() -> bool {
    matches!(mode(), Mode::X2Apic)
}

fn mode() -> Mode {
    *MODE.get().expect("local APIC used before apic::init_bsp")
}

fn read(reg: Reg) -> u32 {
    match mode() {
        // SAFETY: base maps this CPU's APIC page; the register exists.
        Mode::XApic(base) => unsafe { core::ptr::read_volatile((base + reg as u64) as *const u32) },
        // SAFETY: x2APIC mode is on, so this MSR exists.
        Mode::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + (reg as u32 >> 4)).read() as u32 },
    }
}

fn write(reg: Reg, value: u32) {
    match mode() {
        // SAFETY: as in read.
        Mode::XApic(base) => unsafe { core::ptr::write_volatile((base + reg as u64) as *mut u32, value) },
        // SAFETY: as in read.
        Mode::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + (reg as u32 >> 4)).write(u64::from(value)) },
    }
}

/// This CPU's APIC ID (all 32 bits in x2APIC mode, 8 in xAPIC mode).
pub fn id() -> u32 {
    match mode() {
        Mode::XApic(_) => read(Reg::Id) >> 24,
        Mode::X2Apic => read(Reg::Id),
    }
}

pub fn mode_name() -> &'static str {
    match mode() {
        Mode::XApic(_) => "xAPIC",
        Mode::X2Apic => "x2APIC",
    }
}

pub fn end_of_interrupt() {
    write(Reg::Eoi, 0);
}

/// Enables this CPU's local APIC in the mode the CPU supports best.
fn enable_local() {
    let mut base_msr = Msr::new(MSR_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU.
    let base = unsafe { base_msr.read() };
    let x2 = matches!(mode(), Mode::X2Apic);
    let new = base | APIC_BASE_ENABLE | if x2 { APIC_BASE_X2APIC } else { 0 };
    if new != base {
        // SAFETY: enabling (x2)APIC mode; the base address is unchanged.
        unsafe { base_msr.write(new) };
    }
    write(Reg::TaskPriority, 0);
    write(Reg::SpuriousVector, SVR_ENABLE | u32::from(vector::SPURIOUS));
    // Clear stale errors: the ESR must be written before it is read.
    write(Reg::ErrorStatus, 0);
    let _ = read(Reg::ErrorStatus);
}

/// Sets up the boot CPU's local APIC, learns its timer's rate and the
/// TSC's (from CPUID, else measured against the clocks the ACPI tables
/// under `acpi_root` describe, else the PIT), and starts the timer.
pub fn init_bsp(acpi_root: Option<ferrite_kcore::acpi::RootTable>) {
    MODE.call_once(|| {
        if cpu::features().x2apic {
            Mode::X2Apic
        } else {
            // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU.
            let phys = unsafe { Msr::new(MSR_APIC_BASE).read() } & APIC_BASE_ADDR_MASK;
            Mode::XApic(crate::mem::paging::map_mmio(phys, 4096).expect("cannot map the local APIC"))
        }
    });
    enable_local();
    calibrate(acpi_root);
    start_timer();
    log::info!(
        "apic: {} id {} version {:#x}, timer {} kHz (after /16), {} one-shot, TSC {} kHz",
        mode_name(),
        id(),
        read(Reg::Version) & 0xff,
        TIMER_HZ.load(Ordering::Relaxed) / 1000,
        if DEADLINE_MODE.load(Ordering::Relaxed) { "TSC-deadline" } else { "count" },
        crate::time::tsc_hz() / 1000,
    );
}

/// Sets up an AP's local APIC and its timer from the boot CPU's
/// calibration.
pub fn init_ap() {
    enable_local();
    start_timer();
}

/// Sets this CPU's timer up for one-shot use: TSC-deadline mode where the
/// CPU has it (no divider or count to drift), else one-shot count mode.
/// Nothing is armed: the scheduler arms it ([`arm`]) when it needs an
/// interrupt, so an idle CPU with nothing pending takes none.
fn start_timer() {
    if cpu::features().tsc_deadline {
        DEADLINE_MODE.store(true, Ordering::Relaxed);
        write(Reg::LvtTimer, LVT_TIMER_TSC_DEADLINE | u32::from(vector::TIMER));
        // The LVT write must be visible before a deadline is armed
        // (SDM 11.5.4.1; Linux fences here too).
        // SAFETY: mfence has no other effect.
        unsafe { core::arch::x86_64::_mm_mfence() };
    } else {
        write(Reg::TimerDivide, TIMER_DIVIDE_BY_16);
        write(Reg::LvtTimer, LVT_TIMER_ONE_SHOT | u32::from(vector::TIMER));
    }
}

/// Arms this CPU's timer to interrupt at TSC time `deadline` (at once if
/// it has passed), or disarms it (`None`).
pub fn arm(deadline: Option<u64>) {
    if DEADLINE_MODE.load(Ordering::Relaxed) {
        // SAFETY: IA32_TSC_DEADLINE exists in TSC-deadline mode; 0 disarms.
        unsafe { Msr::new(MSR_TSC_DEADLINE).write(deadline.map_or(0, |d| d.max(1))) };
        return;
    }
    let count = match deadline {
        None => 0,
        Some(d) => {
            let ticks = d.saturating_sub(cpu::rdtsc());
            let count = u128::from(ticks) * u128::from(TIMER_HZ.load(Ordering::Relaxed))
                / u128::from(crate::time::tsc_hz().max(1));
            count.clamp(1, u128::from(u32::MAX)) as u32
        }
    };
    write(Reg::TimerInitialCount, count);
}

/// One reading of the TSC and a reference clock: the TSC read before and
/// after.
#[derive(Clone, Copy)]
struct Sample {
    /// Midpoint of the bracket.
    tsc: u64,
    /// How long the reads took, in TSC ticks: a sample taken while this
    /// CPU was interrupted or descheduled has a wide bracket.
    bracket: u64,
    clock: u64,
}

fn sample(clock: &RefClock) -> Sample {
    // Three tries, keeping the tightest: one wide bracket is common under
    // virtualisation, three in a row are not.
    (0..3)
        .map(|_| {
            let t0 = cpu::rdtsc();
            let count = clock.read();
            let t1 = cpu::rdtsc();
            Sample { tsc: t0 + (t1 - t0) / 2, bracket: t1 - t0, clock: count }
        })
        .min_by_key(|s| s.bracket)
        .expect("three samples")
}

/// The TSC's rate measured against `clock` (the median of a few windows),
/// or `None` if the clock does not count or gives an implausible rate.
fn measure_tsc(clock: &RefClock) -> Option<u64> {
    let window = clock.hz() / CALIBRATION_WINDOWS_PER_S;
    let mut tsc_hz = [0u64; CALIBRATION_RUNS];
    for hz in &mut tsc_hz {
        clock.start();
        let start = sample(clock);
        let mut end = sample(clock);
        while clock.elapsed(start.clock, end.clock) < window {
            if end.tsc - start.tsc > CALIBRATION_GIVE_UP_TSC {
                log::warn!("clock: {} does not count", clock.name());
                return None;
            }
            end = sample(clock);
        }
        let ticks = clock.elapsed(start.clock, end.clock);
        *hz = (u128::from(end.tsc - start.tsc) * u128::from(clock.hz()) / u128::from(ticks)) as u64;
    }
    tsc_hz.sort_unstable();
    let hz = tsc_hz[CALIBRATION_RUNS / 2];
    if !ferrite_kcore::clock::TSC_HZ_PLAUSIBLE.contains(&hz) {
        log::warn!("clock: against {}, the TSC runs at {hz} Hz; not believed", clock.name());
        return None;
    }
    Some(hz)
}

/// Learns the TSC's and the APIC timer's rates. CPUID first (exact, and
/// all that works where no legacy clock is left); else the TSC against
/// the first reference clock that counts, and the APIC timer against the
/// TSC. With no clock at all the kernel says so and carries on with a
/// guess rather than stopping: a machine that boots with slow time can
/// still be looked at.
fn calibrate(acpi_root: Option<ferrite_kcore::acpi::RootTable>) {
    let cpuid = cpu::features().cpuid_clocks;
    let (tsc_hz, source) = if let Some(c) = cpuid {
        (c.tsc_hz, c.source.describe())
    } else if let Some((hz, clock)) =
        super::refclock::candidates(acpi_root).find_map(|clock| measure_tsc(&clock).map(|hz| (hz, clock)))
    {
        (hz, clock.measured_against())
    } else {
        log::error!(
            "clock: no clock could measure the TSC; guessing {} MHz (time may run slow)",
            GUESSED_TSC_HZ / 1_000_000
        );
        (GUESSED_TSC_HZ, "a guess: no clock could measure it")
    };
    crate::time::set_tsc_hz(tsc_hz, source);
    write(Reg::TimerDivide, TIMER_DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_MASKED | u32::from(vector::TIMER));
    let apic_hz = match cpuid.and_then(|c| c.apic_hz) {
        Some(hz) => hz / 16,
        None => {
            let mut rates = [0u64; CALIBRATION_RUNS];
            for rate in &mut rates {
                *rate = measure_count_hz(APIC_WINDOW_NS).unwrap_or(0);
            }
            rates.sort_unstable();
            rates[CALIBRATION_RUNS / 2]
        }
    };
    TIMER_HZ.store(apic_hz, Ordering::Relaxed);
    log::info!(
        "clock: TSC {} kHz ({source}); APIC timer {} kHz after /16 ({})",
        tsc_hz / 1000,
        apic_hz / 1000,
        if cpuid.and_then(|c| c.apic_hz).is_some() { "CPUID" } else { "measured against the TSC" }
    );
}

/// Makes pin LINT`lint` (0 or 1) of this CPU's APIC deliver an NMI (edge
/// triggered, as NMIs are; active low if the MADT says so): where the
/// machine's NMI button or watchdog is wired.
pub fn set_lint_nmi(lint: u8, active_low: bool) {
    const LVT_NMI: u32 = 0b100 << 8;
    const LVT_ACTIVE_LOW: u32 = 1 << 13;
    let reg = if lint == 0 { Reg::LvtLint0 } else { Reg::LvtLint1 };
    write(reg, LVT_NMI | if active_low { LVT_ACTIVE_LOW } else { 0 });
}

/// The LVT entry of pin LINT`lint`, for the tests.
pub fn lint_lvt(lint: u8) -> u32 {
    read(if lint == 0 { Reg::LvtLint0 } else { Reg::LvtLint1 })
}

/// The timer's input frequency after the divide-by-16 stage.
pub fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

pub(super) fn timer_interrupt() {
    crate::percpu::current().timer_ticks.fetch_add(1, Ordering::Relaxed);
}

/// Measures how fast this CPU's APIC timer counts down, in Hz (after the
/// divider), against the TSC over `window_ns`, without relying on timer
/// interrupts being delivered on time. Borrows the timer (a full count, far
/// longer than the window) and leaves it disarmed: the caller re-arms.
/// `None` in TSC-deadline mode, where the count register is unused.
pub fn measure_timer_hz(window_ns: u64) -> Option<u64> {
    if DEADLINE_MODE.load(Ordering::Relaxed) {
        return None;
    }
    measure_count_hz(window_ns)
}

/// [`measure_timer_hz`] for a timer in count mode, which calibration also
/// uses before the mode is chosen.
fn measure_count_hz(window_ns: u64) -> Option<u64> {
    let window = window_ns * crate::time::tsc_hz() / 1_000_000_000;
    x86_64::instructions::interrupts::without_interrupts(|| {
        write(Reg::TimerInitialCount, u32::MAX);
        let (c0, t0) = (u64::from(read(Reg::TimerCurrentCount)), cpu::rdtsc());
        while cpu::rdtsc() - t0 < window {
            core::hint::spin_loop();
        }
        let (c1, t1) = (u64::from(read(Reg::TimerCurrentCount)), cpu::rdtsc());
        write(Reg::TimerInitialCount, 0);
        let ns = crate::time::tsc_to_ns(t1 - t0);
        (ns > 0 && c1 <= c0).then(|| (c0 - c1) * 1_000_000_000 / ns)
    })
}

/// Timer interrupts this CPU has taken.
pub fn ticks() -> u64 {
    crate::percpu::current().timer_ticks.load(Ordering::Relaxed)
}
