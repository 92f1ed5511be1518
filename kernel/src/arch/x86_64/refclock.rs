//! The clocks that can measure the TSC when CPUID does not give its rate,
//! best first: the HPET (from the ACPI HPET table), the ACPI PM timer
//! (from the FADT), then the 8254 PIT. Recent Intel platforms gate the PIT
//! off and hardware-reduced ACPI machines lack the PM timer, so none of
//! them can be assumed; each found is checked to count before it is used.
//!
//! Each reads as a counter that goes up and wraps at its width
//! ([`RefClock::mask`]); a calibration window is far shorter than any of
//! them takes to wrap (the PIT's 16 bits: 55 ms; the PM timer's 24: 4.7 s).
use super::pit;
use ferrite_kcore::acpi::{self, PmTimerBlock, RootTable, PM_TIMER_HZ};
use x86_64::instructions::port::Port;

/// HPET registers (IA-PC HPET specification 1.0a, 2.3).
const HPET_CAPABILITIES: u64 = 0x000;
const HPET_CONFIG: u64 = 0x010;
const HPET_COUNTER: u64 = 0x0f0;
/// Capabilities: the main counter is 64 bits wide.
const HPET_COUNT_SIZE_64: u64 = 1 << 13;
/// Configuration: the main counter runs.
const HPET_ENABLE: u64 = 1 << 0;
/// The longest tick the specification allows: 100 ns, in femtoseconds.
const HPET_MAX_PERIOD_FS: u64 = 100_000_000;

#[derive(Debug, Clone, Copy)]
pub enum RefClock {
    /// The HPET's main counter, its registers mapped at this address.
    Hpet { regs: u64, hz: u64, wide: bool },
    /// The ACPI PM timer.
    PmTimer { block: Block, wide: bool },
    /// The PIT's channel 2, counting down from 0xffff.
    Pit,
}

/// Where the PM timer's register is, mapped.
#[derive(Debug, Clone, Copy)]
pub enum Block {
    Port(u16),
    /// Mapped at this virtual address.
    Memory(u64),
}

impl RefClock {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hpet { .. } => "the HPET",
            Self::PmTimer { .. } => "the ACPI PM timer",
            Self::Pit => "the PIT",
        }
    }

    /// How the log says that the TSC was measured against it.
    pub fn measured_against(&self) -> &'static str {
        match self {
            Self::Hpet { .. } => "measured against the HPET",
            Self::PmTimer { .. } => "measured against the ACPI PM timer",
            Self::Pit => "measured against the PIT",
        }
    }

    pub fn hz(&self) -> u64 {
        match *self {
            Self::Hpet { hz, .. } => hz,
            Self::PmTimer { .. } => PM_TIMER_HZ,
            Self::Pit => pit::PIT_HZ,
        }
    }

    /// The largest count before the counter wraps to 0.
    pub fn mask(&self) -> u64 {
        match *self {
            Self::Hpet { wide: true, .. } => u64::MAX,
            Self::Hpet { wide: false, .. } | Self::PmTimer { wide: true, .. } => u64::from(u32::MAX),
            Self::PmTimer { wide: false, .. } => (1 << 24) - 1,
            Self::Pit => u64::from(u16::MAX),
        }
    }

    /// Makes the clock count (the PIT counts only once started).
    pub fn start(&self) {
        if let Self::Pit = self {
            pit::start_countdown();
        }
    }

    /// The counter now, counting up.
    pub fn read(&self) -> u64 {
        match *self {
            Self::Hpet { regs, wide, .. } => {
                let count = hpet_read(regs, HPET_COUNTER);
                if wide {
                    count
                } else {
                    count & u64::from(u32::MAX)
                }
            }
            Self::PmTimer { block, .. } => {
                let count = match block {
                    // SAFETY: the FADT names this port as the PM timer's
                    // counter; reading it has no side effect.
                    Block::Port(port) => unsafe { Port::<u32>::new(port).read() },
                    // SAFETY: mapped uncached by `pm_timer`; a read has no
                    // side effect.
                    Block::Memory(virt) => unsafe { core::ptr::read_volatile(virt as *const u32) },
                };
                u64::from(count) & self.mask()
            }
            Self::Pit => u64::from(u16::MAX - pit::read_count()),
        }
    }

    /// Ticks from `earlier` to `later`, across one wrap.
    pub fn elapsed(&self, earlier: u64, later: u64) -> u64 {
        later.wrapping_sub(earlier) & self.mask()
    }
}

fn hpet_read(regs: u64, offset: u64) -> u64 {
    // SAFETY: `regs` maps the HPET's register block (uncached); reading
    // these registers has no side effect.
    unsafe { core::ptr::read_volatile((regs + offset) as *const u64) }
}

/// The reference clocks this machine's firmware describes, best first,
/// with the PIT last; what could not be used is logged and left out.
pub fn candidates(root: Option<RootTable>) -> impl Iterator<Item = RefClock> {
    let hpet = root.and_then(hpet);
    let pm = root.and_then(pm_timer);
    hpet.into_iter().chain(pm).chain(core::iter::once(RefClock::Pit))
}

/// The table `signature` parsed by `parse`; `None` if it is absent, and
/// also (said in the log, naming `what`) if it cannot be used.
fn parsed<T>(
    root: RootTable,
    signature: &[u8; 4],
    parse: fn(&[u8]) -> Result<T, acpi::AcpiError>,
    what: &str,
) -> Option<T> {
    match crate::acpi::read_table(root, signature).and_then(|t| parse(&t)) {
        Ok(parsed) => Some(parsed),
        Err(acpi::AcpiError::NotFound(_)) => None,
        Err(e) => {
            log::warn!("clock: not using {what}: {e}");
            None
        }
    }
}

fn hpet(root: RootTable) -> Option<RefClock> {
    let phys = parsed(root, b"HPET", acpi::parse_hpet, "the HPET")?;
    let regs = match crate::mem::paging::map_mmio(phys, 1024) {
        Ok(regs) => regs,
        Err(e) => {
            log::warn!("clock: cannot map the HPET at {phys:#x}: {e:?}");
            return None;
        }
    };
    let caps = hpet_read(regs, HPET_CAPABILITIES);
    let period_fs = caps >> 32;
    if period_fs == 0 || period_fs > HPET_MAX_PERIOD_FS {
        log::warn!("clock: the HPET at {phys:#x} claims a tick of {period_fs} fs; not using it");
        return None;
    }
    let config = hpet_read(regs, HPET_CONFIG);
    if config & HPET_ENABLE == 0 {
        // Firmware may leave the main counter stopped; starting it changes
        // nothing else (no comparator is armed, legacy routing is as left).
        // SAFETY: the configuration register of the HPET mapped above.
        unsafe { core::ptr::write_volatile((regs + HPET_CONFIG) as *mut u64, config | HPET_ENABLE) };
    }
    Some(RefClock::Hpet { regs, hz: 1_000_000_000_000_000 / period_fs, wide: caps & HPET_COUNT_SIZE_64 != 0 })
}

fn pm_timer(root: RootTable) -> Option<RefClock> {
    let timer = parsed(root, b"FACP", acpi::parse_fadt, "the FADT's PM timer")?.pm_timer?;
    let block = match timer.block {
        PmTimerBlock::Port(port) => Block::Port(port),
        PmTimerBlock::Memory(phys) => match crate::mem::paging::map_mmio(phys, 4) {
            Ok(virt) => Block::Memory(virt),
            Err(e) => {
                log::warn!("clock: cannot map the PM timer at {phys:#x}: {e:?}");
                return None;
            }
        },
    };
    Some(RefClock::PmTimer { block, wide: timer.wide })
}
