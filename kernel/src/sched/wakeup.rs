//! Wakeups: putting a runnable thread on a CPU's run queue, and the
//! reschedule IPI when that CPU must act.
use super::thread::{state, Thread, ANY_CPU};
use super::{class_code, cpu, of, CLASS_IDLE};
use crate::arch::ipi::{self, Ipi};
use crate::percpu::cpu_index;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

/// Puts a RUNNABLE thread on the run queue of a CPU it may run on and
/// tells that CPU if it must act.
pub(super) fn enqueue(t: Arc<Thread>) {
    let last = t.cpu.load(Ordering::Relaxed);
    let target = match t.affinity() {
        ANY_CPU if crate::smp::is_online(last) => last,
        ANY_CPU => cpu_index(),
        pinned => pinned,
    };
    t.cpu.store(target, Ordering::Relaxed);
    let class = t.class;
    let c = of(target);
    {
        let mut rq = c.rq.lock();
        rq.push(class, t);
        c.load.fetch_add(1, Ordering::Relaxed);
    }
    let running = c.current_class.load(Ordering::Relaxed);
    if running == CLASS_IDLE || class_code(class) < running {
        // SeqCst, against the idle thread's `polling` (see idle_main).
        c.need_resched.store(true, Ordering::SeqCst);
        if target != cpu_index() && !c.polling.load(Ordering::SeqCst) && !c.ipi_pending.swap(true, Ordering::AcqRel) {
            ipi::send(target, Ipi::Reschedule);
        }
    }
}

/// Makes a BLOCKED thread runnable (a no-op if it is not blocked).
pub(crate) fn wake(t: Arc<Thread>) {
    // SeqCst: the other half of `block_unless`'s protocol.
    if t.state.compare_exchange(state::BLOCKED, state::RUNNABLE, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        enqueue(t);
    }
}

/// Gets a thread's attention: wakes it if it is blocked (its wait loop
/// then looks at why, e.g. its process is ending), and interrupts the CPU
/// it runs on if that is another one, so that it passes through the
/// kernel's return-to-user checks soon.
pub fn interrupt(t: &Arc<Thread>) {
    wake(t.clone());
    let cpu = t.cpu.load(Ordering::Relaxed);
    if t.state() == state::RUNNING && cpu != cpu_index() && !of(cpu).ipi_pending.swap(true, Ordering::AcqRel) {
        ipi::send(cpu, Ipi::Reschedule);
    }
}

/// A reschedule IPI arrived: the sender set need_resched already, or it
/// kicked this idle CPU to look for work to steal (`balance_tick`).
pub fn reschedule_ipi() {
    cpu().ipi_pending.store(false, Ordering::Release);
}
