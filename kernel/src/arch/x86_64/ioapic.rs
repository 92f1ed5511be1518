//! The I/O APICs: where device interrupt lines (global system interrupts,
//! GSIs) become interrupt messages to a CPU's local APIC.
//!
//! At boot every I/O APIC the MADT lists is mapped (uncached) and every
//! one of its inputs masked: firmware may leave entries programmed, and
//! an interrupt on a vector nobody expects is worse than none. ISA IRQs
//! are routed through the MADT's interrupt source overrides (QEMU and most
//! PCs wire the PIT's IRQ 0 to GSI 2, and mark the PCI-shared IRQs level
//! triggered), onto the vectors `vector::ISA_BASE + irq`; the legacy PICs
//! stay masked.
//!
//! Each I/O APIC has two registers: an index (IOREGSEL, offset 0) and a
//! window onto the indexed register (IOWIN, offset 0x10). Register 1 is
//! the version, with the number of inputs less one in bits 16-23; input
//! `n`'s redirection entry is registers 0x10 + 2n (low half) and
//! 0x11 + 2n (high half). Index and window are one operation: a lock per
//! I/O APIC holds them together (Intel 82093AA datasheet, 3.0).
use crate::sync::IrqSpinlock;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use ferrite_kcore::acpi::{IoApic, IsaRoute, Madt, ISA_IRQS};

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;
/// Redirection entry, low half: the vector in bits 0-7, fixed delivery and
/// physical destination (bits 8-11 zero), then these.
const RTE_ACTIVE_LOW: u32 = 1 << 13;
const RTE_LEVEL: u32 = 1 << 15;
const RTE_MASKED: u32 = 1 << 16;
/// High half: the destination APIC ID in bits 24-31 (physical mode).
const RTE_DEST_SHIFT: u32 = 24;

struct Chip {
    /// The registers, mapped.
    regs: IrqSpinlock<u64>,
    gsi_base: u32,
    inputs: u32,
}

impl Chip {
    fn read(&self, reg: u32) -> u32 {
        let base = self.regs.lock();
        // SAFETY: the I/O APIC's registers, mapped uncached at boot; the
        // lock keeps the index and the window together.
        unsafe {
            core::ptr::write_volatile((*base + IOREGSEL) as *mut u32, reg);
            core::ptr::read_volatile((*base + IOWIN) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        let base = self.regs.lock();
        // SAFETY: as in read.
        unsafe {
            core::ptr::write_volatile((*base + IOREGSEL) as *mut u32, reg);
            core::ptr::write_volatile((*base + IOWIN) as *mut u32, value);
        }
    }

    /// Rewrites register `reg` as `f` says, under one hold of the lock.
    fn update(&self, reg: u32, f: impl FnOnce(u32) -> u32) {
        let base = self.regs.lock();
        // SAFETY: as in read.
        unsafe {
            core::ptr::write_volatile((*base + IOREGSEL) as *mut u32, reg);
            let value = core::ptr::read_volatile((*base + IOWIN) as *const u32);
            core::ptr::write_volatile((*base + IOWIN) as *mut u32, f(value));
        }
    }

    fn handles(&self, gsi: u32) -> bool {
        gsi >= self.gsi_base && gsi - self.gsi_base < self.inputs
    }
}

struct IoApics {
    chips: Vec<Chip>,
    isa: [Option<IsaRoute>; ISA_IRQS],
}

static IO_APICS: spin::Once<IoApics> = spin::Once::new();

/// Interrupts taken on each ISA vector, for the tests and statistics.
static ISA_COUNTS: [AtomicU64; ISA_IRQS] = [const { AtomicU64::new(0) }; ISA_IRQS];

/// Why an interrupt line cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// Not an ISA IRQ (0-15).
    NoSuchIrq,
    /// No I/O APIC has the line's GSI.
    NoIoApic,
    /// The CPU's APIC ID does not fit a physical destination (8 bits).
    Unreachable,
}

/// Finds, maps and masks the I/O APICs of `madt`, and keeps its ISA
/// routes. Says what it found; one that cannot be mapped is left out.
pub fn init(madt: &Madt<{ crate::percpu::MAX_CPUS }>) {
    let mut chips = Vec::new();
    if madt.io_apics as usize > madt.io_apics().len() {
        log::warn!("ioapic: {} I/O APICs listed; only the first {} are used", madt.io_apics, madt.io_apics().len());
    }
    for &IoApic { id, address, gsi_base } in madt.io_apics() {
        let regs = match crate::mem::paging::map_mmio(u64::from(address), 0x20) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("ioapic: I/O APIC {id} at {address:#x} cannot be mapped ({e:?}); its lines are lost");
                continue;
            }
        };
        let mut chip = Chip { regs: IrqSpinlock::new(regs), gsi_base, inputs: 0 };
        let version = chip.read(REG_VERSION);
        chip.inputs = ((version >> 16) & 0xff) + 1;
        // Masked first, then the destination cleared: a live entry the
        // firmware left never points elsewhere while unmasked.
        for input in 0..chip.inputs {
            chip.write(REG_REDIRECTION + 2 * input, RTE_MASKED);
            chip.write(REG_REDIRECTION + 2 * input + 1, 0);
        }
        log::info!(
            "ioapic: I/O APIC {id} at {address:#x}, version {:#x}, GSIs {}-{}, all masked",
            version & 0xff,
            gsi_base,
            gsi_base + chip.inputs - 1
        );
        chips.push(chip);
    }
    let isa = core::array::from_fn(|irq| madt.isa_route(irq as u8));
    for (irq, route) in isa.iter().enumerate() {
        let Some(route) = route else {
            log::info!("ioapic: ISA IRQ {irq} has no line (its GSI is another ISA IRQ's)");
            continue;
        };
        if route.gsi != irq as u32 || route.level || route.active_low {
            log::info!(
                "ioapic: ISA IRQ {irq} -> GSI {} ({}, active {})",
                route.gsi,
                if route.level { "level" } else { "edge" },
                if route.active_low { "low" } else { "high" }
            );
        }
    }
    IO_APICS.call_once(|| IoApics { chips, isa });
}

