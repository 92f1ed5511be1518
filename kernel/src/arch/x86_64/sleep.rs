//! Powering off through ACPI: entering sleep state S5 ("soft off").
//!
//! At boot, [`init`] reads from the FADT where the sleep registers are and
//! from the DSDT's `\_S5` package what to write there (ACPI 6.5, 7.4.2 and
//! 16.1.7), maps a register in memory space if need be, and keeps the
//! result, so that powering off later needs neither the heap nor the
//! tables. [`enter_s5`] then writes, with every other CPU stopped:
//!
//! - on a machine with ACPI fixed hardware, `SLP_TYPa` (bits 10-12) to the
//!   PM1a control register, keeping the bits the firmware set (`SCI_EN`
//!   among them), then the same with `SLP_EN` (bit 13); likewise
//!   `SLP_TYPb` to PM1b where there is one (ACPI 6.5, 4.8.3.2.1);
//! - on hardware-reduced ACPI, `SLP_TYPa` (bits 2-4) with `SLP_EN` (bit 5)
//!   to the sleep control register (ACPI 6.5, 4.8.3.7).
//!
//! The DSDT is read by `ferrite_kcore::acpi::sleep_type`, which reads
//! packages of constants and no more: a firmware whose `\_S5` is a method
//! gets a warning at boot and no ACPI power off (the kernel then halts).
//! ACPI also asks the OS to run `\_PTS(5)` before sleeping; it needs an
//! interpreter, QEMU's does nothing that power off needs, and it is not run.
use core::fmt;
use ferrite_kcore::acpi::{self, AcpiError, Fadt, GenericAddress, SleepType};
use x86_64::instructions::port::Port;

/// PM1 control register bits.
const PM1_SLP_TYP_SHIFT: u32 = 10;
const PM1_SLP_TYP: u16 = 0b111 << PM1_SLP_TYP_SHIFT;
const PM1_SLP_EN: u16 = 1 << 13;
/// `GBL_RLS`: write-only; a 1 raises an SMI, so never written back.
const PM1_GBL_RLS: u16 = 1 << 2;
/// Sleep control register bits (hardware-reduced ACPI).
const SLEEP_TYP_SHIFT: u32 = 2;
const SLEEP_TYP_MASK: u8 = 0b111;
const SLEEP_EN: u8 = 1 << 5;

/// Soft off's sleep state number.
const S5: u8 = 5;

/// A sleep register, ready to be used.
#[derive(Clone, Copy)]
enum Register {
    Port(u16),
    /// Mapped uncached at this virtual address.
    Memory(u64),
}

impl Register {
    /// # Safety
    ///
    /// `self` must be a PM1 control register (16 bits).
    unsafe fn read16(self) -> u16 {
        match self {
            // SAFETY: a PM1 control register, per the caller; reading it
            // has no side effect.
            Self::Port(port) => unsafe { Port::<u16>::new(port).read() },
            // SAFETY: as above, mapped at boot.
            Self::Memory(virt) => unsafe { core::ptr::read_volatile(virt as *const u16) },
        }
    }

    /// # Safety
    ///
    /// `self` must be a PM1 control register, and `value` one that is
    /// meant for it: it can put the machine to sleep.
    unsafe fn write16(self, value: u16) {
        match self {
            // SAFETY: per the caller.
            Self::Port(port) => unsafe { Port::<u16>::new(port).write(value) },
            // SAFETY: per the caller; mapped at boot.
            Self::Memory(virt) => unsafe { core::ptr::write_volatile(virt as *mut u16, value) },
        }
    }

    /// # Safety
    ///
    /// `self` must be the sleep control register (8 bits), and `value`
    /// one that is meant for it.
    unsafe fn write8(self, value: u8) {
        match self {
            // SAFETY: per the caller.
            Self::Port(port) => unsafe { Port::<u8>::new(port).write(value) },
            // SAFETY: per the caller; mapped at boot.
            Self::Memory(virt) => unsafe { core::ptr::write_volatile(virt as *mut u8, value) },
        }
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Port(port) => write!(f, "port {port:#x}"),
            Self::Memory(virt) => write!(f, "memory (virtual {virt:#x})"),
        }
    }
}

/// How this machine enters S5.
#[derive(Clone, Copy)]
enum SoftOff {
    /// Through the PM1 control registers.
    Pm1 { pm1a: Register, pm1b: Option<Register>, sleep: SleepType },
    /// Through the sleep control register (hardware-reduced ACPI).
    SleepControl { register: Register, sleep: SleepType },
}

static SOFT_OFF: spin::Once<SoftOff> = spin::Once::new();

/// Why there is no ACPI power off; for the boot log.
enum Unavailable {
    NoDsdt,
    Dsdt(AcpiError),
    NoRegister,
    Unusable(GenericAddress),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDsdt => write!(f, "the FADT names no DSDT"),
            Self::Dsdt(e) => write!(f, "{e}"),
            Self::NoRegister => write!(f, "the FADT names no PM1a control or sleep control register"),
            Self::Unusable(gas) => write!(f, "unusable sleep register at {:#x}", gas.address),
        }
    }
}

