//! IPC objects and handles: `endpoint_create`, `call`, `reply_recv`,
//! `send`, `recv`, `notification_create`, `signal`, `notify_wait`,
//! `handle_close`.
use super::current_process;
use crate::arch::trap::TrapFrame;
use crate::ipc::{Endpoint, Notification};
use crate::proc::handle::Object;
use crate::proc::Process;
use crate::sched;
use alloc::sync::Arc;
use ferrite_abi::{nr, Error};

pub fn endpoint_create() -> Result<u64, Error> {
    current_process().add_handle(Object::Endpoint(Arc::new(Endpoint::new())))
}

pub fn notification_create() -> Result<u64, Error> {
    current_process().add_handle(Object::Notification(Arc::new(Notification::new())))
}

fn endpoint(process: &Process, handle: u64) -> Result<Arc<Endpoint>, Error> {
    match process.handles.lock().get(handle)? {
        Object::Endpoint(e) => Ok(e.clone()),
        _ => Err(Error::BadHandle),
    }
}

fn notification(process: &Process, handle: u64) -> Result<Arc<Notification>, Error> {
    match process.handles.lock().get(handle)? {
        Object::Notification(n) => Ok(n.clone()),
        _ => Err(Error::BadHandle),
    }
}

/// `call`, `reply_recv`, `send` and `recv`: the handle in `rdi`, the
/// message in `rsi`, `rdx`, `r10`, `r8` both ways, the badge as the value.
pub fn ipc(frame: &mut TrapFrame) -> Result<u64, Error> {
    let me = sched::current();
    let endpoint = {
        let process = &me.user().expect("syscall: from a kernel thread").process;
        endpoint(process, frame.rdi)?
    };
    let msg = [frame.rsi, frame.rdx, frame.r10, frame.r8];
    let (badge, out) = match frame.rax {
        nr::CALL => (0, endpoint.call(&me, &msg)?),
        nr::REPLY_RECV => endpoint.reply_recv(&me, Some(&msg))?,
        nr::RECV => endpoint.reply_recv(&me, None)?,
        _ => {
            endpoint.send(&me, &msg)?;
            return Ok(0);
        }
    };
    [frame.rsi, frame.rdx, frame.r10, frame.r8] = out;
    Ok(badge)
}

pub fn signal(handle: u64, bits: u64) -> Result<u64, Error> {
    notification(&current_process(), handle)?.signal(bits);
    Ok(0)
}

pub fn notify_wait(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    notification(&process, handle)?.wait(|| process.dying()).ok_or(Error::PeerGone)
}

pub fn handle_close(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    // Dropped outside the lock: it may be the last reference to a process.
    let removed = process.handles.lock().remove(handle)?;
    drop(removed);
    Ok(0)
}