/// ISA IRQ `irq`'s route, if it has a line of its own.
fn isa_route(irq: u8) -> Result<IsaRoute, RouteError> {
    IO_APICS.get().and_then(|a| a.isa.get(usize::from(irq)).copied().flatten()).ok_or(RouteError::NoSuchIrq)
}

fn chip_of(gsi: u32) -> Result<&'static Chip, RouteError> {
    IO_APICS.get().and_then(|a| a.chips.iter().find(|c| c.handles(gsi))).ok_or(RouteError::NoIoApic)
}

/// Routes ISA IRQ `irq` to the CPU with APIC ID `apic_id`, on vector
/// `vector::ISA_BASE + irq`, unmasked, as the MADT says it signals.
/// Returns the GSI it arrives on.
pub fn route_isa(irq: u8, apic_id: u32) -> Result<u32, RouteError> {
    let route = isa_route(irq)?;
    let dest = u8::try_from(apic_id).map_err(|_| RouteError::Unreachable)?;
    let chip = chip_of(route.gsi)?;
    let input = route.gsi - chip.gsi_base;
    let mut low = u32::from(super::idt::vector::ISA_BASE + irq);
    if route.active_low {
        low |= RTE_ACTIVE_LOW;
    }
    if route.level {
        low |= RTE_LEVEL;
    }
    // Masked while the destination changes, then unmasked.
    chip.write(REG_REDIRECTION + 2 * input, low | RTE_MASKED);
    chip.write(REG_REDIRECTION + 2 * input + 1, u32::from(dest) << RTE_DEST_SHIFT);
    chip.write(REG_REDIRECTION + 2 * input, low);
    Ok(route.gsi)
}

/// Masks ISA IRQ `irq`'s line.
pub fn mask_isa(irq: u8) -> Result<(), RouteError> {
    let route = isa_route(irq)?;
    let chip = chip_of(route.gsi)?;
    let reg = REG_REDIRECTION + 2 * (route.gsi - chip.gsi_base);
    chip.update(reg, |low| low | RTE_MASKED);
    Ok(())
}

/// Unmasks ISA IRQ `irq`'s line (routed before by [`route_isa`]).
pub fn unmask_isa(irq: u8) -> Result<(), RouteError> {
    let route = isa_route(irq)?;
    let chip = chip_of(route.gsi)?;
    let reg = REG_REDIRECTION + 2 * (route.gsi - chip.gsi_base);
    chip.update(reg, |low| low & !RTE_MASKED);
    Ok(())
}

/// Whether ISA IRQ `irq` is level-triggered (the MADT's overrides say).
pub fn isa_is_level(irq: u8) -> Result<bool, RouteError> {
    let route = isa_route(irq)?;
    chip_of(route.gsi)?;
    Ok(route.level)
}

/// The redirection entry of `gsi` (low half, high half), for the tests.
pub fn entry(gsi: u32) -> Result<(u32, u32), RouteError> {
    let chip = chip_of(gsi)?;
    let reg = REG_REDIRECTION + 2 * (gsi - chip.gsi_base);
    Ok((chip.read(reg), chip.read(reg + 1)))
}

/// The GSIs of the I/O APICs in use, chip by chip (first, count).
pub fn gsi_ranges() -> Vec<(u32, u32)> {
    IO_APICS.get().map_or(Vec::new(), |a| a.chips.iter().map(|c| (c.gsi_base, c.inputs)).collect())
}

/// An interrupt on ISA vector `irq`: counted, given to the driver that
/// bound the line (device.rs, which masks it first if it must), and
/// acknowledged.
pub(super) fn isa_interrupt(irq: u8) {
    if let Some(count) = ISA_COUNTS.get(usize::from(irq)) {
        count.fetch_add(1, Ordering::Relaxed);
    }
    crate::device::interrupt(irq);
    super::apic::end_of_interrupt();
}

/// Interrupts taken on ISA IRQ `irq` so far.
pub fn isa_count(irq: u8) -> u64 {
    ISA_COUNTS.get(usize::from(irq)).map_or(0, |c| c.load(Ordering::Relaxed))
}
