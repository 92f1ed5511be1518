//! Picking the next thread and switching to it: `schedule`, the direct
//! handoff of IPC (`handoff`), blocking, and what a new thread runs first.
use super::thread::{state, Thread};
use super::wakeup::{enqueue, wake};
use super::{class_code, cpu, current, ns_to_tsc, of, rearm_timer, with_current, CpuSched, InterruptsOff, CLASS_IDLE};
use crate::arch::cpu::rdtsc;
use crate::arch::switch::switch_context;
use crate::percpu::cpu_index;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use x86_64::instructions::interrupts;

/// Gives up the CPU to any thread of the same or a higher class.
pub fn yield_now() {
    let irq = InterruptsOff::new();
    schedule(&irq);
}

/// Changes a thread's affinity; a running thread moves at its next
/// scheduling point.
pub fn set_affinity(t: &Thread, affinity: u32) {
    t.affinity.store(affinity, Ordering::Release);
    let me = current();
    if core::ptr::eq(&*me, t) && !t.allowed_on(cpu_index()) {
        drop(me);
        yield_now();
    }
}

/// Ends the running thread.
pub fn exit_current() -> ! {
    let irq = InterruptsOff::new();
    let me = current();
    // The condition first, then the wakeup (wait.rs).
    me.state.store(state::EXITED, Ordering::Release);
    me.exited.wake_all();
    drop(me);
    schedule(&irq);
    unreachable!("sched: an exited thread ran again");
}

/// Picks the next thread and switches to it. Interrupts must be off (the
/// token says so); returns when this thread runs again.
pub fn schedule(_irq: &InterruptsOff) {
    let me = cpu_index();
    let c = of(me);
    c.need_resched.store(false, Ordering::Relaxed);
    c.ticks_since_pass.store(0, Ordering::Relaxed);
    let prev_ptr = c.current.load(Ordering::Relaxed);
    let idle_ptr = c.idle.load(Ordering::Relaxed);
    // SAFETY: `current` holds a reference while the thread runs here.
    let prev = unsafe { &*prev_ptr };
    let prev_is_idle = prev_ptr == idle_ptr;

    // Queued threads whose affinity changed while they waited here: moved
    // once the lock is dropped (two run-queue locks are never held at once).
    let mut misplaced: [Option<Arc<Thread>>; 4] = Default::default();
    let next_ptr: *mut Thread = {
        let mut rq = c.rq.lock();
        if !prev_is_idle && prev.state() == state::RUNNING {
            if !prev.allowed_on(me) {
                prev.state.store(state::RUNNABLE, Ordering::Release);
                c.migrate_prev.store(true, Ordering::Relaxed);
            } else if rq.peek_class().is_some_and(|waiting| waiting <= prev.class) {
                prev.state.store(state::RUNNABLE, Ordering::Release);
                // SAFETY: as above; the queue gets its own reference.
                let again = unsafe {
                    Arc::increment_strong_count(prev_ptr);
                    Arc::from_raw(prev_ptr)
                };
                rq.push(prev.class, again);
            } else {
                // Nothing of its class or higher is waiting: it keeps going.
                c.slice_end.store(rdtsc() + ns_to_tsc(prev.class.slice_ns()), Ordering::Relaxed);
                drop(rq);
                rearm_timer();
                return;
            }
        }
        let mut picked = None;
        for slot in misplaced.iter_mut() {
            match rq.pop() {
                Some((_, t)) if t.allowed_on(me) => {
                    picked = Some(t);
                    break;
                }
                Some((_, t)) => *slot = Some(t),
                None => break,
            }
        }
        let next = match picked {
            Some(t) => Arc::into_raw(t) as *mut Thread,
            None => {
                // SAFETY: the idle thread lives as long as the CPU.
                unsafe { Arc::increment_strong_count(idle_ptr) };
                idle_ptr
            }
        };
        // Set in one step, under the lock every other change takes too: a
        // decrement at the pop and an increment at the switch would show
        // other CPUs a moment in which this CPU looks empty.
        c.load.store(rq.len() + usize::from(next != idle_ptr), Ordering::Relaxed);
        next
    };

    for t in misplaced.into_iter().flatten() {
        enqueue(t);
    }
    if next_ptr == prev_ptr {
        // It was woken (or requeued) and picked again: keep running it.
        // SAFETY: drop the queue's (or idle's) extra reference.
        unsafe { Arc::decrement_strong_count(next_ptr) };
        prev.state.store(state::RUNNING, Ordering::Release);
        rearm_timer();
        return;
    }
    switch(c, prev_ptr, next_ptr, idle_ptr, Slice::Fresh);
}

/// The time slice of a thread being switched to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Slice {
    /// A slice of its own class's length.
    Fresh,
    /// What is left of the previous thread's: a handoff passes the CPU on
    /// without resetting the clock, so that two threads handing the CPU to
    /// each other cannot keep the run queue waiting for ever.
    Donated,
}

