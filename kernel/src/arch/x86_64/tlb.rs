//! TLB shootdown: after a mapping is removed, the CPUs that may have cached
//! it drop it before the caller reuses the memory.
//!
//! One request at a time, held in globals (the address, the page count, or
//! an address space to leave) while a CPU owns the request slot (`BUSY`).
//! The initiator writes the request, stores its generation number in the
//! `tlb_request` word of each *target* CPU, interrupts them with a
//! TLB_SHOOTDOWN IPI and waits until all have acknowledged (`PENDING`).
//! A CPU acknowledges in [`service`] by moving its `tlb_generation` up to
//! its `tlb_request`; a CPU that was not asked never acts, so requests can
//! target a subset: a kernel mapping concerns every online CPU, a user
//! mapping only the CPUs whose TLB may hold its address space (its active
//! set, mem::aspace).
//!
//! **Late acknowledgements.** An initiator that has waited [`LATE_NS`]
//! says which targets have not answered and sends them the IPI again, every
//! [`LATE_NS`]: a CPU halted with interrupts on that never got the first
//! IPI (CI saw a boot hang so, once in several hundred, not reproduced
//! since) then answers, and the log says it happened; one that cannot
//! answer at all is named in the log instead of hanging the machine in
//! silence.
//!
//! A CPU that cannot take the IPI because its interrupts are off is always
//! spinning on something (a lock, another shootdown, a thread still
//! switching out); all of those spin loops call [`service`], so no pair of
//! CPUs can each wait for the other.
use super::ipi::{self, CpuSet, Ipi};
use crate::mem::aspace::AddressSpace;
use crate::percpu;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

static BUSY: AtomicBool = AtomicBool::new(false);
static GENERATION: AtomicU64 = AtomicU64::new(0);
static ADDRESS: AtomicU64 = AtomicU64::new(0);
static PAGES: AtomicU64 = AtomicU64::new(0);
/// Non-null: the request asks its targets to stop using this address
/// space (it is about to be freed) instead of flushing pages.
static LEAVE: AtomicPtr<AddressSpace> = AtomicPtr::new(core::ptr::null_mut());
/// Above this many pages a full flush is cheaper than page by page.
const FULL_FLUSH_PAGES: u64 = 32;
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Shootdowns initiated, for statistics.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// How long an initiator waits before it sends the IPI again.
const LATE_NS: u64 = 1_000_000_000;
/// IPIs sent again to late targets, since boot.
static RESENT: AtomicU64 = AtomicU64::new(0);
/// For the test of late targets: the next request sends no IPI at first,
/// as if it were lost.
static LOSE_NEXT_IPI: AtomicBool = AtomicBool::new(false);

/// Carries out the request addressed to this CPU, if it has not yet, and
/// acknowledges it. Cheap when there is nothing to do.
///
/// Some callers spin with interrupts on (heap.rs's wait for room), so the
/// work runs with interrupts off: a thread preempted between marking the
/// request served and acknowledging it left the initiator waiting, and
/// the next thread on this CPU that spun for the request slot (interrupts
/// off) found the request served and never let the first one finish. CI
/// saw that hang (the initiator's resends named no late CPU).
#[inline]
pub fn service() {
    let me = percpu::current();
    if me.tlb_generation.load(Ordering::Relaxed) == me.tlb_request.load(Ordering::Acquire) {
        return;
    }
    let _irq = crate::sched::InterruptsOff::new();
    // This CPU's block now: the thread may have moved before the token.
    let me = percpu::current();
    let request = me.tlb_request.load(Ordering::Acquire);
    if me.tlb_generation.load(Ordering::Relaxed) == request {
        return;
    }
    me.tlb_generation.store(request, Ordering::Relaxed);
    // The request's fields cannot change before we acknowledge it: the
    // initiator holds the slot until every target has.
    let leave = LEAVE.load(Ordering::Acquire);
    if leave.is_null() {
        flush_range(ADDRESS.load(Ordering::Acquire), PAGES.load(Ordering::Acquire));
    } else {
        crate::mem::aspace::leave_if_loaded(leave);
    }
    me.tlb_served.fetch_add(1, Ordering::Relaxed);
    PENDING.fetch_sub(1, Ordering::AcqRel);
}

/// Drops `pages` pages from `start` from this CPU's TLB, global entries
/// included.
pub fn flush_range(start: u64, pages: u64) {
    if pages > FULL_FLUSH_PAGES {
        // Toggling CR4.PGE flushes global entries too (SDM vol. 3, 4.10.4.1).
        use x86_64::registers::control::{Cr4, Cr4Flags};
        let cr4 = Cr4::read();
        // SAFETY: clearing and restoring PGE only flushes the TLB.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
        x86_64::instructions::tlb::flush_all();
    } else {
        for i in 0..pages {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(start + i * 4096));
        }
    }
}

