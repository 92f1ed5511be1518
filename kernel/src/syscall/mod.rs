//! System calls: [`dispatch`] and one handler per call of ferrite_abi.
//!
//! The entry (arch::syscall) hands over the caller's registers as a
//! `TrapFrame`; `rax` holds the number, `rdi`, `rsi`, `rdx`, `r10`, `r8`
//! the arguments. A handler returns a value or an `Error`: the status goes
//! back in `rax` and the value in `rdi`, as the ABI says; the IPC handlers
//! also write the message registers. Handlers check every argument before acting, so a call either
//! happens or fails with nothing changed.
//!
//! On the way out: preemption if it was asked for, the end of the thread
//! if its process is dying, and a last check that the return address lies
//! in user space, because `sysretq` to a non-canonical one would fault in
//! ring 0 (arch::syscall).
mod device;
mod objects;
mod tasks;
mod uaccess;

use crate::arch::trap::TrapFrame;
use crate::proc::{self, Process};
use crate::sched;
use alloc::sync::Arc;
use ferrite_abi::{nr, Error, USER_END, USER_START, WRITE_MAX};

/// Called by the trap path for a system call, with interrupts on.
pub fn dispatch(frame: &mut TrapFrame) {
    // Status and value in two registers (ferrite_abi, "Registers").
    (frame.rax, frame.rdi) = match handle(frame) {
        Ok(value) => (0, value),
        Err(e) => (e.code(), 0),
    };
    sched::preempt_point();
    proc::before_user_return();
    if !(USER_START..USER_END).contains(&frame.rip) {
        proc::kill_for_bad_return(frame.rip);
    }
}

fn handle(frame: &mut TrapFrame) -> Result<u64, Error> {
    let (a0, a1, a2, a3, a4) = (frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8);
    match frame.rax {
        nr::WRITE => write(a0, a1),
        nr::EXIT => exit(a0),
        nr::YIELD => {
            sched::yield_now();
            Ok(0)
        }
        nr::SLEEP => {
            let process = current_process();
            sched::sleep_ns_unless(a0, || process.dying());
            Ok(0)
        }
        nr::TIME => Ok(crate::time::uptime_ns()),
        nr::CPU => Ok(u64::from(crate::smp::online_rank(crate::percpu::cpu_index()))),
        nr::CPU_COUNT => Ok(u64::from(crate::smp::online_count())),
        nr::THREAD_SPAWN => tasks::thread_spawn(a0, a1, a2),
        nr::THREAD_JOIN => tasks::thread_join(a0),
        nr::THREAD_EXIT => proc::end_current_thread(a0),
        nr::SET_AFFINITY => tasks::set_affinity(a0),
        nr::MAP => tasks::map(a0, a1),
        nr::UNMAP => tasks::unmap(a0, a1),
        nr::SPAWN => tasks::spawn(a0, a1, a2, a3, a4),
        nr::WAIT => tasks::wait(a0),
        nr::ENDPOINT_CREATE => objects::endpoint_create(),
        nr::CALL | nr::REPLY_RECV | nr::SEND | nr::RECV => objects::ipc(frame, false),
        nr::CALL_HANDLE | nr::REPLY_RECV_HANDLE | nr::SEND_HANDLE | nr::RECV_HANDLE => objects::ipc(frame, true),
        nr::NOTIFICATION_CREATE => objects::notification_create(),
        nr::SIGNAL => objects::signal(a0, a1),
        nr::NOTIFY_WAIT => objects::notify_wait(a0),
        nr::HANDLE_CLOSE => objects::handle_close(a0),
        nr::HANDLE_DERIVE => objects::handle_derive(a0, a1, None),
        nr::HANDLE_MINT => objects::handle_derive(a0, a1, Some(a2)),
        nr::HANDLE_RIGHTS => objects::handle_rights(a0),
        nr::LIMITS => tasks::limits(a0),
        nr::PID => Ok(current_process().id),
        nr::NULL => Ok(0),
        nr::TSC_HZ => Ok(crate::time::tsc_hz()),
        nr::POWER => device::power(a0, a1),
        nr::KILL => tasks::kill(a0),
        nr::RESOURCE_NARROW => device::resource_narrow(a0, a1, a2),
        nr::RESOURCE_INFO => device::resource_info(a0, a1),
        nr::IOPORT_ENABLE => device::ioport_enable(a0),
        nr::IRQ_BIND => device::irq_bind(a0, a1, a2),
        nr::IRQ_ACK => device::irq_ack(a0),
        nr::PROCESS_LIST => device::process_list(a0, a1, a2),
        nr::PROCESS_OPEN => device::process_open(a0, a1),
        nr::SYSTEM_INFO => device::system_info(a0, a1, a2),
        nr::MEM_CREATE => device::mem_create(a0),
        nr::MEM_MAP => device::mem_map(a0, a1),
        _ => Err(Error::BadSyscall),
    }
}

/// The calling thread's process.
fn current_process() -> Arc<Process> {
    sched::with_current(|t| t.user().map(|u| u.process.clone())).expect("syscall: from a kernel thread")
}

/// `write(ptr, len)`: the bytes go to the console, marked as this
/// process's (console.rs). Copied whole first, onto the stack (no heap),
/// so that a bad range writes nothing.
fn write(ptr: u64, len: u64) -> Result<u64, Error> {
    if len > WRITE_MAX {
        return Err(Error::BadLength);
    }
    let mut buffer = [0u8; WRITE_MAX as usize];
    let bytes = &mut buffer[..len as usize];
    uaccess::copy_in_to(ptr, bytes)?;
    crate::console::write_user(current_process().id, bytes);
    Ok(len)
}

/// `exit(code)`: the whole process ends.
fn exit(code: u64) -> ! {
    let process = current_process();
    process.kill(code);
    drop(process);
    proc::end_current_thread(code)
}
