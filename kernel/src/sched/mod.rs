//! The scheduler: one run queue and one idle thread per CPU.
//!
//! **Policy.** Two classes, High and Normal (ferrite_kcore::sched): a
//! runnable High thread always runs before a Normal one; within a class,
//! threads take turns, each for a time slice (High 2 ms, Normal 10 ms). A thread that yields or whose slice ends goes to
//! the back of its class's queue, unless nothing of its class or higher is
//! waiting. A woken thread preempts the running one only if its class is
//! strictly higher.
//!
//! **No global lock on the hot path.** Yield, block, a wakeup on the same
//! CPU and the timer tick touch only this CPU's run-queue lock. A remote
//! wakeup takes the target CPU's lock and sends a reschedule IPI only when
//! the target must act on it (it is idle, or the woken thread preempts),
//! and only if one is not already on its way (`ipi_pending`), so a burst of
//! wakeups costs one IPI.
//!
//! **Switching.** `schedule` runs with interrupts off. It picks the next
//! thread under the run-queue lock, drops the lock, and switches stacks;
//! the next thread, first thing, runs `finish_switch`, which releases the
//! previous one (`on_cpu = false`) and frees it if it has exited. A thread
//! can be on a run queue (even another CPU's) while it is still switching
//! out here: whoever picks it waits for `on_cpu` to clear before loading
//! its stack pointer, so no thread ever runs on two CPUs at once.
//!
//! **Placement and balancing.** A new thread goes to the least loaded CPU
//! its affinity allows; an idle CPU steals from the busiest one (half the
//! difference, respecting affinity). At the end of each slice a busy CPU
//! also balances (`balance_tick`): it pulls from a CPU with two or more
//! threads more than itself, and if threads wait in its own queue it kicks
//! halted CPUs that may run them, so no CPU sleeps through a backlog.
//!
//! **Watchdog.** A CPU that takes [`WATCHDOG_TICKS`] timer interrupts
//! without passing through `schedule` while threads wait in its queue logs
//! every CPU's state and counts a bite.
//!
//! **Blocking** is in wait.rs, with the protocol that rules out lost
//! wakeups.
//!
//! **Time.** Each CPU's APIC timer is one-shot, armed by [`rearm_timer`]
//! for the earlier of the running thread's slice end and the CPU's first
//! sleeper's deadline (`sleep` keeps a per-CPU heap of them). A CPU running
//! only its idle thread with no sleepers arms nothing and takes no timer
//! interrupts at all.
pub mod sync;
pub mod thread;
pub mod wait;

use crate::arch::cpu::rdtsc;
use crate::arch::ipi::{self, Ipi};
use crate::arch::switch::{initial_stack, switch_context};
use crate::error::KernelError;
use crate::mem::stack::KernelStack;
use crate::percpu::{cpu_index, MAX_CPUS};
use crate::sync::IrqSpinlock;
use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;
use ferrite_kcore::sched::{pick_cpu, pick_victim, steal_count, Class, RunQueue};
use thread::{state, JoinHandle, Thread, ANY_CPU};
use x86_64::instructions::interrupts;

pub const THREAD_STACK_SIZE: usize = 32 * 1024;
/// Threads per class a run queue holds before it must allocate.
const RUN_QUEUE_CAPACITY: usize = 1024;
/// Sleepers a CPU's heap holds before it must allocate.
const SLEEPERS_CAPACITY: usize = 256;
/// `current_class` of a CPU running its idle thread.
const CLASS_IDLE: u8 = u8::MAX;

/// Interrupts off for as long as it lives, restored after: the token that
/// the scheduling functions require.
pub struct InterruptsOff {
    were_enabled: bool,
}

impl InterruptsOff {
    pub fn new() -> Self {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        InterruptsOff { were_enabled }
    }
}

impl Drop for InterruptsOff {
    fn drop(&mut self) {
        if self.were_enabled {
            interrupts::enable();
        }
    }
}

/// Preemption off on this CPU for as long as it lives (interrupts stay on).
pub struct PreemptGuard(());

impl PreemptGuard {
    pub fn new() -> Self {
        cpu().preempt_count.fetch_add(1, Ordering::Relaxed);
        PreemptGuard(())
    }
}

