//! User threads: a scheduler thread with a user-mode side.
//!
//! A user thread is a kernel thread whose first act is to leave for user
//! mode through a frame at the top of its kernel stack; from then on it
//! enters the kernel only by `syscall`, an interrupt or an exception, each
//! landing at the top of that same stack (the per-CPU `kernel_rsp` and the
//! TSS's RSP0 point there whenever it runs: [`switch_hook`]). It leaves the
//! kernel for good in [`end_current_thread`], the only way a user thread
//! ends.
use super::Process;
use crate::arch::gdt;
use crate::arch::idt::vector;
use crate::arch::syscall::user_frame_at;
use crate::arch::trap::{PageFaultError, TrapFrame};
use crate::arch::user::{self as arch_user, FpuState};
use crate::ipc::IpcState;
use crate::mem::frames;
use crate::percpu;
use crate::quota::{Charge, Resource};
use crate::sched;
use crate::sched::thread::Thread;
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ferrite_abi::{Error, EXIT_FAULT};
use ferrite_kcore::sched::Class;

pub struct UserThread {
    pub process: Arc<Process>,
    /// Saved FPU/SSE registers; touched only by the CPU switching the
    /// thread in or out (the scheduler's on_cpu protocol orders them).
    fpu: UnsafeCell<FpuState>,
    /// The CPU whose registers last held this thread's FPU state.
    fpu_cpu: AtomicU32,
    /// The code it ended with (`thread_exit`, or its process's).
    pub exit_code: AtomicU64,
    pub ipc: IpcState,
    /// Its place among its process's threads and the memory of its
    /// structures: given back when the thread is freed (after its handle is
    /// closed or joined, so an unjoined thread still counts).
    _charges: (Charge, Charge),
    /// Its kernel stack's memory: given back when it exits (the stack itself
    /// goes back as the CPU switches away from it).
    stack_charge: IrqSpinlock<Option<Charge>>,
}

// SAFETY: `fpu` is reached only by the CPU that switches the thread, one
// at a time (see the field); everything else is atomic or locked.
unsafe impl Sync for UserThread {}

/// Makes (without starting) a thread of `process` that enters user mode
/// at `frame`, with `affinity`.
pub(super) fn create(process: Arc<Process>, frame: TrapFrame, affinity: u32) -> Result<Arc<Thread>, Error> {
    // Everything it takes is charged to its process first: its place among
    // the threads, its structures (and the closure the scheduler boxes),
    // and its kernel stack, which is the kernel's memory, but a user
    // program asked for it.
    let account = &process.account;
    let counted = account.take(Resource::Threads, 1)?;
    let (memory, room) = account.take_bytes(crate::quota::object_bytes::<Thread>() + 64 + FpuState::bytes() + 64)?;
    let fpu = FpuState::initial().ok_or(Error::NoMemory)?;
    let stack_bytes = sched::THREAD_STACK_SIZE as u64;
    let stack_charge = account.take(Resource::Memory, stack_bytes)?;
    // The stack's frames beyond the kernel's reserve, set aside while it is
    // made.
    let claim = frames::claim(stack_bytes / crate::mem::PAGE_SIZE).ok_or(Error::NoMemory)?;
    let user = UserThread {
        process,
        fpu: UnsafeCell::new(fpu),
        fpu_cpu: AtomicU32::new(u32::MAX),
        exit_code: AtomicU64::new(0),
        ipc: IpcState::new(),
        _charges: (counted, memory),
        stack_charge: IrqSpinlock::new(Some(stack_charge)),
    };
    let t = sched::create("user", Class::Normal, affinity, Some(user), enter).map_err(|_| Error::NoMemory)?;
    drop((claim, room));
    // The frame goes where user frames live, at the top of the kernel
    // stack, now: `enter` never returns, so nothing it owned (a closure
    // holding the frame, say) would ever be freed.
    // SAFETY: the thread has not started, so its stack is ours; sched::create
    // leaves the frame slot at the top free.
    unsafe { user_frame_at(t.stack_top()).write(frame) };
    Ok(t)
}

/// TSC when the first user thread since boot left for user mode: "boot to
/// init" ends there (0: none yet).
static FIRST_USER_ENTRY: AtomicU64 = AtomicU64::new(0);

/// TSC ticks from the kernel's first instruction until the first user
/// thread's first instruction, once there has been one.
pub fn boot_to_first_user_ticks() -> Option<u64> {
    let at = FIRST_USER_ENTRY.load(Ordering::Acquire);
    (at != 0).then(|| at.saturating_sub(crate::time::boot_tsc()))
}

