//! The idle thread: cross-CPU calls, stealing, an adaptive poll, then
//! `hlt`.
use super::balance::try_steal;
use super::switch::schedule;
use super::{ns_to_tsc, of, CpuSched, InterruptsOff};
use crate::arch::cpu::rdtsc;
use crate::percpu::cpu_index;
use core::sync::atomic::Ordering;
use x86_64::instructions::interrupts;

/// How long an idle CPU polls for work before it halts: between these
/// bounds, adapted per CPU. Work that comes while it polls (the other end of
/// an IPC round trip, a thread woken right after it blocked) starts without
/// an IPI and without waking a halted CPU, which costs microseconds on
/// hardware and tens of them under emulation. Guests of hypervisors poll
/// the same way (Linux's cpuidle-haltpoll, up to 200 µs by default).
///
/// The window adapts as haltpoll's does: a halt that work ended within
/// [`IDLE_POLL_MAX_NS`] means polling a little longer would have caught it
/// (double the window); a poll that ran out and then slept longer than
/// that means nothing was coming (halve it). A fixed window is bistable: a
/// ping-pong whose wakeups once take longer than the window (a halted
/// partner) keeps finding its partner halted.
pub(super) const IDLE_POLL_MIN_NS: u64 = 10_000;

pub(super) const IDLE_POLL_START_NS: u64 = 50_000;

pub(super) const IDLE_POLL_MAX_NS: u64 = 400_000;

/// The idle thread: cross-CPU calls, stealing, a short poll, then `hlt`
/// until an interrupt. The last check for work and `sti; hlt` happen with
/// interrupts off in between, so a wakeup IPI cannot slip past; while it
/// polls, a waker that sees `polling` sends no IPI, and the idle thread
/// looks at `need_resched` once more after it stops polling (both sides
/// SeqCst), so no wakeup is lost either way.
pub(super) fn idle_main() -> ! {
    let me = cpu_index();
    let c = of(me);
    loop {
        let irq = InterruptsOff::new();
        if crate::smp::call::run_pending() {
            continue;
        }
        if !c.rq.lock().is_empty() || try_steal(me) {
            schedule(&irq);
            continue;
        }
        if poll_for_work(c) {
            if c.need_resched.load(Ordering::Relaxed) {
                // (Clears it even if another CPU stole the thread meanwhile.)
                schedule(&irq);
            }
            // Round again: the checks above take whatever else came.
            continue;
        }
        let start = crate::arch::cpu::rdtsc();
        // Halted with interrupts on: not an interrupts-off stretch.
        crate::arch::irqtrace::on();
        interrupts::enable_and_hlt();
        interrupts::disable();
        crate::arch::irqtrace::off(core::panic::Location::caller());
        let slept = crate::time::tsc_to_ns(crate::arch::cpu::rdtsc() - start);
        c.idle_ns.fetch_add(slept, Ordering::Relaxed);
        let poll = c.poll_ns.load(Ordering::Relaxed);
        let adapted = if slept < IDLE_POLL_MAX_NS && c.need_resched.load(Ordering::Relaxed) {
            (poll * 2).min(IDLE_POLL_MAX_NS)
        } else if slept >= IDLE_POLL_MAX_NS {
            (poll / 2).max(IDLE_POLL_MIN_NS)
        } else {
            poll
        };
        c.poll_ns.store(adapted, Ordering::Relaxed);
        drop(irq);
    }
}

/// Polls for this CPU's poll window, interrupts on, until work may have
/// come: `need_resched` (a thread woken here), or any interrupt taken (a
/// timer or an IPI, a cross-CPU call's say). It keeps the contract of the
/// `hlt` it stands in for: an interrupt ends the wait, and the idle loop
/// then looks at everything again (an interrupt consumed while polling
/// must not leave its work waiting behind a later `hlt`). True if it
/// ended early. Called by the idle thread with interrupts off, and returns
/// with them off.
pub(super) fn poll_for_work(c: &CpuSched) -> bool {
    let deadline = rdtsc() + ns_to_tsc(c.poll_ns.load(Ordering::Relaxed));
    let me = crate::percpu::current();
    let interrupts_taken = || me.ipis_received.load(Ordering::Relaxed) + me.timer_ticks.load(Ordering::Relaxed);
    let before = interrupts_taken();
    let work = || c.need_resched.load(Ordering::SeqCst) || interrupts_taken() != before;
    // Not switched out while `polling` says so (an interrupt's preemption
    // point, or a guard dropped in the console drain below): wakers then
    // send this CPU no IPI, and the thread that ran instead would keep
    // their threads waiting until it blocked. A wakeup ends the poll; the
    // idle loop then switches, with `polling` cleared.
    let no_preempt = super::PreemptGuard::new();
    c.polling.store(true, Ordering::SeqCst);
    crate::arch::irqtrace::on();
    interrupts::enable();
    // What interrupt handlers left in the console, and NMIs to report.
    crate::arch::trap::report_nmis();
    crate::console::flush_some();
    while !work() && rdtsc() < deadline {
        core::hint::spin_loop();
    }
    interrupts::disable();
    crate::arch::irqtrace::off(core::panic::Location::caller());
    c.polling.store(false, Ordering::SeqCst);
    // Interrupts are off: dropping it switches nowhere.
    drop(no_preempt);
    // A waker that saw `polling` sent no IPI: its need_resched is visible now.
    work() || !c.rq.lock().is_empty()
}
