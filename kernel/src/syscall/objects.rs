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
use ferrite_abi::{nr, rights, Error, HANDLE_DROPPED, NO_HANDLE};

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

/// `call`, `reply_recv`, `send` and `recv`, and with `handles` their
/// `_handle` forms: the handle in `rdi`, the message in `rsi`, `rdx`,
/// `r10`, `r8` both ways, the badge as the value, and with `handles` the
/// handle passed in `r9` both ways (ferrite_abi, "Handles in messages").
pub fn ipc(frame: &mut TrapFrame, handles: bool) -> Result<u64, Error> {
    let me = sched::current();
    let process = &me.user().expect("syscall: from a kernel thread").process;
    let need = match frame.rax {
        nr::CALL | nr::SEND | nr::CALL_HANDLE | nr::SEND_HANDLE => rights::SEND,
        _ => rights::RECEIVE,
    };
    let (endpoint, badge, pass) = {
        let table = process.handles.lock();
        let (endpoint, badge) = table.endpoint(frame.rdi, need)?;
        let pass = match frame.rax {
            nr::CALL_HANDLE | nr::SEND_HANDLE | nr::REPLY_RECV_HANDLE if frame.r9 != NO_HANDLE => {
                let source = table.get(frame.r9)?;
                if !source.object().transferable() {
                    return Err(Error::BadHandle);
                }
                if source.rights() & rights::TRANSFER == 0 {
                    return Err(Error::NoRights);
                }
                Some(source.derive(rights::SAME, None)?)
            }
            _ => None,
        };
        (endpoint, badge, pass)
    };
    // A handle without a badge of its own sends its process's ID.
    let badge = badge.unwrap_or(process.id);
    let msg = [frame.rsi, frame.rdx, frame.r10, frame.r8];
    let (badge, out) = match frame.rax {
        nr::CALL | nr::CALL_HANDLE => (0, endpoint.call(&me, &msg, badge, pass)?),
        nr::REPLY_RECV | nr::REPLY_RECV_HANDLE => endpoint.reply_recv(&me, Some(&msg), pass)?,
        nr::RECV | nr::RECV_HANDLE => endpoint.reply_recv(&me, None, None)?,
        _ => {
            endpoint.send(&me, &msg, badge, pass)?;
            return Ok(0);
        }
    };
    [frame.rsi, frame.rdx, frame.r10, frame.r8] = out;
    // The handle the message (or the reply) carried: into the table if
    // asked for, else dropped.
    let got = crate::ipc::take_incoming(&me);
    if handles {
        frame.r9 = match got {
            None => NO_HANDLE,
            Some(h) => process.add_handle(h).unwrap_or(HANDLE_DROPPED),
        };
    } else {
        drop(got);
    }
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
