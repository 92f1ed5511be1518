//! The scheduler watchdog, and the per-CPU state dumps that hung tests
//! and the watchdog print.
use super::{of, CpuSched, CLASS_IDLE};
use crate::arch::cpu::rdtsc;
use crate::percpu::cpu_index;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ferrite_kcore::sched::Class;

/// The watchdog: a CPU that takes this many timer interrupts of its own
/// without passing through `schedule` while threads wait in its queue has
/// stopped scheduling. A slice ends at least every 10 ms of the CPU's time,
/// and a slice that ends with a thread waiting leads to `schedule` unless
/// preemption is off, so a healthy CPU never gets near it. It counts the
/// CPU's own interrupts rather than time, so that a virtual CPU its host
/// does not run (16 of them on 2 host cores, under TCG) does not look hung.
/// Each bite is logged with every CPU's state, and counted (the stress
/// suite fails on any).
pub const WATCHDOG_TICKS: u64 = 20;

pub(super) static WATCHDOG_BITES: AtomicU64 = AtomicU64::new(0);

pub(super) static WATCHDOG_CPU: AtomicU32 = AtomicU32::new(0);

/// Times the watchdog has bitten since boot, and the CPU it last bit on.
pub fn watchdog_bites() -> (u64, u32) {
    (WATCHDOG_BITES.load(Ordering::Acquire), WATCHDOG_CPU.load(Ordering::Relaxed))
}

/// Logs every CPU's scheduling state: for the reports of hung tests. First
/// it sends every other CPU an NMI, which even a CPU spinning with
/// interrupts off takes, and logs where each was (its RIP, and whether in
/// user mode and with interrupts on): a CPU that takes no timer interrupt
/// shows where it is stuck.
pub fn dump_state() {
    let me = crate::percpu::cpu_index();
    let others = crate::smp::online_cpus();
    let before: alloc::vec::Vec<u64> =
        others.iter().map(|c| crate::percpu::get(c).nmis.load(Ordering::Acquire)).collect();
    // To each online CPU, not by shorthand: a parked or half-started CPU
    // may have no IDT to take it with.
    for cpu in others.iter().filter(|&c| c != me) {
        crate::arch::apic::send(crate::arch::apic::Icr::nmi(crate::percpu::get(cpu).apic_id()));
    }
    crate::time::spin_ns(20_000_000);
    for (i, cpu) in others.iter().enumerate().filter(|&(_, c)| c != me) {
        let p = crate::percpu::get(cpu);
        let took = p.nmis.load(Ordering::Acquire) != before[i];
        let cs_flags = p.nmi_cs_flags.load(Ordering::Relaxed);
        log::error!(
            "sched state: cpu{cpu} {} at rip={:#x} ({} mode, interrupts {})",
            if took { "was" } else { "took no NMI; last seen" },
            p.nmi_rip.load(Ordering::Relaxed),
            if (cs_flags >> 32) & 3 == 3 { "user" } else { "kernel" },
            if cs_flags & (1 << 9) != 0 { "on" } else { "off" },
        );
    }
    let now = rdtsc();
    for cpu in crate::smp::online_cpus().iter() {
        let c = of(cpu);
        let class = match c.current_class.load(Ordering::Relaxed) {
            CLASS_IDLE => "idle",
            x if x == Class::High as u8 => "high",
            _ => "normal",
        };
        let queued = c.rq.try_with(|q| q.len());
        // SAFETY: a diagnostic read of a running thread, which stays alive
        // while it runs; a racing switch shows a neighbouring thread.
        let (name, id) = unsafe { c.current.load(Ordering::Relaxed).as_ref() }.map_or(("?", 0), |t| (t.name, t.id));
        log::error!(
            "sched state: cpu{cpu} running={class} '{name}' #{id} load={} queued={} since_switch_ms={} ticks_since_pass={} need_resched={} preempt_count={} sleepers={}",
            c.load.load(Ordering::Relaxed),
            queued.map_or(alloc::string::String::from("locked"), |n| alloc::format!("{n}")),
            crate::time::tsc_to_ns(now.saturating_sub(c.last_switch.load(Ordering::Relaxed))) / 1_000_000,
            c.ticks_since_pass.load(Ordering::Relaxed),
            c.need_resched.load(Ordering::Relaxed),
            crate::percpu::get(cpu).preempt_count.load(Ordering::Relaxed),
            c.sleepers.try_with(|s| s.len()).map_or(alloc::string::String::from("locked"), |n| alloc::format!("{n}")),
        );
    }
}

/// A timer interrupt on this CPU: bites once the CPU has taken
/// [`WATCHDOG_TICKS`] of them without passing through `schedule` while
/// threads wait in its queue.
pub(super) fn tick(c: &CpuSched) {
    let ticks = c.ticks_since_pass.fetch_add(1, Ordering::Relaxed) + 1;
    if ticks == WATCHDOG_TICKS && c.load.load(Ordering::Relaxed) >= 2 {
        WATCHDOG_CPU.store(cpu_index(), Ordering::Relaxed);
        WATCHDOG_BITES.fetch_add(1, Ordering::Release);
        log::error!(
            "sched: watchdog: cpu{} took {WATCHDOG_TICKS} timer interrupts without passing through the scheduler while threads waited",
            cpu_index()
        );
        dump_state();
    }
}
