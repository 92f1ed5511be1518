//! TLB shootdown: after a kernel mapping is removed, every other CPU drops
//! what its TLB may have cached of it before the caller reuses the memory.
//!
//! One request at a time (a global generation number and address, and a
//! count of CPUs still to acknowledge). The initiator sends a TLB_SHOOTDOWN
//! IPI to every other CPU and waits for the count to reach zero. A CPU that
//! cannot take the IPI because its interrupts are off is always spinning on
//! something (a lock, another shootdown, a thread still switching out); all
//! of those spin loops call [`service`], so no pair of CPUs can each wait
//! for the other.
use super::ipi::{self, Ipi};
use crate::percpu;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

static BUSY: AtomicBool = AtomicBool::new(false);
static GENERATION: AtomicU64 = AtomicU64::new(0);
static ADDRESS: AtomicU64 = AtomicU64::new(0);
static PAGES: AtomicU64 = AtomicU64::new(0);
/// Above this many pages a full flush is cheaper than page by page.
const FULL_FLUSH_PAGES: u64 = 32;
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Shootdowns initiated, for statistics.
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Acknowledges the current request on this CPU if it has not yet: flushes
/// the address and counts itself done. Cheap when there is nothing to do.
#[inline]
pub fn service() {
    let generation = GENERATION.load(Ordering::Acquire);
    let me = percpu::current();
    if me.tlb_generation.load(Ordering::Relaxed) == generation {
        return;
    }
    me.tlb_generation.store(generation, Ordering::Relaxed);
    flush_range(ADDRESS.load(Ordering::Acquire), PAGES.load(Ordering::Acquire));
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
    x86_64::instructions::interrupts::without_interrupts(|| shootdown_locked(addr, pages));
}

/// Flushes every CPU's whole TLB (global entries included) with one
/// request: for changes to many scattered pages at once.
pub fn shootdown_all() {
    shootdown(0, u64::MAX);
}

fn shootdown_locked(addr: u64, pages: u64) {
    flush_range(addr, pages);
    let others = crate::smp::online_count().saturating_sub(1);
    if others == 0 {
        return;
    }
    while BUSY.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        service();
        core::hint::spin_loop();
    }
    ADDRESS.store(addr, Ordering::Release);
    PAGES.store(pages, Ordering::Release);
    PENDING.store(others, Ordering::Release);
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    // This CPU flushed already and must not count itself.
    percpu::current().tlb_generation.store(generation, Ordering::Relaxed);
    COUNT.fetch_add(1, Ordering::Relaxed);
    ipi::send_all_others(Ipi::TlbShootdown);
    while PENDING.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
    BUSY.store(false, Ordering::Release);
}

/// The current request's generation: a CPU coming online starts from it,
/// so it never acknowledges a request it was not counted in.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Shootdowns initiated since boot.
pub fn count() -> u64 {
    COUNT.load(Ordering::Relaxed)
}