/// The new thread's first code: to user mode through the frame `create`
/// put at the top of its stack, unless its process died before it could
/// start.
fn enter() {
    before_user_return();
    let _ = FIRST_USER_ENTRY.compare_exchange(0, crate::arch::cpu::timer_end(), Ordering::AcqRel, Ordering::Relaxed);
    let at = user_frame_at(sched::with_current(|t| t.stack_top()));
    // SAFETY: `at` holds a user-mode frame built by the loader or
    // thread_spawn (create put it there), above everything this thread has
    // pushed.
    unsafe { arch_user::enter(at) }
}

/// The scheduler is switching this CPU from `prev` to `next` (at least one
/// of them a user thread), with interrupts off: save `prev`'s FPU state,
/// and give `next` its address space, its kernel entry stack and its FPU
/// state (unless this CPU's registers hold it already).
pub fn switch_hook(prev: &Thread, next: &Thread) {
    let cpu = percpu::current();
    if let Some(u) = prev.user() {
        // SAFETY: prev is switching out on this CPU: no one else touches its
        // FPU area now.
        unsafe { arch_user::fpu_save(u.fpu.get()) };
        cpu.fpu_owner.store(prev.id, Ordering::Relaxed);
    }
    if next.user().is_none() {
        // Lazy: the user address space stays loaded (mem::aspace).
        cpu.user_running.store(false, Ordering::Release);
    }
    if let Some(u) = next.user() {
        u.process.aspace.activate();
        u.process.io_ports.switch_in(u.process.id);
        let top = next.stack_top();
        cpu.kernel_rsp.store(top, Ordering::Relaxed);
        gdt::set_user_entry_stack(top);
        let me = cpu.index();
        if cpu.fpu_owner.load(Ordering::Relaxed) != next.id || u.fpu_cpu.load(Ordering::Relaxed) != me {
            // SAFETY: next is off every other CPU (on_cpu); its area holds a
            // state saved by fxsave or the initial one.
            unsafe { arch_user::fpu_restore(u.fpu.get()) };
            cpu.fpu_owner.store(next.id, Ordering::Relaxed);
            u.fpu_cpu.store(me, Ordering::Relaxed);
        }
    }
}

/// A fault in user mode: the process dies, with one log line naming it,
/// the fault and the address.
pub fn user_fault(frame: &TrapFrame, (mnemonic, name): (&str, &str), cr2: u64) -> ! {
    let process = sched::with_current(|t| t.user().map(|u| u.process.clone()));
    let Some(process) = process else {
        panic!("trap: {mnemonic} from user mode on a kernel thread at rip={:#x}", frame.rip);
    };
    let v = frame.vector as u8;
    if v == vector::PAGE_FAULT {
        let bits = PageFaultError::from_bits_retain(frame.error_code);
        log::error!(
            "user: process '{}' (pid {}) killed: {mnemonic} {name} at address {cr2:#x} ({bits}), rip {:#x}",
            process.name,
            process.id,
            frame.rip
        );
    } else {
        log::error!(
            "user: process '{}' (pid {}) killed: {mnemonic} {name} at rip {:#x} (error code {:#x})",
            process.name,
            process.id,
            frame.rip,
            frame.error_code
        );
    }
    process.kill(EXIT_FAULT);
    drop(process);
    end_current_thread(EXIT_FAULT)
}

/// The last look before a user thread returns to user mode: a thread of a
/// dying process ends here instead.
pub fn before_user_return() {
    if sched::with_current(|t| t.user().is_some_and(|u| u.process.dying())) {
        end_current_thread(0);
    }
}

/// Kills the running thread's process because of a bad return address
/// (the syscall exit refuses to `sysret` to one).
pub fn kill_for_bad_return(rip: u64) -> ! {
    let process = sched::with_current(|t| t.user().map(|u| u.process.clone()));
    if let Some(process) = process {
        log::error!(
            "user: process '{}' (pid {}) killed: return address {rip:#x} outside user space",
            process.name,
            process.id
        );
        process.kill(EXIT_FAULT);
    }
    end_current_thread(EXIT_FAULT)
}

/// Ends the running user thread with `code`; the last thread of a process
/// tears it down.
pub fn end_current_thread(code: u64) -> ! {
    // Interrupts on, even from a fault or an interrupt handler (the frame
    // it came from is never returned to): the last thread's teardown frees
    // every page of the process, and must not hold the CPU deaf meanwhile.
    // It may be preempted and moved; its address space, marked dead by the
    // teardown, is then never loaded again (mem::aspace).
    x86_64::instructions::interrupts::enable();
    let me = sched::current();
    let Some(user) = me.user() else {
        panic!("proc: end_current_thread on the kernel thread '{}'", me.name);
    };
    user.exit_code.store(code, Ordering::Release);
    crate::ipc::abandon_reply(&me);
    // The stack goes back once this CPU has switched away from it.
    let stack_charge = user.stack_charge.lock().take();
    drop(stack_charge);
    let process = user.process.clone();
    let last = process.thread_ended(&me, code);
    drop(me);
    if last {
        process.finish();
    }
    drop(process);
    sched::exit_current()
}