/// The I/O ports of the registers that put the machine to sleep (first
/// port, count), where they are ports: no process may have them.
pub fn control_ports() -> [Option<(u16, u16)>; 2] {
    let port = |r: Register, len| match r {
        Register::Port(p) => Some((p, len)),
        Register::Memory(_) => None,
    };
    match SOFT_OFF.get() {
        Some(&SoftOff::Pm1 { pm1a, pm1b, .. }) => [port(pm1a, 2), pm1b.and_then(|b| port(b, 2))],
        Some(&SoftOff::SleepControl { register, .. }) => [port(register, 1), None],
        None => [None, None],
    }
}

/// Finds how to enter S5 on this machine (see the module header) and logs
/// one line saying how, or why it cannot.
pub fn init(fadt: &Fadt) {
    match soft_off(fadt) {
        Ok(off) => {
            match off {
                SoftOff::Pm1 { pm1a, pm1b: None, sleep } => {
                    log::info!("power: ACPI S5 sleep type a={} b={} (PM1a {pm1a})", sleep.a, sleep.b);
                }
                SoftOff::Pm1 { pm1a, pm1b: Some(pm1b), sleep } => {
                    log::info!("power: ACPI S5 sleep type a={} b={} (PM1a {pm1a}, PM1b {pm1b})", sleep.a, sleep.b);
                }
                SoftOff::SleepControl { register, sleep } => {
                    log::info!("power: ACPI S5 sleep type a={} (sleep control register {register})", sleep.a);
                }
            }
            SOFT_OFF.call_once(|| off);
        }
        Err(why) => log::warn!("power: no ACPI power off: {why}"),
    }
}

fn soft_off(fadt: &Fadt) -> Result<SoftOff, Unavailable> {
    let dsdt = fadt.dsdt.ok_or(Unavailable::NoDsdt)?;
    let dsdt = crate::acpi::read_table_at(dsdt, b"DSDT").map_err(Unavailable::Dsdt)?;
    let sleep = acpi::sleep_type(&dsdt, S5).map_err(Unavailable::Dsdt)?;
    match (fadt.hardware_reduced, fadt.pm1a_control, fadt.sleep_control) {
        (false, Some(pm1a), _) => {
            let pm1b = fadt.pm1b_control.map(register).transpose()?;
            Ok(SoftOff::Pm1 { pm1a: register(pm1a)?, pm1b, sleep })
        }
        (true, _, Some(control)) => Ok(SoftOff::SleepControl { register: register(control)?, sleep }),
        _ => Err(Unavailable::NoRegister),
    }
}

/// A register kcore's FADT parser has checked is in I/O or memory space.
fn register(gas: GenericAddress) -> Result<Register, Unavailable> {
    match gas.space {
        GenericAddress::IO => u16::try_from(gas.address).map(Register::Port).map_err(|_| Unavailable::Unusable(gas)),
        _ => crate::mem::paging::map_mmio(gas.address, 2).map(Register::Memory).map_err(|e| {
            log::warn!("power: cannot map the sleep register at {:#x}: {e:?}", gas.address);
            Unavailable::Unusable(gas)
        }),
    }
}

/// True if [`init`] found how to enter S5.
pub fn available() -> bool {
    SOFT_OFF.get().is_some()
}

/// Enters S5, if [`init`] found how; returns if it did not, or if the
/// machine is still running after the writes. The caller has stopped every
/// other CPU: nothing else may touch these registers.
pub fn enter_s5() {
    let Some(&off) = SOFT_OFF.get() else { return };
    match off {
        SoftOff::Pm1 { pm1a, pm1b, sleep } => {
            let pm1 = [Some((pm1a, sleep.a)), pm1b.map(|r| (r, sleep.b))];
            // SLP_TYP first, then SLP_EN with it, as ACPICA does; the other
            // bits as the firmware left them, but GBL_RLS (write-only).
            let values = pm1.map(|r| {
                r.map(|(register, typ)| {
                    // SAFETY: PM1 control registers, named by the FADT.
                    let old = unsafe { register.read16() };
                    let keep = old & !(PM1_SLP_TYP | PM1_SLP_EN | PM1_GBL_RLS);
                    (register, keep | (u16::from(typ & 0b111) << PM1_SLP_TYP_SHIFT))
                })
            });
            for (register, value) in values.iter().flatten() {
                // SAFETY: SLP_TYP alone does not sleep; the FADT names
                // the register.
                unsafe { register.write16(*value) };
            }
            for (register, value) in values.iter().flatten() {
                // SAFETY: entering S5 is what powering off means.
                unsafe { register.write16(value | PM1_SLP_EN) };
            }
        }
        SoftOff::SleepControl { register, sleep } => {
            let value = ((sleep.a & SLEEP_TYP_MASK) << SLEEP_TYP_SHIFT) | SLEEP_EN;
            // SAFETY: the sleep control register the FADT names; entering
            // S5 is what powering off means.
            unsafe { register.write8(value) };
        }
    }
}
