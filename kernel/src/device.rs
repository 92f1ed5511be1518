//! Device rights for user-space drivers: resources, I/O ports and
//! interrupt lines.
//!
//! A **resource** names a range of one kind of device right (ISA interrupt
//! lines, I/O ports, device memory) or the machine itself
//! (ferrite_abi::resource). Only the kernel makes them: init starts with
//! one of each kind, whole ([`root_handles`]), and passes narrowed ones
//! (`resource_narrow`) to the drivers it starts, as Zircon's root resource
//! is narrowed. A resource handle with [`rights::USE`] is what the device
//! system calls check; the object itself is only a range.
//!
//! **I/O ports.** `ioport_enable` adds a port range to its process's
//! [`IoPorts`]; the scheduler's switch hook loads the process's ranges
//! into the CPU's I/O permission bitmap (arch gdt.rs), and turns the
//! bitmap off for processes without ports.
//!
//! **Interrupt lines.** `irq_bind` routes an ISA IRQ through the I/O APIC
//! to a CPU (the lines are spread over the online CPUs) and binds it to a
//! notification: each interrupt signals the notification's bits. A
//! level-triggered line stays asserted until the driver has dealt with the
//! device, so it is masked at each interrupt (before the end of interrupt)
//! and unmasked by `irq_ack`; an edge-triggered line is left unmasked (an
//! edge while masked would be lost), unless it takes
//! [`IRQ_STORM`] interrupts without an `irq_ack`: then it is masked as a
//! storm, and logged, until the driver acknowledges. Either way a line
//! costs its CPU one short handler per interrupt at most, and a line
//! nobody acknowledges stays quiet. A line left masked for
//! [`REPORT_AFTER_NS`] is reported by the `irq-watch` thread (and again
//! each [`REPORT_AGAIN_NS`] while it stays so), as Linux reports an
//! interrupt nobody handles. Closing the interrupt handle (or the end of
//! its process) masks and unbinds the line.
use crate::arch::ioapic;
use crate::ipc::Notification;
use crate::proc::handle::{Handle, Object};
use crate::quota::Charge;
use crate::sched::wait::WaitQueue;
use crate::sync::IrqSpinlock;
use crate::time::uptime_ns;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use ferrite_abi::{resource, rights, Error, IOPORT_RANGES, IRQ_STORM};

/// ISA interrupt lines.
const ISA_IRQS: u64 = 16;
/// I/O ports.
const PORTS: u64 = 65536;
/// Physical addresses: the architectural limit (52 bits).
const PHYSICAL: u64 = 1 << 52;

/// A range of device rights of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    pub kind: u64,
    pub base: u64,
    pub len: u64,
}

impl Resource {
    /// The whole of `kind`.
    fn root(kind: u64) -> Resource {
        let len = match kind {
            resource::IRQ => ISA_IRQS,
            resource::PORTS => PORTS,
            resource::DEVICE_MEMORY => PHYSICAL,
            _ => 0,
        };
        Resource { kind, base: 0, len }
    }

    /// The part `base..base + len`, which must lie inside this one (and be
    /// empty for the machine, which has no range).
    pub fn narrow(&self, base: u64, len: u64) -> Result<Resource, Error> {
        if self.kind == resource::SYSTEM {
            return if (base, len) == (0, 0) { Ok(*self) } else { Err(Error::BadArgument) };
        }
        let end = base.checked_add(len).ok_or(Error::BadArgument)?;
        if len == 0 || base < self.base || end > self.base + self.len {
            return Err(Error::BadArgument);
        }
        Ok(Resource { kind: self.kind, base, len })
    }
}

/// Whether the physical range `start..end` may be mapped as device memory
/// for a process: no part of it is RAM (usable or the firmware's, as the
/// memory map says) or registers the kernel drives itself.
pub fn mappable(start: u64, end: u64) -> bool {
    let ram = crate::boot_info::get()
        .memory_areas()
        .any(|(r, kind)| kind != crate::boot_info::AreaKind::Other && r.start < end && start < r.end);
    !ram && !crate::mem::paging::is_kernel_mmio(start, end)
}

/// Whether the physical range `start..end` overlaps the boot framebuffer,
/// which the kernel maps write-combining (its screen console) and which
/// may then be mapped only so: one page mapped with two memory types is
/// what the Intel SDM (11.12.4) says may fail unpredictably, and what
/// Linux's memory-type tracking refuses too.
pub fn write_combining_only(start: u64, end: u64) -> bool {
    crate::boot_info::get().framebuffer().is_some_and(|fb| {
        let fb_start = fb.phys & !(crate::mem::PAGE_SIZE - 1);
        let fb_end = crate::mem::align_up(fb.phys + u64::from(fb.pitch) * u64::from(fb.height), crate::mem::PAGE_SIZE);
        start < fb_end && fb_start < end
    })
}

