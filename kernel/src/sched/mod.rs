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
//! **Files.** This one holds the per-CPU state and thread creation;
//! wakeup.rs putting threads on run queues (and the IPIs that go with it),
//! switch.rs picking and switching (and handing the CPU over for IPC),
//! timer.rs the timer and sleeping, balance.rs placement and stealing,
//! idle.rs the idle loop, watchdog.rs the watchdog and state dumps.
//!
//! **Time.** Each CPU's APIC timer is one-shot, armed by [`rearm_timer`]
//! for the earlier of the running thread's slice end and the CPU's first
//! sleeper's deadline (`sleep` keeps a per-CPU heap of them). A CPU running
//! only its idle thread with no sleepers arms nothing and takes no timer
//! interrupts at all.
mod balance;
mod idle;
mod switch;
pub mod sync;
pub mod thread;
mod timer;
pub mod tqueue;
pub mod wait;
mod wakeup;
mod watchdog;

pub use balance::loads_snapshot;
pub use switch::{
    block_unless, exit_current, handoff, preempt_point, schedule, set_affinity, thread_start, wait_for, yield_now,
};
pub use timer::{rearm_timer, reset_timer, sleep_ns, sleep_ns_unless, timer_interrupt};
pub(crate) use wakeup::wake;
pub use wakeup::{interrupt, reschedule_ipi};
pub use watchdog::{dump_state, watchdog_bites, WATCHDOG_TICKS};

use crate::arch::cpu::rdtsc;
use crate::arch::switch::initial_stack;
use crate::error::KernelError;
use crate::mem::stack::KernelStack;
use crate::percpu::{cpu_index, MAX_CPUS};
use crate::sync::IrqSpinlock;
use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use balance::loads;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;
use ferrite_kcore::sched::{pick_cpu, Class, RunQueue};
use idle::{idle_main, IDLE_POLL_START_NS};
use thread::{state, JoinHandle, Thread, ANY_CPU};
use timer::Sleeper;
use wakeup::enqueue;
use x86_64::instructions::interrupts;

pub const THREAD_STACK_SIZE: usize = 32 * 1024;

/// Threads per class a run queue, and sleepers a CPU's heap, hold before
/// they must allocate, at first: [`make_queue_room`] grows them all as the
/// number of threads grows, before they need it, so that the scheduler's
/// paths (interrupts off) never allocate.
const QUEUE_CAPACITY: usize = 1024;
/// The capacity every CPU's run queue (per class) and sleepers' heap has.
static QUEUE_ROOM: AtomicUsize = AtomicUsize::new(QUEUE_CAPACITY);
/// Serialises [`make_queue_room`].
static QUEUE_GROWTH: spin::Mutex<()> = spin::Mutex::new(());

/// `current_class` of a CPU running its idle thread.
const CLASS_IDLE: u8 = u8::MAX;

/// Interrupts off for as long as it lives, restored after: the token that
/// the scheduling functions require.
pub struct InterruptsOff {
    were_enabled: bool,
}

impl InterruptsOff {
    #[track_caller]
    pub fn new() -> Self {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        if were_enabled {
            crate::arch::irqtrace::off(core::panic::Location::caller());
        }
        InterruptsOff { were_enabled }
    }
}

impl Drop for InterruptsOff {
    fn drop(&mut self) {
        if self.were_enabled {
            crate::arch::irqtrace::on();
            interrupts::enable();
        }
    }
}

/// Preemption off on this CPU for as long as it lives (interrupts stay on).
pub struct PreemptGuard(());

impl PreemptGuard {
    pub fn new() -> Self {
        crate::percpu::preempt_disable();
        PreemptGuard(())
    }
}

impl Drop for PreemptGuard {
    fn drop(&mut self) {
        // The count is per CPU and the thread stays on this one while it is
        // held; `preempt_enable` is one instruction either way. (Reading
        // the CPU and then its counter, in two steps, let a preemption in
        // between change the wrong CPU's count.)
        // Not with interrupts off (a guard dropped inside a spinlock's
        // section): the next preemption point takes the pending switch.
        if crate::percpu::preempt_enable() && interrupts::are_enabled() && cpu().need_resched.load(Ordering::Relaxed) {
            let irq = InterruptsOff::new();
            schedule(&irq);
        }
    }
}

/// Whether `cpu`'s idle thread polls for work (wakeups to it send no IPI):
/// for tests.
pub fn idle_polling(cpu: u32) -> bool {
    of(cpu).polling.load(Ordering::SeqCst)
}

/// Preemption guards held on this CPU.
fn preempt_count() -> u32 {
    crate::percpu::current().preempt_count.load(Ordering::Relaxed)
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
    /// Switches that found their next thread still on another CPU for too
    /// long and went to the idle thread instead (switch.rs, `wait_off_cpu`).
    deferred_switches: AtomicU64,
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
            ready: AtomicBool::new(false),
            slice_end: AtomicU64::new(0),
            last_switch: AtomicU64::new(0),
            ticks_since_pass: AtomicU64::new(0),
            sleepers: IrqSpinlock::new(BinaryHeap::new()),
            next_wakeup: AtomicU64::new(u64::MAX),
            armed: AtomicU64::new(u64::MAX),
            switches: AtomicU64::new(0),
            deferred_switches: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
        }
    }
}

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
    // One GS-relative load: a thread moved between reading "which CPU" and
    // "its current thread" would get another CPU's thread.
    let p = crate::percpu::current_thread() as *const Thread;
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
    c.rq.lock().reserve(QUEUE_CAPACITY);
    c.sleepers.lock().reserve(QUEUE_CAPACITY);
    let main = adopt_current("main", ANY_CPU);
    c.current.store(main as *mut Thread, Ordering::Release);
    crate::percpu::current().current_thread.store(main as u64, Ordering::Release);
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
    c.rq.lock().reserve(QUEUE_ROOM.load(Ordering::Acquire));
    c.sleepers.lock().reserve(QUEUE_ROOM.load(Ordering::Acquire));
    let idle = adopt_current("idle", me);
    // The CPU holds two references: as `idle` and as `current`.
    // SAFETY: `idle` is a live Arc pointer just made.
    unsafe { Arc::increment_strong_count(idle) };
    c.idle.store(idle as *mut Thread, Ordering::Release);
    c.current.store(idle as *mut Thread, Ordering::Release);
    crate::percpu::current().current_thread.store(idle as u64, Ordering::Release);
    c.current_class.store(CLASS_IDLE, Ordering::Relaxed);
    c.last_switch.store(rdtsc(), Ordering::Relaxed);
    c.ready.store(true, Ordering::Release);
}

