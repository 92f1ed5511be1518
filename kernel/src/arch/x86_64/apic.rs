//! The local APIC: xAPIC (MMIO) or x2APIC (MSRs), chosen by CPUID, and its
//! timer, calibrated once against the PIT.
//!
//! Register offsets are the xAPIC MMIO offsets (Intel SDM vol. 3, table
//! 11-1); in x2APIC mode the same register is MSR `0x800 + offset / 16`.
use super::idt::vector;
use super::{cpu, pit};
use core::sync::atomic::{AtomicU64, Ordering};
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
    LvtTimer = 0x320,
    TimerInitialCount = 0x380,
    TimerCurrentCount = 0x390,
    TimerDivide = 0x3e0,
}

/// Spurious-vector register: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT bits.
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// Timer divide configuration for divide-by-16 (SDM figure 11-10).
const TIMER_DIVIDE_BY_16: u32 = 0b0011;
/// Periodic tick rate until the scheduler arms one-shot timers.
pub const TICK_HZ: u64 = 100;
/// Calibration window: 10 ms of PIT ticks, three times.
const CALIBRATION_PIT_TICKS: u16 = (pit::PIT_HZ / 100) as u16;
const CALIBRATION_RUNS: usize = 3;

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Registers at this virtual address (mapped uncached).
    XApic(u64),
    X2Apic,
}

static MODE: Once<Mode> = Once::new();
/// Timer input frequency after the divider, in Hz.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

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

/// Sets up the boot CPU's local APIC, calibrates its timer and the TSC
/// against the PIT, and starts the periodic tick.
pub fn init_bsp() {
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
    calibrate();
    start_periodic(TICK_HZ);
    log::info!(
        "apic: {} id {} version {:#x}, timer {} kHz (after /16), tick {} Hz",
        mode_name(),
        id(),
        read(Reg::Version) & 0xff,
        TIMER_HZ.load(Ordering::Relaxed) / 1000,
        TICK_HZ
    );
}

/// Measures the APIC timer and the TSC over a few PIT windows and keeps
/// the median of each.
fn calibrate() {
    write(Reg::TimerDivide, TIMER_DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_MASKED | u32::from(vector::TIMER));
    let mut apic = [0u64; CALIBRATION_RUNS];
    let mut tsc = [0u64; CALIBRATION_RUNS];
    let mut ok = 0;
    for i in 0..CALIBRATION_RUNS {
        let mut tsc0 = 0;
        let done = pit::measure(
            CALIBRATION_PIT_TICKS,
            || {
                write(Reg::TimerInitialCount, u32::MAX);
                tsc0 = cpu::rdtsc();
            },
            || (u32::MAX - read(Reg::TimerCurrentCount), cpu::rdtsc()),
        );
        if let Some((elapsed, tsc1)) = done {
            let scale = |n: u64| n * pit::PIT_HZ / u64::from(CALIBRATION_PIT_TICKS);
            apic[i] = scale(u64::from(elapsed));
            tsc[i] = scale(tsc1 - tsc0);
            ok += 1;
        }
    }
    write(Reg::TimerInitialCount, 0);
    if ok < CALIBRATION_RUNS {
        // Without a PIT there is no reference; CPUID may still name the
        // TSC rate, but not the APIC's. Better loud than silently wrong.
        panic!("apic: the PIT did not count down; cannot calibrate the timers");
    }
    apic.sort_unstable();
    tsc.sort_unstable();
    let median = CALIBRATION_RUNS / 2;
    TIMER_HZ.store(apic[median], Ordering::Relaxed);
    crate::time::set_tsc_hz(tsc[median]);
}

fn start_periodic(hz: u64) {
    let count = (TIMER_HZ.load(Ordering::Relaxed) / hz).clamp(1, u64::from(u32::MAX)) as u32;
    write(Reg::TimerDivide, TIMER_DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_TIMER_PERIODIC | u32::from(vector::TIMER));
    write(Reg::TimerInitialCount, count);
}

/// The timer's input frequency after the divide-by-16 stage.
pub fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

pub(super) fn timer_interrupt() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer interrupts taken since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}
