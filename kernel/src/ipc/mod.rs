//! Inter-process communication: synchronous endpoints and asynchronous
//! notifications (the model is seL4's).
//!
//! **Messages** are [`MSG_WORDS`] machine words that travel in registers:
//! the sender's words are read from its syscall frame, parked in its
//! [`IpcState`] if it must wait, and written into the receiver's state,
//! from which the receiver's syscall returns them in its registers, with
//! the badge of the handle the sender used (proc::handle). No user memory
//! is touched.
//!
//! **Waiting.** Each user thread has one [`IpcState`]: what it waits for
//! (`status`), the message, the badge and the result. Whoever completes a
//! wait writes the message and result first, then sets the status to
//! `DONE` (release), then wakes the thread; the waiter sleeps in
//! `sched::wait_for(status == DONE or process dying)`, which cannot miss
//! that wakeup. A dying thread cancels its wait: it takes itself off the
//! endpoint's queue under the endpoint's lock, or marks a pending reply
//! `CANCELLED` with a compare-and-swap that races cleanly with the replier.
//!
//! **Handles.** A message may carry one handle (the `*_HANDLE` calls): a
//! copy, made by the sender's system call, travels in a [`HandleSlot`] —
//! the sender's `outgoing` while it waits on the queue, then the
//! receiver's `incoming` — and the receiver's system call puts it in its
//! table. Whoever does not pass it on drops it: a sender whose wait fails,
//! a receiver that did not ask for handles or has no room. A slot's owner
//! drops what is left in it with the thread, so a handle in flight is
//! never leaked, and a message without one costs one atomic load a side.
//!
//! **Replies.** A thread that receives a `call` owes the caller a reply:
//! it keeps a reference to the caller (`reply_to`) until `reply_recv`
//! answers it. If it receives again without replying, or ends, the caller's
//! call fails with `PeerGone` rather than waiting for ever.
mod endpoint;
mod notification;

pub use endpoint::Endpoint;
pub use notification::Notification;

use crate::proc::handle::Handle;
use crate::sched::thread::Thread;
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use ferrite_abi::{Error, MSG_WORDS};

pub type Message = [u64; MSG_WORDS];

/// What a thread's IPC is waiting for.
mod status {
    /// Not in an IPC.
    pub const IDLE: u8 = 0;
    /// On an endpoint's queue with a message to `send`.
    pub const SENDING: u8 = 1;
    /// On an endpoint's queue with a message to `call` with.
    pub const CALLING: u8 = 2;
    /// Its call was received; waiting for the reply.
    pub const AWAIT_REPLY: u8 = 3;
    /// On an endpoint's queue, waiting for a message.
    pub const RECEIVING: u8 = 4;
    /// The wait is over: message, badge and result are in place.
    pub const DONE: u8 = 5;
    /// It gave up waiting for a reply (its process is dying).
    pub const CANCELLED: u8 = 6;
    /// A replier has claimed the wait and is filling in the reply.
    pub const REPLYING: u8 = 7;
}

/// A handle in flight, or none (see the module doc).
pub struct HandleSlot {
    /// Set while `slot` holds one: the check a message without a handle
    /// costs.
    full: AtomicBool,
    slot: IrqSpinlock<Option<Handle>>,
}

impl Default for HandleSlot {
    fn default() -> Self {
        HandleSlot { full: AtomicBool::new(false), slot: IrqSpinlock::new(None) }
    }
}

impl HandleSlot {
    /// Puts `handle` in; returns what was there (none, unless a bug).
    fn put(&self, handle: Handle) -> Option<Handle> {
        let old = self.slot.lock().replace(handle);
        self.full.store(true, Ordering::Release);
        old
    }

    /// Takes what is there.
    pub fn take(&self) -> Option<Handle> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        self.full.store(false, Ordering::Relaxed);
        self.slot.lock().take()
    }
}

/// A user thread's IPC state.
pub struct IpcState {
    status: AtomicU8,
    msg: [AtomicU64; MSG_WORDS],
    badge: AtomicU64,
    /// 0, or an `Error` code for the thread's syscall to return.
    error: AtomicU64,
    /// The caller this thread owes a reply to.
    reply_to: IrqSpinlock<Option<Arc<Thread>>>,
    /// The handle its message carries, while it waits to send it.
    outgoing: HandleSlot,
    /// The handle the message it received carries.
    incoming: HandleSlot,
}

