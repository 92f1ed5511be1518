//! Placement and balancing: the loads CPUs publish, stealing by idle CPUs
//! and the balancing a busy CPU does at the end of each slice (see the
//! module doc of sched for the policy).
use super::of;
use super::thread::Thread;
use crate::arch::ipi::{self, Ipi};
use crate::percpu::MAX_CPUS;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use ferrite_kcore::sched::{pick_victim, steal_count, Class};

/// Threads one steal moves at most.
const STEAL_MAX: usize = 16;

/// Every online CPU's load now (for diagnostics).
pub fn loads_snapshot() -> [usize; MAX_CPUS] {
    loads(crate::smp::cpu_span())
}

/// The load of every CPU below `span`, in a stack array: the scheduler's
/// paths do not allocate. A CPU that is not online (a hole left by one
/// that failed to start) has none, so it is never a victim.
pub(super) fn loads(span: u32) -> [usize; MAX_CPUS] {
    let mut loads = [0usize; MAX_CPUS];
    for (cpu, load) in loads.iter_mut().enumerate().take(span as usize) {
        *load = of(cpu as u32).load.load(Ordering::Relaxed);
    }
    loads
}

/// Periodic balancing, at the end of a busy CPU's slice (a busy CPU takes
/// one every slice, an idle CPU none, so this costs idle CPUs nothing).
/// Stealing by idle CPUs alone leaves two gaps, both closed here:
/// - a busy CPU that has fewer threads than another by two or more pulls
///   from it (with 2N hogs on N CPUs, one CPU would otherwise run three
///   and another one, for as long as they live);
/// - a CPU with threads waiting kicks halted CPUs that could run one of
///   them: a halted CPU has no timer armed and would otherwise never look.
pub(super) fn balance_tick(me: u32) {
    let online = crate::smp::cpu_span();
    let loads = loads(online);
    if pick_victim(&loads[..online as usize], me as usize).is_some() {
        try_steal(me);
        return;
    }
    let waiting = loads[me as usize].saturating_sub(1);
    if waiting == 0 {
        return;
    }
    let mut kicked = 0;
    for cpu in (0..online).filter(|&cpu| cpu != me && loads[cpu as usize] == 0) {
        if kicked == waiting {
            break;
        }
        // Only a CPU that may run one of them (look at the first few).
        let can_help = of(me).rq.lock().iter().take(16).any(|(_, t)| t.allowed_on(cpu));
        if can_help && crate::percpu::get(cpu).online.load(Ordering::Acquire) {
            let c = of(cpu);
            if !c.ipi_pending.swap(true, Ordering::AcqRel) {
                ipi::send(cpu, Ipi::Reschedule);
            }
            kicked += 1;
        }
    }
}

/// Moves up to half the imbalance from the busiest CPU to this one.
pub(super) fn try_steal(me: u32) -> bool {
    let online = crate::smp::cpu_span();
    let loads = loads(online);
    let Some(victim) = pick_victim(&loads[..online as usize], me as usize) else { return false };
    let want = steal_count(loads[victim], loads[me as usize]);
    // On the stack: the scheduler does not allocate. A bigger imbalance
    // takes a few passes.
    let mut taken: [Option<(Class, Arc<Thread>)>; STEAL_MAX] = Default::default();
    let n = {
        let v = of(victim as u32);
        let mut rq = v.rq.lock();
        let n = rq.steal_into(want, |t| t.allowed_on(me), &mut taken);
        v.load.fetch_sub(n, Ordering::Relaxed);
        n
    };
    if n == 0 {
        return false;
    }
    let c = of(me);
    c.steals.fetch_add(n as u64, Ordering::Relaxed);
    let mut rq = c.rq.lock();
    for (class, t) in taken.into_iter().flatten() {
        t.cpu.store(me, Ordering::Relaxed);
        rq.push(class, t);
        c.load.fetch_add(1, Ordering::Relaxed);
    }
    true
}