/// Drops `pages` kernel-half pages from `addr` from every CPU's TLB: this
/// one's, then every other online CPU's with one IPI, waiting until all
/// have done so.
///
/// All of it runs with interrupts off. Otherwise the caller could be
/// preempted while it holds the request slot, and a thread that then
/// spins for the slot with interrupts off on the same CPU would wait
/// forever (the stress suite hung three CPUs exactly so); or it could
/// migrate between its local flush and the request, and the CPU it moved
/// to would count itself flushed without having flushed.
pub fn shootdown(addr: u64, pages: u64) {
    {
        let _irq = crate::sched::InterruptsOff::new();
        flush_range(addr, pages);
        request(&online_others(), addr, pages, core::ptr::null_mut());
    }
}

/// Flushes every CPU's whole TLB (global entries included) with one
/// request: for changes to many scattered pages at once.
pub fn shootdown_all() {
    shootdown(0, u64::MAX);
}

/// Drops `pages` user pages from `addr` from the TLBs of the CPUs in
/// `targets` (the active set of their address space); this CPU flushes its
/// own if it is one of them.
pub fn shootdown_user(addr: u64, pages: u64, targets: &CpuSet) {
    {
        let _irq = crate::sched::InterruptsOff::new();
        let mut others = *targets;
        let me = percpu::cpu_index();
        if others.contains(me) {
            flush_range(addr, pages);
            others.remove(me);
        }
        request(&others, addr, pages, core::ptr::null_mut());
    }
}

/// Makes every CPU in `targets` stop using `aspace` (load the kernel's
/// page tables if it has it loaded), and waits until they have: nothing
/// may walk an address space's tables once they are freed. The caller
/// leaves it itself first.
pub fn leave_everywhere(aspace: *const AddressSpace, targets: &CpuSet) {
    {
        let _irq = crate::sched::InterruptsOff::new();
        let mut others = *targets;
        others.remove(percpu::cpu_index());
        request(&others, 0, 0, aspace.cast_mut());
    }
}

/// Every online CPU but this one.
fn online_others() -> CpuSet {
    let mut set = crate::smp::online_cpus();
    set.remove(percpu::cpu_index());
    set
}

/// Sends one request to `targets` (this CPU not among them) and waits for
/// every acknowledgement. Interrupts must be off.
fn request(targets: &CpuSet, addr: u64, pages: u64, leave: *mut AddressSpace) {
    let count = targets.len();
    if count == 0 {
        return;
    }
    while BUSY.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        service();
        core::hint::spin_loop();
    }
    ADDRESS.store(addr, Ordering::Release);
    PAGES.store(pages, Ordering::Release);
    LEAVE.store(leave, Ordering::Release);
    PENDING.store(count, Ordering::Release);
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    for cpu in targets.iter() {
        percpu::get(cpu).tlb_request.store(generation, Ordering::Release);
    }
    COUNT.fetch_add(1, Ordering::Relaxed);
    if LOSE_NEXT_IPI.load(Ordering::Relaxed) && LOSE_NEXT_IPI.swap(false, Ordering::Relaxed) {
        // The test's lost IPI: only the resend below reaches the targets.
    } else if count + 1 == crate::smp::online_count() && crate::smp::all_present_online() {
        // Everyone else, and no CPU that is not online: one ICR write
        // instead of one per CPU.
        ipi::send_all_others(Ipi::TlbShootdown);
    } else {
        ipi::send_set(targets, Ipi::TlbShootdown);
    }
    let start = super::cpu::rdtsc();
    let mut late = 1;
    while PENDING.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
        if crate::time::tsc_to_ns(super::cpu::rdtsc().wrapping_sub(start)) >= late * LATE_NS {
            resend(targets, generation, late);
            late += 1;
        }
    }
    BUSY.store(false, Ordering::Release);
}

/// The targets of request `generation` that have not answered after
/// `seconds` s: named, and sent the IPI again (see the module doc).
fn resend(targets: &CpuSet, generation: u64, seconds: u64) {
    let mut waiting = CpuSet::default();
    for cpu in targets.iter() {
        if percpu::get(cpu).tlb_generation.load(Ordering::Acquire) < generation {
            waiting.insert(cpu);
        }
    }
    struct Cpus(CpuSet);
    impl core::fmt::Display for Cpus {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            self.0.iter().try_for_each(|cpu| write!(f, " cpu{cpu}"))
        }
    }
    if waiting.len() == 0 {
        log::warn!(
            "tlb: shootdown {generation} from cpu{}: every target has served it, yet {} not acknowledged after {seconds} s",
            percpu::cpu_index(),
            PENDING.load(Ordering::Acquire)
        );
        return;
    }
    log::warn!(
        "tlb: shootdown {generation} from cpu{} unanswered after {seconds} s by{}; sending the IPI again",
        percpu::cpu_index(),
        Cpus(waiting)
    );
    RESENT.fetch_add(waiting.len() as u64, Ordering::Relaxed);
    ipi::send_set(&waiting, Ipi::TlbShootdown);
}

/// IPIs sent again to late targets since boot.
pub fn resent() -> u64 {
    RESENT.load(Ordering::Relaxed)
}

/// Makes the next shootdown request send no IPI at first (for the test of
/// late targets).
pub fn lose_next_ipi() {
    LOSE_NEXT_IPI.store(true, Ordering::Relaxed);
}

/// Shootdowns initiated since boot.
pub fn count() -> u64 {
    COUNT.load(Ordering::Relaxed)
}