/// The handles init starts with, in ferrite_abi::root's order.
pub fn root_handles() -> Vec<Handle> {
    [resource::IRQ, resource::PORTS, resource::DEVICE_MEMORY, resource::SYSTEM]
        .into_iter()
        .map(|kind| Handle::new(Object::Resource(Resource::root(kind)), rights::RESOURCE, None))
        .collect()
}

/// The I/O ports a process may use: up to [`IOPORT_RANGES`] ranges, and a
/// version that changes with them (for the CPUs' bitmaps).
pub struct IoPorts {
    /// Whether there are any: the switch hook's one check for the others.
    any: AtomicBool,
    ranges: IrqSpinlock<PortRanges>,
}

/// The ranges (first port, count), how many are in use, and the version.
struct PortRanges {
    ranges: [(u32, u32); IOPORT_RANGES as usize],
    count: usize,
    version: u64,
}

impl IoPorts {
    pub const fn new() -> IoPorts {
        let none = PortRanges { ranges: [(0, 0); IOPORT_RANGES as usize], count: 0, version: 0 };
        IoPorts { any: AtomicBool::new(false), ranges: IrqSpinlock::new(none) }
    }

    /// Adds the ports of `r` (a PORTS resource).
    pub fn enable(&self, r: &Resource) -> Result<(), Error> {
        let mut p = self.ranges.lock();
        let range = (r.base as u32, r.len as u32);
        if !p.ranges[..p.count].contains(&range) {
            if p.count == p.ranges.len() {
                return Err(Error::NoMemory);
            }
            let at = p.count;
            p.ranges[at] = range;
            p.count += 1;
            p.version += 1;
        }
        self.any.store(true, Ordering::Release);
        Ok(())
    }

    /// Loads this CPU's bitmap for process `pid` (switching to one of its
    /// threads, or after `enable`). Interrupts off.
    pub fn switch_in(&self, pid: u64) {
        if !self.any.load(Ordering::Acquire) {
            crate::arch::gdt::io_ports_off();
            return;
        }
        let p = self.ranges.lock();
        crate::arch::gdt::io_ports_on(pid, p.version, &p.ranges[..p.count]);
    }
}

/// An interrupt line bound to a notification.
struct Binding {
    notification: Arc<Notification>,
    bits: u64,
    level: bool,
    masked: bool,
    /// Interrupts since the last `irq_ack`.
    unacked: u64,
    /// While masked: when it was masked, and when it is to be reported
    /// (uptime, ns).
    masked_at: u64,
    report_at: u64,
    pid: u64,
}

impl Binding {
    /// Masks the line, until the driver acknowledges it.
    fn mask(&mut self, irq: u8) {
        let _ = ioapic::mask_isa(irq);
        self.masked = true;
        self.masked_at = uptime_ns();
        self.report_at = self.masked_at + REPORT_AFTER_NS;
        if MASKED.fetch_add(1, Ordering::AcqRel) == 0 {
            // The watch sleeps while no line is masked (wait.rs's protocol:
            // the condition changed first).
            WATCH.wake_one();
        }
    }

