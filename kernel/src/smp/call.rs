//! Cross-CPU calls: run a function on every online CPU at once and wait
//! for all of them (the in-kernel tests use it; the scheduler will bring
//! threads).
//!
//! The caller publishes the function, bumps a generation counter and sends
//! a CALL IPI to wake the others from `hlt`; each CPU's idle loop sees the
//! new generation, runs the function with interrupts on, and counts itself
//! done. The caller runs it too, then waits for the count before it
//! returns, which is what makes lending a non-'static closure sound.
use crate::arch::ipi::{self, Ipi};
use crate::percpu;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

type CallFn = dyn Fn(u32) + Sync + 'static;

static CALLER: Mutex<()> = Mutex::new(());
static FUNC: Mutex<Option<&'static CallFn>> = Mutex::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU32 = AtomicU32::new(0);
/// How long the caller waits for the others before declaring a CPU hung.
const CALL_TIMEOUT_NS: u64 = 60_000_000_000;

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Runs `f(cpu_index)` on every online CPU, this one included, and returns
/// when all have finished. Panics if a CPU does not finish within a minute
/// (a hung CPU must not hang the test run silently).
pub fn run_on_all<'a>(f: &'a (dyn Fn(u32) + Sync + 'a)) {
    let _one_caller = CALLER.lock();
    // SAFETY: the reference is withdrawn (FUNC = None) only after every
    // other CPU has finished with it, below, so it never outlives `f`.
    let erased: &'static CallFn = unsafe { core::mem::transmute::<&'a (dyn Fn(u32) + Sync + 'a), &'static CallFn>(f) };
    *FUNC.lock() = Some(erased);
    DONE.store(0, Ordering::SeqCst);
    let others = super::online_count() - 1;
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    percpu::current().call_generation.store(generation, Ordering::Relaxed);
    if others > 0 {
        ipi::send_online_others(Ipi::Call);
    }
    f(percpu::cpu_index());
    let start = crate::arch::cpu::rdtsc();
    let limit = CALL_TIMEOUT_NS / 1000 * (crate::time::tsc_hz() / 1_000_000);
    while DONE.load(Ordering::Acquire) < others {
        if crate::arch::cpu::rdtsc() - start > limit {
            panic!("smp: only {} of {others} CPUs finished a cross-CPU call", DONE.load(Ordering::Acquire));
        }
        core::hint::spin_loop();
    }
    *FUNC.lock() = None;
}

/// Runs the pending call on this CPU, if there is one it has not run.
/// Called with interrupts off; runs the function with them on.
pub fn run_pending() -> bool {
    let me = percpu::current();
    let generation = GENERATION.load(Ordering::Acquire);
    if me.call_generation.load(Ordering::Relaxed) == generation {
        return false;
    }
    me.call_generation.store(generation, Ordering::Relaxed);
    let f = *FUNC.lock();
    x86_64::instructions::interrupts::enable();
    if let Some(f) = f {
        f(me.index());
    }
    x86_64::instructions::interrupts::disable();
    DONE.fetch_add(1, Ordering::AcqRel);
    true
}