/// Switches this CPU from `prev` (its running thread) to `next`, which
/// carries the reference `current` will own and is on no run queue; returns
/// when `prev` runs again. Interrupts are off.
pub(super) fn switch(c: &CpuSched, prev_ptr: *mut Thread, next_ptr: *mut Thread, idle_ptr: *mut Thread, slice: Slice) {
    let me = cpu_index();
    // SAFETY: `current` holds a reference while the thread runs here.
    let prev = unsafe { &*prev_ptr };
    // SAFETY: next_ptr carries the reference `current` will own.
    let next_ptr = if wait_off_cpu(unsafe { &*next_ptr }, prev_ptr == idle_ptr) {
        next_ptr
    } else {
        // Still on another CPU: it waits in our queue, and the idle thread
        // (which no CPU ever waits for) takes this CPU and picks it up.
        // The load is unchanged: it counted `next` as running here.
        // SAFETY: next_ptr carries a reference, which the queue now owns.
        let next = unsafe { Arc::from_raw(next_ptr) };
        next.cpu.store(me, Ordering::Relaxed);
        c.rq.lock().push(next.class, next);
        c.deferred_switches.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the idle thread lives as long as the CPU; `current` owns
        // this reference.
        unsafe { Arc::increment_strong_count(idle_ptr) };
        idle_ptr
    };
    // SAFETY: as above.
    let next = unsafe { &*next_ptr };
    next.on_cpu.store(true, Ordering::Relaxed);
    next.state.store(state::RUNNING, Ordering::Release);
    next.cpu.store(me, Ordering::Relaxed);
    if slice == Slice::Fresh {
        c.slice_end.store(rdtsc() + ns_to_tsc(next.class.slice_ns()), Ordering::Relaxed);
    }
    let is_idle = next_ptr == idle_ptr;
    c.current_class.store(if is_idle { CLASS_IDLE } else { class_code(next.class) }, Ordering::Relaxed);
    let now = rdtsc();
    prev.runtime.fetch_add(now.saturating_sub(c.last_switch.swap(now, Ordering::Relaxed)), Ordering::Relaxed);
    c.current.store(next_ptr, Ordering::Relaxed);
    crate::percpu::current().current_thread.store(next_ptr as u64, Ordering::Relaxed);
    c.prev.store(prev_ptr, Ordering::Relaxed);
    c.switches.fetch_add(1, Ordering::Relaxed);
    if prev.user().is_some() || next.user().is_some() {
        crate::proc::switch_hook(prev, next);
    }
    // SAFETY: prev is this CPU's running thread; next's saved stack
    // pointer is valid because it is off every CPU (on_cpu was clear).
    unsafe { switch_context(prev.rsp.get(), *next.rsp.get()) };
    finish_switch();
    rearm_timer();
}

/// How long a switch waits for its next thread to leave another CPU
/// before it gives the CPU to the idle thread instead: a thread that has
/// just blocked there is off it within a microsecond or so.
const OFF_CPU_SPIN_NS: u64 = 20_000;

/// Waits until `next` is off every other CPU (it may still be switching
/// out of one: it was woken, or stolen, on its way to block), and says
/// whether it is. Only the idle thread waits for as long as it takes.
///
/// Any other thread gives up after [`OFF_CPU_SPIN_NS`]: it is still on
/// this CPU (`on_cpu`) while it waits, and another CPU may be waiting for
/// it in turn. Two CPUs each switching to the thread the other is leaving
/// (A from R to T while B goes from T to R: B handed off to R as it
/// blocked on A, and A took T, which had been woken into A's queue on its
/// way to block on B) would otherwise spin for ever with interrupts off.
/// No CPU waits for an idle thread, so a CPU whose idle thread waits is
/// never part of such a cycle, and the thread it waits for leaves.
fn wait_off_cpu(next: &Thread, prev_is_idle: bool) -> bool {
    if !next.on_cpu.load(Ordering::Acquire) {
        return true;
    }
    let give_up = if prev_is_idle { u64::MAX } else { rdtsc().saturating_add(ns_to_tsc(OFF_CPU_SPIN_NS)) };
    while next.on_cpu.load(Ordering::Acquire) {
        if rdtsc() > give_up {
            return false;
        }
        crate::arch::tlb::service();
        core::hint::spin_loop();
    }
    true
}

