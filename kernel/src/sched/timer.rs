//! Time: the one-shot timer each CPU arms for its next event, the
//! sleepers' heap, and the timer interrupt.
use super::balance::balance_tick;
use super::switch::schedule;
use super::thread::Thread;
use super::wakeup::wake;
use super::{cpu, current, ns_to_tsc, of, InterruptsOff, CLASS_IDLE};
use crate::arch::cpu::rdtsc;
use crate::percpu::cpu_index;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

/// A thread asleep until a TSC deadline, ordered earliest first.
pub(super) struct Sleeper {
    deadline: u64,
    thread: Arc<Thread>,
}

impl PartialEq for Sleeper {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Sleeper {}

impl PartialOrd for Sleeper {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sleeper {
    /// Reversed: BinaryHeap is a max-heap, and the earliest must come out first.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

/// Arms this CPU's timer for its next event: the running thread's slice
/// end (none for the idle thread) or the first sleeper's deadline,
/// whichever is first. Interrupts must be off.
///
/// A timer already armed no later than needed is left alone: when it fires,
/// the interrupt re-arms for whatever is due then. So a CPU switching
/// between threads (a fresh slice end each time, always later) does not
/// reprogram its timer on every switch; it takes at most one early
/// interrupt per slice instead.
pub fn rearm_timer() {
    let c = cpu();
    let sleeper = Some(c.next_wakeup.load(Ordering::Relaxed)).filter(|&d| d != u64::MAX);
    let slice = (c.current_class.load(Ordering::Relaxed) != CLASS_IDLE).then(|| c.slice_end.load(Ordering::Relaxed));
    let next = match (sleeper, slice) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let want = next.unwrap_or(u64::MAX);
    if c.armed.load(Ordering::Relaxed) <= want {
        return;
    }
    c.armed.store(want, Ordering::Relaxed);
    crate::arch::apic::arm(next);
}

/// Re-arms this CPU's timer from scratch, for code that borrowed the timer
/// and left it disarmed. Interrupts must be off.
pub fn reset_timer() {
    cpu().armed.store(u64::MAX, Ordering::Relaxed);
    rearm_timer();
}

/// Sleeps for at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    sleep_ns_unless(ns, || false);
}

/// Sleeps for at least `ns` nanoseconds, or until `cancelled()` holds once
/// the thread is woken for another reason ([`interrupt`]). Returns false if
/// cancelled.
pub fn sleep_ns_unless(ns: u64, cancelled: impl Fn() -> bool) -> bool {
    let deadline = rdtsc().saturating_add(ns_to_tsc(ns));
    let me = current();
    while rdtsc() < deadline {
        let irq = InterruptsOff::new();
        let home = of(cpu_index());
        let heap = &home.sleepers;
        let asleep = {
            // Blocked and on the heap under the heap's lock: the timer
            // interrupt that pops it wakes it (wait.rs's protocol); then the
            // last look at `cancelled` (`block_unless`).
            let mut sleepers = heap.lock();
            sleepers.push(Sleeper { deadline, thread: me.clone() });
            home.next_wakeup.store(sleepers.peek().map_or(u64::MAX, |s| s.deadline), Ordering::Relaxed);
            super::block_unless(&cancelled)
        };
        if asleep {
            rearm_timer();
        }
        schedule(&irq);
        if rdtsc() < deadline {
            // Woken early (interrupt), or never asleep: the heap must not
            // keep the thread, and its stack, until the deadline.
            let mut sleepers = heap.lock();
            sleepers.retain(|s| !Arc::ptr_eq(&s.thread, &me));
            home.next_wakeup.store(sleepers.peek().map_or(u64::MAX, |s| s.deadline), Ordering::Relaxed);
        }
        if cancelled() {
            return false;
        }
    }
    true
}

/// This CPU's timer fired: wake the sleepers whose time has come, end the
/// running thread's slice if it is over, and arm the next event.
pub fn timer_interrupt() {
    let c = cpu();
    if !c.ready.load(Ordering::Relaxed) {
        return;
    }
    // A one-shot timer that fired is disarmed.
    c.armed.store(u64::MAX, Ordering::Relaxed);
    super::watchdog::tick(c);
    let now = rdtsc();
    loop {
        let due = {
            let mut sleepers = c.sleepers.lock();
            match sleepers.peek() {
                Some(s) if s.deadline <= now => {
                    let due = sleepers.pop();
                    cpu().next_wakeup.store(sleepers.peek().map_or(u64::MAX, |s| s.deadline), Ordering::Relaxed);
                    due
                }
                _ => None,
            }
        };
        match due {
            Some(s) => wake(s.thread),
            None => break,
        }
    }
    if c.current_class.load(Ordering::Relaxed) != CLASS_IDLE && now >= c.slice_end.load(Ordering::Relaxed) {
        balance_tick(cpu_index());
        c.need_resched.store(true, Ordering::Relaxed);
        // The next tick a slice from now, not at once: if preemption is off
        // the switch waits for the guard's drop, and a timer re-armed for a
        // deadline already past would fire back to back until then.
        // SAFETY: `current` holds a reference while the thread runs here.
        let class = unsafe { &*c.current.load(Ordering::Relaxed) }.class;
        c.slice_end.store(now + ns_to_tsc(class.slice_ns()), Ordering::Relaxed);
    }
    rearm_timer();
}
