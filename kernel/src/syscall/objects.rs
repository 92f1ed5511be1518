//! IPC objects and handles: `endpoint_create`, `call`, `reply_recv`,
//! `send`, `recv`, `notification_create`, `signal`, `notify_wait`,
//! `handle_close`, `handle_derive`, `handle_mint` and `handle_rights`.
//! Every handle is looked up with the right the call needs
//! (proc::handle's `lookup`), nowhere by hand.
use super::current_process;
use crate::arch::trap::TrapFrame;
use crate::ipc::{Endpoint, Notification};
use crate::proc::handle::{Handle, Object};
use crate::sched;
use alloc::sync::Arc;
use ferrite_abi::{nr, rights, Error};

/// The object is charged to the caller before it is made (quota.rs), and
/// the heap has room for it by then; its handle may still be refused (a
/// full table), and then it goes at once.
pub fn endpoint_create() -> Result<u64, Error> {
    let process = current_process();
    let (charge, room) = process.account.take_object::<Endpoint>()?;
    let object = Object::Endpoint(Arc::new(Endpoint::new(charge)));
    drop(room);
    process.add_handle(Handle::new(object, rights::ENDPOINT, None))
}

pub fn notification_create() -> Result<u64, Error> {
    let process = current_process();
    let (charge, room) = process.account.take_object::<Notification>()?;
    let object = Object::Notification(Arc::new(Notification::new(charge)));
    drop(room);
    process.add_handle(Handle::new(object, rights::NOTIFICATION, None))
}

/// `call`, `reply_recv`, `send` and `recv`: the handle in `rdi`, the
/// message in `rsi`, `rdx`, `r10`, `r8` both ways, the badge as the value.
pub fn ipc(frame: &mut TrapFrame) -> Result<u64, Error> {
    let me = sched::current();
    let process = &me.user().expect("syscall: from a kernel thread").process;
    let need = match frame.rax {
        nr::CALL | nr::SEND => rights::SEND,
        _ => rights::RECEIVE,
    };
    let (endpoint, badge) = process.handles.lock().endpoint(frame.rdi, need)?;
    // A handle without a badge of its own sends its process's ID.
    let badge = badge.unwrap_or(process.id);
    let msg = [frame.rsi, frame.rdx, frame.r10, frame.r8];
    let (badge, out) = match frame.rax {
        nr::CALL => (0, endpoint.call(&me, &msg, badge)?),
        nr::REPLY_RECV => endpoint.reply_recv(&me, Some(&msg))?,
        nr::RECV => endpoint.reply_recv(&me, None)?,
        _ => {
            endpoint.send(&me, &msg, badge)?;
            return Ok(0);
        }
    };
    [frame.rsi, frame.rdx, frame.r10, frame.r8] = out;
    Ok(badge)
}

pub fn signal(handle: u64, bits: u64) -> Result<u64, Error> {
    current_process().handles.lock().notification(handle, rights::SIGNAL)?.signal(bits);
    Ok(0)
}

pub fn notify_wait(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    let notification = process.handles.lock().notification(handle, rights::WAIT)?;
    notification.wait(|| process.dying()).ok_or(Error::PeerGone)
}

pub fn handle_close(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    // Dropped outside the lock: it may be the last reference to a process,
    // or the last receive handle of an endpoint, and either drop takes
    // locks of its own.
    let removed = process.handles.lock().remove(handle)?;
    drop(removed);
    Ok(0)
}

/// `handle_derive(handle, rights)`, and `handle_mint(handle, rights,
/// badge)` when `badge` is given.
pub fn handle_derive(handle: u64, wanted: u64, badge: Option<u64>) -> Result<u64, Error> {
    let process = current_process();
    let derived = {
        let table = process.handles.lock();
        let source = table.get(handle)?;
        if badge.is_some() {
            if !matches!(source.object(), Object::Endpoint(_)) {
                return Err(Error::BadHandle);
            }
            if source.badge().is_some() {
                return Err(Error::BadArgument);
            }
        }
        if wanted != rights::SAME && wanted & !rights::ALL != 0 {
            return Err(Error::BadArgument);
        }
        source.derive(wanted, badge)?
    };
    process.add_handle(derived)
}

pub fn handle_rights(handle: u64) -> Result<u64, Error> {
    Ok(current_process().handles.lock().get(handle)?.rights())
}