/// Hands this CPU straight to `next`, a BLOCKED thread the caller has just
/// given work (an IPC message or reply), without a trip through the run
/// queue; the running thread must have marked itself BLOCKED ([`block_unless`]).
/// `next` gets what is left of the running thread's time slice.
///
/// Falls back to an ordinary wakeup and [`schedule`] when `next` may not
/// run on this CPU, or when someone else woke it first.
pub fn handoff(irq: &InterruptsOff, next: Arc<Thread>) {
    let me = cpu_index();
    let c = of(me);
    if !next.allowed_on(me) || super::preempt_count() != 0 {
        wake(next);
        schedule(irq);
        return;
    }
    // Claimed from BLOCKED: no waker can enqueue it now.
    if next.state.compare_exchange(state::BLOCKED, state::RUNNABLE, Ordering::AcqRel, Ordering::Acquire).is_err() {
        schedule(irq);
        return;
    }
    c.need_resched.store(false, Ordering::Relaxed);
    c.ticks_since_pass.store(0, Ordering::Relaxed);
    let prev_ptr = c.current.load(Ordering::Relaxed);
    // SAFETY: `current` holds a reference while the thread runs here.
    let prev = unsafe { &*prev_ptr };
    if prev.state() == state::RUNNING {
        // Not blocked after all (its wait was cancelled: `block_unless`):
        // it stays runnable.
        prev.state.store(state::RUNNABLE, Ordering::Release);
        // SAFETY: as above; the queue gets its own reference.
        let again = unsafe {
            Arc::increment_strong_count(prev_ptr);
            Arc::from_raw(prev_ptr)
        };
        let mut rq = c.rq.lock();
        rq.push(prev.class, again);
        c.load.fetch_add(1, Ordering::Relaxed);
    }
    // The load is unchanged: `next` takes the place `prev` held.
    switch(c, prev_ptr, Arc::into_raw(next).cast_mut(), c.idle.load(Ordering::Relaxed), Slice::Donated);
}

/// Marks the running thread BLOCKED, the first half of going to sleep on
/// some queue (done under that queue's lock: wait.rs's protocol), then
/// takes a last look at `cancelled` (for a user thread: "my process is
/// dying"); if it holds, the thread is not blocked after all and this
/// returns false. The caller still calls [`schedule`] or
/// [`handoff`], which then keep it running (or give the CPU to whoever the
/// caller meant to hand it, and come back).
///
/// This is the one protocol every interruptible wait follows. A kill sets
/// its flag and then wakes each thread (a compare-and-swap from BLOCKED);
/// the waiter stores BLOCKED and then reads the flag, both sequentially
/// consistent. So either the waiter sees the kill here, or the kill's
/// wakeup finds it BLOCKED: a kill that arrives while a thread is on its
/// way to sleep is never lost.
pub fn block_unless(cancelled: impl FnOnce() -> bool) -> bool {
    with_current(|t| {
        t.state.store(state::BLOCKED, Ordering::SeqCst);
        if !cancelled() {
            return true;
        }
        // Back to running, unless a waker has queued it meanwhile (then the
        // caller's schedule takes it back off the queue).
        let _ = t.state.compare_exchange(state::BLOCKED, state::RUNNING, Ordering::SeqCst, Ordering::SeqCst);
        false
    })
}

/// Blocks the running thread until `ready()` holds. The thread marks itself
/// BLOCKED *before* its last look at the condition (with a full barrier in
/// between), so a waker that makes the condition true and then calls
/// [`wake`] either finds it BLOCKED or is seen by that look.
pub fn wait_for(ready: impl Fn() -> bool) {
    loop {
        let irq = InterruptsOff::new();
        if ready() {
            return;
        }
        let done = with_current(|t| {
            t.state.swap(state::BLOCKED, Ordering::SeqCst);
            if !ready() {
                return false;
            }
            // Back to running, unless a waker has queued us meanwhile: then
            // the scheduler must take us off its queue.
            t.state.compare_exchange(state::BLOCKED, state::RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
        });
        if done {
            return;
        }
        schedule(&irq);
    }
}

/// Runs on the incoming thread right after a switch: releases the thread
/// switched away from.
pub(super) fn finish_switch() {
    // This may be another CPU than the one that switched away from us.
    let c = cpu();
    let prev_ptr = c.prev.swap(core::ptr::null_mut(), Ordering::Relaxed);
    if prev_ptr.is_null() {
        return;
    }
    // SAFETY: `prev` held the CPU's reference to the thread switched away from.
    let prev = unsafe { Arc::from_raw(prev_ptr) };
    let migrate = c.migrate_prev.swap(false, Ordering::Relaxed);
    if prev.state() == state::EXITED {
        // We are on another stack now: an exited thread's goes back at once,
        // whoever still holds a reference to the thread.
        // SAFETY: it exited, and this CPU has just switched away from it.
        unsafe { prev.release_stack() };
    }
    prev.on_cpu.store(false, Ordering::Release);
    if migrate {
        enqueue(prev);
    }
    // Dropping our reference may free an exited thread.
}

/// The first code a new thread runs (from switch.rs's trampoline).
pub extern "C" fn thread_start() -> ! {
    finish_switch();
    rearm_timer();
    let entry = current().entry.lock().take();
    crate::arch::irqtrace::on();
    interrupts::enable();
    if let Some(f) = entry {
        f();
    }
    exit_current()
}

/// Called on the way out of a hardware interrupt: switch if asked to and
/// allowed to.
pub fn preempt_point() {
    let c = cpu();
    if c.ready.load(Ordering::Relaxed) && c.need_resched.load(Ordering::Acquire) && super::preempt_count() == 0 {
        let irq = InterruptsOff::new();
        schedule(&irq);
    }
}
