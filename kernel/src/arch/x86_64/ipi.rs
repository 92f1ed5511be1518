//! Inter-processor interrupts: named vectors, sending, and their handlers.
//!
//! - `RESCHEDULE`: the target should run its scheduler (sched/mod.rs).
//! - `TLB_SHOOTDOWN`: drop pages from this CPU's TLB, or leave an address
//!   space that is about to be freed (tlb.rs).
//! - `STOP`: halt for good; sent by the panic path to every other CPU,
//!   followed by an NMI to any CPU that did not stop (its interrupts may be
//!   off).
//! - `CALL`: wakes a CPU to run a cross-CPU call (smp::call).
//! - `TEST`: the smp test suite's mailbox IPI.
//! - `PING`: counts itself on the receiving CPU (`PerCpu::pings`): the
//!   benchmark of an IPI's round trip.
//!
//! Every handler sends EOI to its own local APIC.
use super::apic::{self, Icr};
use super::idt::vector;
use crate::percpu;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipi {
    Reschedule,
    TlbShootdown,
    Stop,
    Call,
    Test,
    Ping,
}

impl Ipi {
    pub const fn vector(self) -> u8 {
        match self {
            Ipi::Reschedule => vector::RESCHEDULE,
            Ipi::TlbShootdown => vector::TLB_SHOOTDOWN,
            Ipi::Stop => vector::STOP,
            Ipi::Call => vector::CALL,
            Ipi::Test => vector::TEST,
            Ipi::Ping => vector::PING,
        }
    }
}

/// A set of logical CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuSet([u64; percpu::MAX_CPUS / 64]);

impl CpuSet {
    pub const fn new() -> Self {
        CpuSet([0; percpu::MAX_CPUS / 64])
    }
    pub fn insert(&mut self, cpu: u32) {
        self.0[cpu as usize / 64] |= 1 << (cpu % 64);
    }
    pub fn remove(&mut self, cpu: u32) {
        self.0[cpu as usize / 64] &= !(1 << (cpu % 64));
    }
    pub fn contains(&self, cpu: u32) -> bool {
        self.0[cpu as usize / 64] & (1 << (cpu % 64)) != 0
    }
    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// How many members are below `cpu`.
    pub fn count_below(&self, cpu: u32) -> u32 {
        let (word, bit) = (cpu as usize / 64, cpu % 64);
        let whole: u32 = self.0.iter().take(word).map(|w| w.count_ones()).sum();
        whole + self.0.get(word).map_or(0, |w| (w & ((1u64 << bit) - 1)).count_ones())
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            (0..64u32).filter(move |bit| word & (1 << bit) != 0).map(move |bit| i as u32 * 64 + bit)
        })
    }
}

/// A [`CpuSet`] that CPUs update concurrently: each CPU sets and clears
/// its own bit, others take snapshots.
#[derive(Debug, Default)]
pub struct AtomicCpuSet([AtomicU64; percpu::MAX_CPUS / 64]);

impl AtomicCpuSet {
    pub const fn new() -> Self {
        AtomicCpuSet([const { AtomicU64::new(0) }; percpu::MAX_CPUS / 64])
    }
    /// Adds `cpu`; a full barrier (a locked instruction), so that what the
    /// caller does next is not seen before the bit by a snapshot taker.
    pub fn insert(&self, cpu: u32) {
        self.0[cpu as usize / 64].fetch_or(1 << (cpu % 64), Ordering::SeqCst);
    }
    pub fn remove(&self, cpu: u32) {
        self.0[cpu as usize / 64].fetch_and(!(1 << (cpu % 64)), Ordering::SeqCst);
    }
    pub fn snapshot(&self) -> CpuSet {
        let mut set = CpuSet::new();
        for (word, atomic) in set.0.iter_mut().zip(&self.0) {
            *word = atomic.load(Ordering::SeqCst);
        }
        set
    }
}

/// Sends `ipi` to logical CPU `cpu`.
pub fn send(cpu: u32, ipi: Ipi) {
    percpu::current().ipis_sent.fetch_add(1, Ordering::Relaxed);
    apic::send(Icr::fixed(percpu::get(cpu).apic_id(), ipi.vector()));
}