impl Default for IpcState {
    fn default() -> Self {
        Self::new()
    }
}

impl IpcState {
    pub fn new() -> Self {
        IpcState {
            status: AtomicU8::new(status::IDLE),
            msg: [const { AtomicU64::new(0) }; MSG_WORDS],
            badge: AtomicU64::new(0),
            error: AtomicU64::new(0),
            reply_to: IrqSpinlock::new(None),
            outgoing: HandleSlot::default(),
            incoming: HandleSlot::default(),
        }
    }

    fn set_msg(&self, msg: &Message) {
        for (slot, &word) in self.msg.iter().zip(msg) {
            slot.store(word, Ordering::Relaxed);
        }
    }

    fn msg(&self) -> Message {
        core::array::from_fn(|i| self.msg[i].load(Ordering::Relaxed))
    }

    /// Fills in the outcome of the wait and ends it (see the module doc).
    fn complete(&self, msg: &Message, badge: u64, error: Option<Error>) {
        self.set_msg(msg);
        self.badge.store(badge, Ordering::Relaxed);
        self.error.store(error.map_or(0, |e| e as u64), Ordering::Relaxed);
        self.status.store(status::DONE, Ordering::Release);
    }

    /// The outcome of a finished wait: the message and badge, or the error.
    fn outcome(&self) -> Result<(u64, Message), Error> {
        self.status.store(status::IDLE, Ordering::Relaxed);
        match self.error.load(Ordering::Relaxed) {
            0 => Ok((self.badge.load(Ordering::Relaxed), self.msg())),
            code => Err(Error::from_code(code).unwrap_or(Error::PeerGone)),
        }
    }

    fn done(&self) -> bool {
        self.status.load(Ordering::Acquire) == status::DONE
    }
}

/// The IPC state of a user thread.
fn ipc(t: &Thread) -> &IpcState {
    &t.user().expect("ipc: a kernel thread in an IPC").ipc
}

fn dying(t: &Thread) -> bool {
    t.user().is_some_and(|u| u.process.dying())
}

/// Answers `caller`'s call with `msg` and `pass` (or fails it with
/// `error`); returns the caller if it still waited and must be woken, and
/// `pass` if it was not delivered (for the caller to drop outside locks).
fn answer(
    caller: Arc<Thread>,
    msg: &Message,
    error: Option<Error>,
    pass: Option<Handle>,
) -> (Option<Arc<Thread>>, Option<Handle>) {
    let theirs = ipc(&caller);
    // Claim the wait first: a caller that gave up (CANCELLED) must not get a
    // late reply into a later IPC.
    if theirs
        .status
        .compare_exchange(status::AWAIT_REPLY, status::REPLYING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return (None, pass);
    }
    let left = pass.and_then(|h| theirs.incoming.put(h));
    theirs.complete(msg, 0, error);
    (Some(caller), left)
}

/// Records that `me` owes `caller` a reply; a reply it still owed someone
/// else is failed with `PeerGone`.
fn owe_reply(me: &Thread, caller: Arc<Thread>) {
    let old = ipc(me).reply_to.lock().replace(caller);
    if let Some(woken) = old.and_then(|old| answer(old, &[0; MSG_WORDS], Some(Error::PeerGone), None).0) {
        crate::sched::wake(woken);
    }
}

/// A thread is ending: the caller it owes a reply, if any, gets `PeerGone`.
pub fn abandon_reply(me: &Thread) {
    let Some(user) = me.user() else { return };
    let owed = user.ipc.reply_to.lock().take();
    if let Some(woken) = owed.and_then(|caller| answer(caller, &[0; MSG_WORDS], Some(Error::PeerGone), None).0) {
        crate::sched::wake(woken);
    }
    // Handles in flight from or to it go with it.
    drop((user.ipc.outgoing.take(), user.ipc.incoming.take()));
}

/// The handle the last message `me` received carries, if any.
pub fn take_incoming(me: &Thread) -> Option<Handle> {
    ipc(me).incoming.take()
}