impl Drop for PreemptGuard {
    fn drop(&mut self) {
        let c = cpu();
        if c.preempt_count.fetch_sub(1, Ordering::Relaxed) == 1 && c.need_resched.load(Ordering::Relaxed) {
            let irq = InterruptsOff::new();
            schedule(&irq);
        }
    }
}

struct CpuSched {
    rq: IrqSpinlock<RunQueue<Arc<Thread>>>,
    /// Run-queue length plus one if a non-idle thread runs: for placement
    /// and stealing, read without the lock, written only under it.
    load: AtomicUsize,
    /// The running thread (the CPU's own strong reference, `Arc::into_raw`).
    current: AtomicPtr<Thread>,
    /// Its class, readable by other CPUs (CLASS_IDLE for the idle thread).
    current_class: AtomicU8,
    idle: AtomicPtr<Thread>,
    /// The thread being switched away from, for finish_switch.
    prev: AtomicPtr<Thread>,
    /// The previous thread must move to another CPU (its affinity changed).
    migrate_prev: AtomicBool,
    need_resched: AtomicBool,
    ipi_pending: AtomicBool,
    /// The idle thread is polling `need_resched` (with interrupts on)
    /// before it halts: a waker sets the flag and sends no IPI.
    polling: AtomicBool,
    /// How long the idle thread polls before it halts, adapted to how
    /// soon work comes (see idle_main).
    poll_ns: AtomicU64,
    preempt_count: AtomicU32,
    ready: AtomicBool,
    /// TSC time at which the running thread's slice ends.
    slice_end: AtomicU64,
    /// TSC time of the last switch on this CPU (the running thread's start).
    last_switch: AtomicU64,
    /// Timer interrupts taken since this CPU last passed through
    /// `schedule`: the watchdog's measure, counted in this CPU's own time (a
    /// virtual CPU that its host does not run takes none).
    ticks_since_pass: AtomicU64,
    /// Sleeping threads, earliest deadline first.
    sleepers: IrqSpinlock<BinaryHeap<Sleeper>>,
    /// The TSC deadline this CPU's timer is armed for (u64::MAX: none).
    armed: AtomicU64,
    /// The first sleeper's deadline (u64::MAX: none), kept in step with
    /// `sleepers` under its lock, so that arming the timer on every switch
    /// reads one word instead of taking the lock.
    next_wakeup: AtomicU64,
    switches: AtomicU64,
    steals: AtomicU64,
    idle_ns: AtomicU64,
}

impl CpuSched {
    const fn new() -> Self {
        CpuSched {
            rq: IrqSpinlock::new(RunQueue::new()),
            load: AtomicUsize::new(0),
            current: AtomicPtr::new(core::ptr::null_mut()),
            current_class: AtomicU8::new(CLASS_IDLE),
            idle: AtomicPtr::new(core::ptr::null_mut()),
            prev: AtomicPtr::new(core::ptr::null_mut()),
            migrate_prev: AtomicBool::new(false),
            need_resched: AtomicBool::new(false),
            ipi_pending: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            poll_ns: AtomicU64::new(IDLE_POLL_START_NS),
            preempt_count: AtomicU32::new(0),
            ready: AtomicBool::new(false),
            slice_end: AtomicU64::new(0),
            last_switch: AtomicU64::new(0),
            ticks_since_pass: AtomicU64::new(0),
            sleepers: IrqSpinlock::new(BinaryHeap::new()),
            next_wakeup: AtomicU64::new(u64::MAX),
            armed: AtomicU64::new(u64::MAX),
            switches: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
        }
    }
}

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
static WATCHDOG_BITES: AtomicU64 = AtomicU64::new(0);
static WATCHDOG_CPU: AtomicU32 = AtomicU32::new(0);

static CPUS: [CachePadded<CpuSched>; MAX_CPUS] = [const { CachePadded::new(CpuSched::new()) }; MAX_CPUS];

fn of(cpu: u32) -> &'static CpuSched {
    &CPUS[cpu as usize]
}

fn cpu() -> &'static CpuSched {
    of(cpu_index())
}

fn class_code(c: Class) -> u8 {
    c as u8
}