/// Sends `ipi` to every CPU in `set`.
pub fn send_set(set: &CpuSet, ipi: Ipi) {
    for cpu in set.iter() {
        send(cpu, ipi);
    }
}

/// Sends `ipi` to every other CPU, in one ICR write.
pub fn send_all_others(ipi: Ipi) {
    percpu::current().ipis_sent.fetch_add(1, Ordering::Relaxed);
    apic::send(Icr::fixed(0, ipi.vector()).to_all_but_self());
}

/// Sends `ipi` to every other online CPU: by shorthand (one ICR write) when
/// every present CPU is online, else to each, so that a CPU that failed to
/// start or was left parked gets nothing.
pub fn send_online_others(ipi: Ipi) {
    if crate::smp::all_present_online() {
        send_all_others(ipi);
    } else {
        let mut others = crate::smp::online_cpus();
        others.remove(percpu::cpu_index());
        send_set(&others, ipi);
    }
}

/// Set by the panic path: an NMI now means "stop".
static STOPPING: AtomicBool = AtomicBool::new(false);
/// CPUs that have stopped.
static STOPPED: AtomicU32 = AtomicU32::new(0);

/// Stops every other online CPU: a STOP IPI, then an NMI for those that
/// did not stop within `wait_ns` (interrupts off, or spinning). Returns how
/// many of the `others` CPUs stopped. Neither goes by shorthand unless
/// every present CPU is online: a CPU that failed to start may have no IDT
/// to take a vector with, and would triple-fault the machine.
pub fn stop_others(others: u32, wait_ns: u64) -> u32 {
    STOPPING.store(true, Ordering::SeqCst);
    send_online_others(Ipi::Stop);
    if !wait_for_stopped(others, wait_ns) {
        if crate::smp::all_present_online() {
            apic::send(Icr::nmi(0).to_all_but_self());
        } else {
            // Not to those that stopped already (they cleared `online`).
            let me = percpu::cpu_index();
            let running = |c: u32| c != me && percpu::get(c).online.load(Ordering::SeqCst);
            for cpu in crate::smp::online_cpus().iter().filter(|&c| running(c)) {
                apic::send(Icr::nmi(percpu::get(cpu).apic_id()));
            }
        }
        wait_for_stopped(others, wait_ns);
    }
    STOPPED.load(Ordering::SeqCst)
}

fn wait_for_stopped(others: u32, wait_ns: u64) -> bool {
    let start = super::cpu::rdtsc();
    let limit = wait_ns * crate::time::tsc_hz() / 1_000_000_000;
    while STOPPED.load(Ordering::SeqCst) < others {
        if super::cpu::rdtsc() - start > limit {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn stop_this_cpu() -> ! {
    // Counted once: a stopped CPU that takes the NMI meant for the others
    // (the shorthand reaches it too) comes through here again.
    if percpu::current().online.swap(false, Ordering::SeqCst) {
        STOPPED.fetch_add(1, Ordering::SeqCst);
    }
    super::power::halt_forever()
}

/// An NMI: if the panic path sent it, this CPU stops here.
pub(super) fn nmi() {
    if STOPPING.load(Ordering::SeqCst) {
        stop_this_cpu();
    }
}

/// Handles an IPI vector; returns false if `v` is not one.
pub(super) fn interrupt(v: u8) -> bool {
    let handled = match v {
        vector::RESCHEDULE => {
            crate::sched::reschedule_ipi();
            true
        }
        vector::CALL => true,
        vector::TLB_SHOOTDOWN => {
            super::tlb::service();
            true
        }
        vector::STOP => {
            apic::end_of_interrupt();
            stop_this_cpu();
        }
        vector::PING => {
            percpu::current().pings.fetch_add(1, Ordering::Release);
            true
        }
        vector::TEST => {
            crate::ktest::smp::test_ipi_received();
            true
        }
        _ => false,
    };
    if handled {
        percpu::current().ipis_received.fetch_add(1, Ordering::Relaxed);
        apic::end_of_interrupt();
    }
    handled
}
