//! Kernel threads: what the scheduler switches between.
use super::wait::WaitQueue;
use crate::mem::stack::KernelStack;
use crate::sync::IrqSpinlock;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use ferrite_kcore::sched::Class;

/// Thread states (Thread::state).
pub mod state {
    /// On a run queue, or about to be.
    pub const RUNNABLE: u8 = 0;
    /// On a CPU.
    pub const RUNNING: u8 = 1;
    /// Waiting on a wait queue.
    pub const BLOCKED: u8 = 2;
    /// Finished; runs no more.
    pub const EXITED: u8 = 3;
}

/// Affinity: any CPU.
pub const ANY_CPU: u32 = u32::MAX;

pub type Entry = Box<dyn FnOnce() + Send + 'static>;

pub struct Thread {
    pub id: u64,
    pub name: &'static str,
    pub class: Class,
    pub(super) state: AtomicU8,
    /// True from the moment a CPU picks this thread until that CPU has
    /// finished switching away from it: no other CPU may run it meanwhile.
    pub(super) on_cpu: AtomicBool,
    /// The CPU it runs on or last ran on.
    pub(super) cpu: AtomicU32,
    /// [`ANY_CPU`] or the one CPU it may run on.
    pub(super) affinity: AtomicU32,
    /// Saved stack pointer while switched out; written only by the CPU
    /// switching away from it, read only by the CPU switching to it, and
    /// the on_cpu handshake orders the two.
    pub(super) rsp: UnsafeCell<u64>,
    /// None for a CPU's boot context (its stack is never freed), and once
    /// the thread has exited and been switched away from: the stack goes
    /// back then, not when the last reference to the thread does (a
    /// thread that no one has joined yet holds no stack). Touched only by
    /// the CPU that switches away from the exited thread.
    stack: UnsafeCell<Option<KernelStack>>,
    /// One past the stack's highest byte (0: a boot context).
    stack_top: u64,
    pub(super) entry: IrqSpinlock<Option<Entry>>,
    /// Time spent on a CPU, in TSC ticks, up to its last switch away.
    pub(super) runtime: AtomicU64,
    pub(super) exited: WaitQueue,
    /// Its place on the wait queue or endpoint queue it waits on (tqueue.rs).
    pub(crate) link: UnsafeCell<super::tqueue::Link>,
    /// A user thread's process, FPU state and IPC state; None for kernel
    /// threads.
    user: Option<crate::proc::UserThread>,
    /// Last field, so it drops after the stack: a thread counts as gone
    /// only once its memory is back.
    _live: LiveToken,
}

/// Counts a thread in [`live_threads`] from creation until it is freed.
struct LiveToken;

impl LiveToken {
    fn new() -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        LiveToken
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

// SAFETY: every field is atomic or locked except rsp, whose accesses the
// on_cpu protocol serialises (see sched/mod.rs), link, reached only under
// the lock of the queue the thread is on (tqueue.rs), and stack, taken
// once by the CPU that switches away from the exited thread.
unsafe impl Sync for Thread {}
// SAFETY: as above; a thread is handed between CPUs by design.
unsafe impl Send for Thread {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Threads that exist (spawned and not yet freed), for the leak checks.
static LIVE: AtomicU64 = AtomicU64::new(0);

pub fn live_threads() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

impl Thread {
    pub(super) fn new(
        name: &'static str,
        class: Class,
        affinity: u32,
        stack: Option<KernelStack>,
        rsp: u64,
        entry: Option<Entry>,
        user: Option<crate::proc::UserThread>,
    ) -> Arc<Thread> {
        Arc::new(Thread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            class,
            state: AtomicU8::new(state::RUNNABLE),
            on_cpu: AtomicBool::new(false),
            cpu: AtomicU32::new(0),
            affinity: AtomicU32::new(affinity),
            rsp: UnsafeCell::new(rsp),
            stack_top: stack.as_ref().map_or(0, KernelStack::top),
            stack: UnsafeCell::new(stack),
            entry: IrqSpinlock::new(entry),
            runtime: AtomicU64::new(0),
            exited: WaitQueue::new(),
            link: UnsafeCell::new(super::tqueue::Link::new()),
            user,
            _live: LiveToken::new(),
        })
    }

    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    pub fn affinity(&self) -> u32 {
        self.affinity.load(Ordering::Acquire)
    }

    pub fn allowed_on(&self, cpu: u32) -> bool {
        let a = self.affinity();
        a == ANY_CPU || a == cpu
    }

    /// The user-mode side of a user thread (None: a kernel thread).
    pub fn user(&self) -> Option<&crate::proc::UserThread> {
        self.user.as_ref()
    }

    /// One past the highest byte of the thread's kernel stack (0 for a
    /// CPU's boot context, which never runs user code).
    pub fn stack_top(&self) -> u64 {
        self.stack_top
    }

    /// Gives back the kernel stack of a thread that has exited and is
    /// switched out.
    ///
    /// # Safety
    /// The thread is EXITED and no CPU runs on its stack any more (the
    /// caller has just switched away from it).
    pub(super) unsafe fn release_stack(&self) {
        // SAFETY: (of the caller) nothing uses the stack, and only the CPU
        // that switched away from the thread gets here, once.
        drop(unsafe { (*self.stack.get()).take() });
    }

    /// Waits until the thread has exited, or until `cancelled()` holds;
    /// true if it exited.
    pub fn wait_exited(&self, cancelled: impl Fn() -> bool) -> bool {
        self.exited.wait_until(|| self.state() == state::EXITED || cancelled());
        self.state() == state::EXITED
    }
}

/// Waits for a spawned thread to finish.
pub struct JoinHandle {
    pub(super) thread: Arc<Thread>,
}

impl JoinHandle {
    /// Waits up to `ns` for the thread to exit; false if it did not. Polls
    /// (with sleeps), so that a hung thread cannot hang the caller.
    pub fn join_within(&self, ns: u64) -> bool {
        let deadline = crate::time::uptime_ns() + ns;
        while self.thread.state() != state::EXITED {
            if crate::time::uptime_ns() > deadline {
                return false;
            }
            super::sleep_ns(1_000_000);
        }
        true
    }

    /// Blocks until the thread has exited.
    pub fn join(self) {
        let t = &self.thread;
        t.exited.wait_until(|| t.state() == state::EXITED);
    }

    pub fn thread(&self) -> &Arc<Thread> {
        &self.thread
    }
}