/// The running thread.
pub fn current() -> Arc<Thread> {
    let p = cpu().current.load(Ordering::Relaxed);
    assert!(!p.is_null(), "sched: no current thread on cpu{}", cpu_index());
    // SAFETY: `current` holds a strong reference for as long as the thread
    // runs here; this adds one for the caller.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

fn ns_to_tsc(ns: u64) -> u64 {
    let ticks = u128::from(ns) * u128::from(crate::time::tsc_hz()) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// A thread asleep until a TSC deadline, ordered earliest first.
struct Sleeper {
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

/// Adopts the code running now on this CPU as a thread: on an AP, as its
/// idle thread; on the boot CPU, as the `main` thread (it also gets an
/// idle thread of its own).
fn adopt_current(name: &'static str, affinity: u32) -> *const Thread {
    let t = Thread::new(name, Class::Normal, affinity, None, 0, None, None);
    t.state.store(state::RUNNING, Ordering::Relaxed);
    t.on_cpu.store(true, Ordering::Relaxed);
    t.cpu.store(cpu_index(), Ordering::Relaxed);
    Arc::into_raw(t)
}

/// The boot CPU: `kernel_main` becomes the `main` thread; an idle thread is
/// made for this CPU.
pub fn init_bsp() {
    let me = cpu_index();
    let c = of(me);
    c.rq.lock().reserve(RUN_QUEUE_CAPACITY);
    c.sleepers.lock().reserve(SLEEPERS_CAPACITY);
    let main = adopt_current("main", ANY_CPU);
    c.current.store(main as *mut Thread, Ordering::Release);
    c.current_class.store(class_code(Class::Normal), Ordering::Relaxed);
    c.load.store(1, Ordering::Relaxed);
    let stack = KernelStack::new(THREAD_STACK_SIZE).expect("sched: no memory for the idle thread");
    // SAFETY: a fresh stack, ours alone.
    let rsp = unsafe { initial_stack(stack.top()) };
    let idle = Thread::new("idle", Class::Normal, me, Some(stack), rsp, Some(Box::new(|| idle_main())), None);
    idle.cpu.store(me, Ordering::Relaxed);
    c.idle.store(Arc::into_raw(idle) as *mut Thread, Ordering::Release);
    c.slice_end.store(rdtsc() + ns_to_tsc(Class::Normal.slice_ns()), Ordering::Relaxed);
    c.last_switch.store(rdtsc(), Ordering::Relaxed);
    c.ready.store(true, Ordering::Release);
    let _irq = InterruptsOff::new();
    rearm_timer();
}

/// An AP: the code running now becomes its idle thread. Called before the
/// AP counts itself online, so that nothing it allocates here races with
/// work that starts once every CPU is up; [`run_ap`] follows.
pub fn init_ap() {
    let me = cpu_index();
    let c = of(me);
    c.rq.lock().reserve(RUN_QUEUE_CAPACITY);
    c.sleepers.lock().reserve(SLEEPERS_CAPACITY);
    let idle = adopt_current("idle", me);
    // The CPU holds two references: as `idle` and as `current`.
    // SAFETY: `idle` is a live Arc pointer just made.
    unsafe { Arc::increment_strong_count(idle) };
    c.idle.store(idle as *mut Thread, Ordering::Release);
    c.current.store(idle as *mut Thread, Ordering::Release);
    c.current_class.store(CLASS_IDLE, Ordering::Relaxed);
    c.last_switch.store(rdtsc(), Ordering::Relaxed);
    c.ready.store(true, Ordering::Release);
}

/// An AP, online: its idle loop, for good.
pub fn run_ap() -> ! {
    idle_main()
}

/// Every online CPU's load now (for diagnostics).
pub fn loads_snapshot() -> [usize; MAX_CPUS] {
    loads(crate::smp::online_count())
}

/// Every online CPU's load, in a stack array: the scheduler's paths do not
/// allocate.
fn loads(online: u32) -> [usize; MAX_CPUS] {
    let mut loads = [0usize; MAX_CPUS];
    for (cpu, load) in loads.iter_mut().enumerate().take(online as usize) {
        *load = of(cpu as u32).load.load(Ordering::Relaxed);
    }
    loads
}

/// Spawns a kernel thread running `f`, on the least loaded CPU that
/// `affinity` ([`ANY_CPU`] or one CPU index) allows.
pub fn spawn(
    name: &'static str,
    class: Class,
    affinity: u32,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle, KernelError> {
    let t = create(name, class, affinity, None, f)?;
    start(t.clone())?;
    Ok(JoinHandle { thread: t })
}

/// Whether CPU `cpu` is online and may take threads.
fn usable(cpu: u32) -> bool {
    cpu < crate::smp::online_count() && crate::percpu::get(cpu).online.load(Ordering::Acquire)
}

/// Makes a thread that will run `f` (a user thread if `user` says so),
/// without starting it: see [`start`].
pub fn create(
    name: &'static str,
    class: Class,
    affinity: u32,
    user: Option<crate::proc::UserThread>,
    f: impl FnOnce() + Send + 'static,
) -> Result<Arc<Thread>, KernelError> {
    if affinity != ANY_CPU && !usable(affinity) {
        return Err(KernelError::BadAddress);
    }
    let stack = KernelStack::new(THREAD_STACK_SIZE)?;
    // A user thread's user-mode frame lives at the very top of its stack
    // (where interrupts from user mode push it): its kernel code starts
    // below that slot.
    let top = match user {
        Some(_) => crate::arch::syscall::user_frame_at(stack.top()) as u64,
        None => stack.top(),
    };
    // SAFETY: a fresh stack, ours alone; `top` is 16-aligned (a frame is
    // a multiple of 16 bytes).
    let rsp = unsafe { initial_stack(top) };
    Ok(Thread::new(name, class, affinity, Some(stack), rsp, Some(Box::new(f)), user))
}

/// Starts a thread made by [`create`] on the least loaded CPU its affinity
/// allows.
pub fn start(t: Arc<Thread>) -> Result<(), KernelError> {
    let online = crate::smp::online_count();
    let loads = loads(online);
    let target =
        pick_cpu(&loads[..online as usize], cpu_index() as usize, |c| usable(c as u32) && t.allowed_on(c as u32))
            .ok_or(KernelError::BadAddress)?;
    t.cpu.store(target as u32, Ordering::Relaxed);
    log::trace!("sched: thread {} '{}' spawned for cpu{target}", t.id, t.name);
    enqueue(t);
    Ok(())
}

/// Puts a RUNNABLE thread on the run queue of a CPU it may run on and
/// tells that CPU if it must act.
fn enqueue(t: Arc<Thread>) {
    let last = t.cpu.load(Ordering::Relaxed);
    let target = match t.affinity() {
        ANY_CPU if last < crate::smp::online_count() => last,
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
    if t.state.compare_exchange(state::BLOCKED, state::RUNNABLE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        enqueue(t);
    }
}

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
enum Slice {
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
fn switch(c: &CpuSched, prev_ptr: *mut Thread, next_ptr: *mut Thread, idle_ptr: *mut Thread, slice: Slice) {
    let me = cpu_index();
    // SAFETY: `current` holds a reference while the thread runs here.
    let prev = unsafe { &*prev_ptr };
    // SAFETY: next_ptr carries the reference `current` will own.
    let next = unsafe { &*next_ptr };
    // It may still be switching out on another CPU.
    while next.on_cpu.load(Ordering::Acquire) {
        crate::arch::tlb::service();
        core::hint::spin_loop();
    }
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

/// Hands this CPU straight to `next`, a BLOCKED thread the caller has just
/// given work (an IPC message or reply), without a trip through the run
/// queue; the running thread must have marked itself BLOCKED ([`block`]).
/// `next` gets what is left of the running thread's time slice.
///
/// Falls back to an ordinary wakeup and [`schedule`] when `next` may not
/// run on this CPU, or when someone else woke it first.
pub fn handoff(irq: &InterruptsOff, next: Arc<Thread>) {
    let me = cpu_index();
    let c = of(me);
    if !next.allowed_on(me) || c.preempt_count.load(Ordering::Relaxed) != 0 {
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
        // Not blocked after all (a caller's mistake): it stays runnable.
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

/// Marks the running thread BLOCKED: the first half of going to sleep on
/// some queue, done under that queue's lock (wait.rs's protocol), followed
/// by [`schedule`] or [`handoff`] once the lock is dropped.
pub fn block() {
    with_current(|t| t.state.store(state::BLOCKED, Ordering::Release));
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

/// Runs `f` on the running thread, without touching its reference count.
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> R {
    let p = cpu().current.load(Ordering::Relaxed);
    assert!(!p.is_null(), "sched: no current thread on cpu{}", cpu_index());
    // SAFETY: the CPU holds a reference to its running thread for as long
    // as it runs, and `f` runs on that thread (if it blocks and moves to
    // another CPU, that CPU holds one).
    f(unsafe { &*p })
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
    while rdtsc() < deadline {
        if cancelled() {
            return false;
        }
        let irq = InterruptsOff::new();
        let me = current();
        let home = of(cpu_index());
        let heap = &home.sleepers;
        {
            // Blocked and on the heap under the heap's lock: the timer
            // interrupt that pops it wakes it (wait.rs's protocol).
            let mut sleepers = heap.lock();
            me.state.store(state::BLOCKED, Ordering::Release);
            sleepers.push(Sleeper { deadline, thread: me.clone() });
            home.next_wakeup.store(sleepers.peek().map_or(u64::MAX, |s| s.deadline), Ordering::Relaxed);
        }
        rearm_timer();
        schedule(&irq);
        if rdtsc() < deadline {
            // Woken early (interrupt): the heap must not keep the thread,
            // and its stack, until the deadline.
            let mut sleepers = heap.lock();
            sleepers.retain(|s| !Arc::ptr_eq(&s.thread, &me));
            home.next_wakeup.store(sleepers.peek().map_or(u64::MAX, |s| s.deadline), Ordering::Relaxed);
        }
    }
    true
}

/// Runs on the incoming thread right after a switch: releases the thread
/// switched away from.
fn finish_switch() {
    // This may be another CPU than the one that switched away from us.
    let c = cpu();
    let prev_ptr = c.prev.swap(core::ptr::null_mut(), Ordering::Relaxed);
    if prev_ptr.is_null() {
        return;
    }
    // SAFETY: `prev` held the CPU's reference to the thread switched away from.
    let prev = unsafe { Arc::from_raw(prev_ptr) };
    let migrate = c.migrate_prev.swap(false, Ordering::Relaxed);
    prev.on_cpu.store(false, Ordering::Release);
    if migrate {
        enqueue(prev);
    }
    // Otherwise dropping our reference may free an exited thread and its
    // stack (we are on another stack now).
}

/// The first code a new thread runs (from switch.rs's trampoline).
pub extern "C" fn thread_start() -> ! {
    finish_switch();
    rearm_timer();
    let entry = current().entry.lock().take();
    interrupts::enable();
    if let Some(f) = entry {
        f();
    }
    exit_current()
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

/// Periodic balancing, at the end of a busy CPU's slice (a busy CPU takes
/// one every slice, an idle CPU none, so this costs idle CPUs nothing).
/// Stealing by idle CPUs alone leaves two gaps, both closed here:
/// - a busy CPU that has fewer threads than another by two or more pulls
///   from it (with 2N hogs on N CPUs, one CPU would otherwise run three
///   and another one, for as long as they live);
/// - a CPU with threads waiting kicks halted CPUs that could run one of
///   them: a halted CPU has no timer armed and would otherwise never look.
fn balance_tick(me: u32) {
    let online = crate::smp::online_count();
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

/// A reschedule IPI arrived: the sender set need_resched already, or it
/// kicked this idle CPU to look for work to steal (`balance_tick`).
pub fn reschedule_ipi() {
    cpu().ipi_pending.store(false, Ordering::Release);
}

/// Called on the way out of a hardware interrupt: switch if asked to and
/// allowed to.
pub fn preempt_point() {
    let c = cpu();
    if c.ready.load(Ordering::Relaxed)
        && c.need_resched.load(Ordering::Acquire)
        && c.preempt_count.load(Ordering::Relaxed) == 0
    {
        let irq = InterruptsOff::new();
        schedule(&irq);
    }
}

/// Moves up to half the imbalance from the busiest CPU to this one.
fn try_steal(me: u32) -> bool {
    let online = crate::smp::online_count();
    let loads = loads(online);
    let Some(victim) = pick_victim(&loads[..online as usize], me as usize) else { return false };
    let want = steal_count(loads[victim], loads[me as usize]);
    let taken = {
        let v = of(victim as u32);
        let mut rq = v.rq.lock();
        let taken = rq.steal(want, |t| t.allowed_on(me));
        v.load.fetch_sub(taken.len(), Ordering::Relaxed);
        taken
    };
    if taken.is_empty() {
        return false;
    }
    let c = of(me);
    c.steals.fetch_add(taken.len() as u64, Ordering::Relaxed);
    let mut rq = c.rq.lock();
    for (class, t) in taken {
        t.cpu.store(me, Ordering::Relaxed);
        rq.push(class, t);
        c.load.fetch_add(1, Ordering::Relaxed);
    }
    true
}

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
const IDLE_POLL_MIN_NS: u64 = 10_000;
const IDLE_POLL_START_NS: u64 = 50_000;
const IDLE_POLL_MAX_NS: u64 = 400_000;

/// The idle thread: cross-CPU calls, stealing, a short poll, then `hlt`
/// until an interrupt. The last check for work and `sti; hlt` happen with
/// interrupts off in between, so a wakeup IPI cannot slip past; while it
/// polls, a waker that sees `polling` sends no IPI, and the idle thread
/// looks at `need_resched` once more after it stops polling (both sides
/// SeqCst), so no wakeup is lost either way.
fn idle_main() -> ! {
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
        interrupts::enable_and_hlt();
        interrupts::disable();
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
fn poll_for_work(c: &CpuSched) -> bool {
    let deadline = rdtsc() + ns_to_tsc(c.poll_ns.load(Ordering::Relaxed));
    let me = crate::percpu::current();
    let interrupts_taken = || me.ipis_received.load(Ordering::Relaxed) + me.timer_ticks.load(Ordering::Relaxed);
    let before = interrupts_taken();
    let work = || c.need_resched.load(Ordering::SeqCst) || interrupts_taken() != before;
    c.polling.store(true, Ordering::SeqCst);
    interrupts::enable();
    while !work() && rdtsc() < deadline {
        core::hint::spin_loop();
    }
    interrupts::disable();
    c.polling.store(false, Ordering::SeqCst);
    // A waker that saw `polling` sent no IPI: its need_resched is visible now.
    work() || !c.rq.lock().is_empty()
}

/// Per-CPU statistics: `sched: cpuN switches=… ipis_sent=… ipis_received=…
/// steals=… idle_ms=…`, one line per online CPU.
pub fn log_stats() {
    for cpu in 0..crate::smp::online_count() {
        let c = of(cpu);
        let p = crate::percpu::get(cpu);
        log::info!(
            "sched: cpu{cpu} switches={} ipis_sent={} ipis_received={} steals={} idle_ms={}",
            c.switches.load(Ordering::Relaxed),
            p.ipis_sent.load(Ordering::Relaxed),
            p.ipis_received.load(Ordering::Relaxed),
            c.steals.load(Ordering::Relaxed),
            c.idle_ns.load(Ordering::Relaxed) / 1_000_000,
        );
    }
    log::info!("sched: tlb_shootdowns={} (all CPUs)", crate::arch::tlb::count());
}

/// Times the watchdog has bitten since boot, and the CPU it last bit on.
pub fn watchdog_bites() -> (u64, u32) {
    (WATCHDOG_BITES.load(Ordering::Acquire), WATCHDOG_CPU.load(Ordering::Relaxed))
}

/// Logs every CPU's scheduling state: for the reports of hung tests.
pub fn dump_state() {
    let now = rdtsc();
    for cpu in 0..crate::smp::online_count() {
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
            c.preempt_count.load(Ordering::Relaxed),
            c.sleepers.try_with(|s| s.len()).map_or(alloc::string::String::from("locked"), |n| alloc::format!("{n}")),
        );
    }
}

/// Nanoseconds `t` has spent on a CPU, including the stint in progress if
/// it is running now.
pub fn runtime_ns(t: &Thread) -> u64 {
    let mut ticks = t.runtime.load(Ordering::Relaxed);
    if t.state() == state::RUNNING {
        let since = of(t.cpu.load(Ordering::Relaxed)).last_switch.load(Ordering::Relaxed);
        ticks += rdtsc().saturating_sub(since);
    }
    crate::time::tsc_to_ns(ticks)
}