/// An AP, online: its idle loop, for good.
pub fn run_ap() -> ! {
    idle_main()
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
    crate::smp::is_online(cpu)
}

/// Makes sure every CPU's run queue and sleepers' heap can hold `threads`
/// threads without allocating (every thread there is could be runnable, or
/// asleep, on one CPU). They double when they must, with frames that user
/// programs may take (the heap's `make_room`): a thread that would need
/// more is refused instead.
fn make_queue_room(threads: usize) -> Result<(), KernelError> {
    loop {
        let room = QUEUE_ROOM.load(Ordering::Acquire);
        if threads <= room {
            return Ok(());
        }
        let want = threads.max(room * 2);
        let cpus = crate::smp::cpu_span() as usize;
        // Two classes of pointers and a sleeper (deadline and pointer) a
        // thread.
        let bytes = (want - room) * cpus * (2 * 8 + 16);
        // The heap's room first, then the growth lock: a user thread's
        // creation holds room (its own structures') when it gets here, so
        // taking the lock first and then waiting for room would deadlock
        // with it (lock order: room, then QUEUE_GROWTH).
        let _room = crate::mem::heap::make_room(bytes as u64)?;
        let _one = QUEUE_GROWTH.lock();
        if QUEUE_ROOM.load(Ordering::Acquire) != room {
            // Another CPU grew the queues meanwhile: start again from there.
            continue;
        }
        return grow_queues(want, cpus);
    }
}

/// Grows every CPU's run queue and sleepers' heap to `want` threads (the
/// caller holds QUEUE_GROWTH and the heap's room).
fn grow_queues(want: usize, cpus: usize) -> Result<(), KernelError> {
    for cpu in 0..cpus as u32 {
        let c = of(cpu);
        c.rq.lock().try_reserve(want).map_err(|_| KernelError::NoMemory)?;
        let mut sleepers = c.sleepers.lock();
        let more = want.saturating_sub(sleepers.len());
        sleepers.try_reserve(more).map_err(|_| KernelError::NoMemory)?;
    }
    QUEUE_ROOM.store(want, Ordering::Release);
    Ok(())
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
    make_queue_room(thread::live_threads() as usize + 1)?;
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
    let online = crate::smp::cpu_span();
    let loads = loads(online);
    let target =
        pick_cpu(&loads[..online as usize], cpu_index() as usize, |c| usable(c as u32) && t.allowed_on(c as u32))
            .ok_or(KernelError::BadAddress)?;
    t.cpu.store(target as u32, Ordering::Relaxed);
    log::trace!("sched: thread {} '{}' spawned for cpu{target}", t.id, t.name);
    enqueue(t);
    Ok(())
}

/// Runs `f` on the running thread, without touching its reference count.
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> R {
    let p = crate::percpu::current_thread() as *const Thread;
    assert!(!p.is_null(), "sched: no current thread on cpu{}", cpu_index());
    // SAFETY: the CPU holds a reference to its running thread for as long
    // as it runs, and `f` runs on that thread (if it blocks and moves to
    // another CPU, that CPU holds one).
    f(unsafe { &*p })
}

/// Per-CPU statistics: `sched: cpuN switches=… deferred=… ipis_sent=…
/// ipis_received=… steals=… idle_ms=…`, one line per online CPU.
/// What `system_info` says about CPU `cpu` (but its rank).
pub fn cpu_info(cpu: u32) -> ferrite_abi::CpuInfo {
    let c = of(cpu);
    let p = crate::percpu::get(cpu);
    ferrite_abi::CpuInfo {
        cpu: 0,
        apic_id: u64::from(p.apic_id()),
        switches: c.switches.load(Ordering::Relaxed),
        idle_ns: c.idle_ns.load(Ordering::Relaxed),
        timer_ticks: p.timer_ticks.load(Ordering::Relaxed),
        ipis: p.ipis_received.load(Ordering::Relaxed),
        queued: c.rq.lock().len() as u64,
    }
}

pub fn log_stats() {
    for cpu in crate::smp::online_cpus().iter() {
        let c = of(cpu);
        let p = crate::percpu::get(cpu);
        log::info!(
            "sched: cpu{cpu} switches={} deferred={} ipis_sent={} ipis_received={} steals={} idle_ms={}",
            c.switches.load(Ordering::Relaxed),
            c.deferred_switches.load(Ordering::Relaxed),
            p.ipis_sent.load(Ordering::Relaxed),
            p.ipis_received.load(Ordering::Relaxed),
            c.steals.load(Ordering::Relaxed),
            c.idle_ns.load(Ordering::Relaxed) / 1_000_000,
        );
    }
    log::info!(
        "sched: tlb_shootdowns={} (all CPUs), IPIs sent again to late targets={}",
        crate::arch::tlb::count(),
        crate::arch::tlb::resent()
    );
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