    /// The line is no longer masked waiting for this driver: unmasked by
    /// an `irq_ack`, or unbound.
    fn unmasked(&mut self) {
        if core::mem::replace(&mut self.masked, false) {
            MASKED.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A line masked this long without an `irq_ack` is reported...
pub const REPORT_AFTER_NS: u64 = 1_000_000_000;
/// ... and again this often while it stays masked.
pub const REPORT_AGAIN_NS: u64 = 60_000_000_000;
/// How often the watch looks while a line is masked (it sleeps otherwise).
const WATCH_PERIOD_NS: u64 = 250_000_000;
/// Bound lines masked now, waiting for their driver's `irq_ack`.
static MASKED: AtomicU32 = AtomicU32::new(0);
/// Where the watch sleeps while no line is masked.
static WATCH: WaitQueue = WaitQueue::new();
/// Reports made since boot, for the tests.
static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Starts the `irq-watch` thread, which reports lines left masked.
pub fn start_watch() {
    if let Err(e) =
        crate::sched::spawn("irq-watch", ferrite_kcore::sched::Class::Normal, crate::sched::thread::ANY_CPU, watch)
    {
        log::warn!("irq: no irq-watch thread ({e:?}); lines left masked are reported only when unbound");
    }
}

fn watch() {
    loop {
        WATCH.wait_until(|| MASKED.load(Ordering::Acquire) > 0);
        while MASKED.load(Ordering::Acquire) > 0 {
            crate::sched::sleep_ns(WATCH_PERIOD_NS);
            report_overdue();
        }
    }
}

/// Logs each line that has been masked, unacknowledged, past its report
/// time.
fn report_overdue() {
    for (irq, line) in LINES.iter().enumerate() {
        let overdue = {
            let mut slot = line.lock();
            let now = uptime_ns();
            match slot.as_mut() {
                Some(b) if b.masked && now >= b.report_at => {
                    b.report_at = now + REPORT_AGAIN_NS;
                    Some((b.pid, (now - b.masked_at) / 1_000_000, b.unacked))
                }
                _ => None,
            }
        };
        if let Some((pid, ms, unacked)) = overdue {
            REPORTS.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "irq: ISA IRQ {irq} masked for {ms} ms: pid {pid} has not acknowledged it ({unacked} interrupts)"
            );
        }
    }
}

/// How many times a line left masked has been reported since boot.
pub fn masked_reports() -> u64 {
    REPORTS.load(Ordering::Relaxed)
}

static LINES: [IrqSpinlock<Option<Binding>>; ISA_IRQS as usize] = [const { IrqSpinlock::new(None) }; ISA_IRQS as usize];
/// The next CPU (by online rank) a line is routed to.
static NEXT_CPU: AtomicU32 = AtomicU32::new(0);

/// What an interrupt handle names: a bound line. Dropping the last
/// reference (the handle closed, its process gone) masks and unbinds it.
pub struct IrqLine {
    irq: u8,
    /// The memory it takes, charged to the process that bound it.
    _charge: Charge,
}

impl IrqLine {
    /// `irq_ack`: the driver has dealt with its device.
    pub fn ack(&self) {
        let mut slot = LINES[usize::from(self.irq)].lock();
        if let Some(b) = slot.as_mut() {
            b.unacked = 0;
            if b.masked {
                b.unmasked();
                if let Err(e) = ioapic::unmask_isa(self.irq) {
                    log::warn!("irq: ISA IRQ {} cannot be unmasked: {e:?}", self.irq);
                }
            }
        }
    }
}

impl Drop for IrqLine {
    fn drop(&mut self) {
        let _ = ioapic::mask_isa(self.irq);
        let mut gone = LINES[usize::from(self.irq)].lock().take();
        let was_masked = gone.as_ref().is_some_and(|b| b.masked);
        if let Some(b) = gone.as_mut() {
            b.unmasked();
        }
        match &gone {
            Some(b) if was_masked => log::info!(
                "irq: ISA IRQ {} unbound (pid {}) while masked, {} interrupts never acknowledged",
                self.irq,
                b.pid,
                b.unacked
            ),
            Some(b) => log::debug!("irq: ISA IRQ {} unbound (pid {}), masked", self.irq, b.pid),
            None => {}
        }
        // The notification goes outside the lock.
        drop(gone);
    }
}

/// `irq_bind`: binds line `r` (an IRQ resource one line long) to
/// `notification`'s `bits`, for process `pid`, and routes it to a CPU.
pub fn bind(
    r: &Resource,
    notification: Arc<Notification>,
    bits: u64,
    pid: u64,
    charge: Charge,
) -> Result<Arc<IrqLine>, Error> {
    if r.kind != resource::IRQ || r.len != 1 || bits == 0 {
        return Err(Error::BadArgument);
    }
    let irq = r.base as u8;
    let level = ioapic::isa_is_level(irq).map_err(|_| Error::NotFound)?;
    {
        let mut slot = LINES[usize::from(irq)].lock();
        if slot.is_some() {
            return Err(Error::Busy);
        }
        *slot = Some(Binding { notification, bits, level, masked: false, unacked: 0, masked_at: 0, report_at: 0, pid });
    }
    // The line's owner from here: dropping it unbinds. (The caller has
    // made room on the heap for it.)
    let line = Arc::new(IrqLine { irq, _charge: charge });
    let n = crate::smp::online_count().max(1);
    let cpu = crate::smp::nth_online(NEXT_CPU.fetch_add(1, Ordering::Relaxed) % n).unwrap_or(0);
    let apic_id = crate::percpu::get(cpu).apic_id();
    match ioapic::route_isa(irq, apic_id) {
        Ok(gsi) => {
            log::info!(
                "irq: ISA IRQ {irq} (GSI {gsi}, {}) bound for pid {pid}, to cpu{cpu}",
                if level { "level" } else { "edge" }
            );
            Ok(line)
        }
        Err(e) => {
            log::warn!("irq: ISA IRQ {irq} cannot be routed: {e:?}");
            // Unbinds it again.
            drop(line);
            Err(Error::NotFound)
        }
    }
}

/// An interrupt on ISA IRQ `irq` (before its end of interrupt): the bound
/// driver's notification is signalled, and the line masked if it must be.
/// True if a driver has the line.
pub fn interrupt(irq: u8) -> bool {
    let Some(line) = LINES.get(usize::from(irq)) else { return false };
    let mut slot = line.lock();
    let Some(b) = slot.as_mut() else { return false };
    b.unacked += 1;
    if !b.masked && (b.level || b.unacked >= IRQ_STORM) {
        b.mask(irq);
        if !b.level {
            log::warn!(
                "irq: ISA IRQ {irq} took {IRQ_STORM} interrupts without an acknowledgement from pid {}: masked until it acknowledges",
                b.pid
            );
        }
    }
    b.notification.signal(b.bits);
    true
}
