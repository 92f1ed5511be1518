//! Synchronous endpoints: `call`, `reply_recv`, `send` and `recv`.
//!
//! An endpoint is a rendezvous: a queue of senders waiting for a receiver,
//! or of receivers waiting for a sender (never both at once), behind one
//! lock; the queues are linked through the threads (sched::tqueue), so
//! waiting on an endpoint never needs memory. When the partner is already waiting, the message moves at once;
//! for `call` and for the reply of `reply_recv` the CPU then goes straight
//! to the partner (sched::handoff) instead of through the run queue: the
//! caller blocks until the reply, so the receiver runs in its place, on
//! what is left of its time slice. A partner that may not run on this CPU
//! (pinned elsewhere) is woken on its own CPU, with a reschedule IPI if
//! that CPU must act.
//!
//! **Dying receivers.** A receiver whose process has just been killed stays
//! on the queue until its thread runs and takes itself off. A sender that
//! finds one there fails it at once (it would end without answering) and
//! looks for the next: its message goes to a receiver that will live, or
//! waits for one (a driver being restarted, say). A thread of a dying
//! process that comes to receive takes nothing either.
//!
//! **Receive rights.** The endpoint counts the handles that may receive on
//! it (proc::handle). When the last one goes, no one can ever receive
//! again: the endpoint *closes*, failing every thread waiting on it with
//! `PeerGone` (senders, which would wait for ever, and receivers left
//! behind by a handle closed under them), and every later send or call.
use super::{answer, dying, ipc, owe_reply, status, Message};
use crate::proc::handle::Handle;
use crate::quota::Charge;
use crate::sched::thread::Thread;
use crate::sched::tqueue::ThreadQueue;
use crate::sched::{self, InterruptsOff};
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use ferrite_abi::{Error, MSG_WORDS};

#[derive(Default)]
struct Queue {
    senders: ThreadQueue,
    receivers: ThreadQueue,
    /// No handle that may receive is left: every wait fails.
    closed: bool,
}

pub struct Endpoint {
    queue: IrqSpinlock<Queue>,
    /// Handles with the right to receive (see the module doc).
    receive_handles: AtomicUsize,
    /// The memory it takes, charged to the process that made it.
    _charge: Charge,
}

impl Endpoint {
    pub fn new(charge: Charge) -> Self {
        Endpoint { queue: IrqSpinlock::new(Queue::default()), receive_handles: AtomicUsize::new(0), _charge: charge }
    }

    /// A handle that may receive was made (proc::handle).
    pub fn receive_handle_made(&self) {
        self.receive_handles.fetch_add(1, Ordering::AcqRel);
    }

    /// A handle that may receive is gone; if it was the last, the endpoint
    /// closes. One waiter at a time, so that closing allocates nothing.
    pub fn receive_handle_gone(&self) {
        if self.receive_handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        self.queue.lock().closed = true;
        loop {
            let waiter = {
                let mut queue = self.queue.lock();
                queue.senders.pop_front().or_else(|| queue.receivers.pop_front())
            };
            let Some(waiter) = waiter else { break };
            ipc(&waiter).complete(&[0; MSG_WORDS], 0, Some(Error::PeerGone));
            sched::wake(waiter);
        }
    }

    /// Sends `msg`, carrying `badge` and `pass`, and waits for the reply
    /// (whose handle, if any, is then in `me`'s incoming slot). A `pass`
    /// not delivered is dropped on the way out.
    pub fn call(&self, me: &Arc<Thread>, msg: &Message, badge: u64, pass: Option<Handle>) -> Result<Message, Error> {
        let my = ipc(me);
        let irq = InterruptsOff::new();
        let (mut queue, receiver) = self.live_receiver();
        if queue.closed {
            drop(queue);
            drop(irq);
            drop(pass);
            return Err(Error::PeerGone);
        }
        match receiver {
            Some(receiver) => {
                my.status.store(status::AWAIT_REPLY, Ordering::Relaxed);
                // A kill that came meanwhile: handoff still runs the
                // receiver (it has the message), and the wait below
                // cancels the reply.
                sched::block_unless(|| dying(me));
                owe_reply(&receiver, me.clone());
                if let Some(h) = pass {
                    // The receiver's slot is empty: it took the last one.
                    let _none = ipc(&receiver).incoming.put(h);
                }
                ipc(&receiver).complete(msg, badge, None);
                drop(queue);
                sched::handoff(&irq, receiver);
            }
            None => {
                self.park(&mut queue, me, msg, badge, status::CALLING, pass);
                drop(queue);
                sched::schedule(&irq);
            }
        }
        drop(irq);
        let result = self.finish_wait(me).map(|(_, reply)| reply);
        // Not taken by a receiver (the wait failed): dropped here.
        drop(my.outgoing.take());
        result
    }

    /// Sends `msg`, carrying `badge` and `pass`, waiting until a receiver
    /// has taken it.
    pub fn send(&self, me: &Arc<Thread>, msg: &Message, badge: u64, pass: Option<Handle>) -> Result<(), Error> {
        let irq = InterruptsOff::new();
        let (mut queue, receiver) = self.live_receiver();
        if queue.closed {
            drop(queue);
            drop(irq);
            drop(pass);
            return Err(Error::PeerGone);
        }
        if let Some(receiver) = receiver {
            if let Some(h) = pass {
                let _none = ipc(&receiver).incoming.put(h);
            }
            ipc(&receiver).complete(msg, badge, None);
            drop(queue);
            sched::wake(receiver);
            return Ok(());
        }
        self.park(&mut queue, me, msg, badge, status::SENDING, pass);
        drop(queue);
        sched::schedule(&irq);
        drop(irq);
        let result = self.finish_wait(me).map(|_| ());
        drop(ipc(me).outgoing.take());
        result
    }

    /// Replies `reply` (carrying `pass`) to the caller `me` owes one (if
    /// `reply` is given and the caller still waits), then waits for the
    /// next message; returns its badge and words (its handle, if any, is
    /// then in `me`'s incoming slot).
    pub fn reply_recv(
        &self,
        me: &Arc<Thread>,
        reply: Option<&Message>,
        pass: Option<Handle>,
    ) -> Result<(u64, Message), Error> {
        let my = ipc(me);
        let caller = match reply {
            Some(_) => my.reply_to.lock().take(),
            None => None,
        };
        let (answered, undelivered) = match (caller, reply) {
            (Some(caller), Some(msg)) => answer(caller, msg, None, pass),
            _ => (None, pass),
        };
        drop(undelivered);
        let irq = InterruptsOff::new();
        let mut queue = self.queue.lock();
        // Killed: it takes no message (it would end without answering),
        // and the sender waits for a receiver that will live.
        if queue.closed || dying(me) {
            drop(queue);
            drop(irq);
            answered.into_iter().for_each(sched::wake);
            return Err(Error::PeerGone);
        }
        if let Some(sender) = queue.senders.pop_front() {
            let theirs = ipc(&sender);
            let (badge, msg) = (theirs.badge.load(Ordering::Relaxed), theirs.msg());
            if let Some(h) = theirs.outgoing.take() {
                let _none = my.incoming.put(h);
            }
            let finished = if theirs.status.load(Ordering::Relaxed) == status::CALLING {
                theirs.status.store(status::AWAIT_REPLY, Ordering::Release);
                owe_reply(me, sender);
                None
            } else {
                theirs.complete(&msg, 0, None);
                Some(sender)
            };
            drop(queue);
            finished.into_iter().chain(answered).for_each(sched::wake);
            return Ok((badge, msg));
        }
        my.status.store(status::RECEIVING, Ordering::Relaxed);
        queue.receivers.push_back(me.clone());
        sched::block_unless(|| dying(me));
        drop(queue);
        match answered {
            Some(caller) => sched::handoff(&irq, caller),
            None => sched::schedule(&irq),
        }
        drop(irq);
        self.finish_wait(me)
    }

    /// The queue, locked, and the first waiting receiver whose process is
    /// not dying, taken off it. Dying ones met on the way are failed with
    /// `PeerGone` and woken (one at a time, the lock dropped for the wake).
    /// Interrupts must be off.
    fn live_receiver(&self) -> (crate::sync::IrqSpinlockGuard<'_, Queue>, Option<Arc<Thread>>) {
        loop {
            let mut queue = self.queue.lock();
            match queue.receivers.pop_front() {
                Some(receiver) if dying(&receiver) => {
                    ipc(&receiver).complete(&[0; MSG_WORDS], 0, Some(Error::PeerGone));
                    drop(queue);
                    sched::wake(receiver);
                }
                receiver => return (queue, receiver),
            }
        }
    }

    /// Queues `me` as a sender with `msg` and `pass` and blocks it (to
    /// sleep once the lock is dropped) unless its process is dying.
    fn park(&self, queue: &mut Queue, me: &Arc<Thread>, msg: &Message, badge: u64, how: u8, pass: Option<Handle>) {
        let my = ipc(me);
        if let Some(h) = pass {
            // Empty: a sender's slot is emptied at the end of each send.
            let _none = my.outgoing.put(h);
        }
        my.set_msg(msg);
        my.badge.store(badge, Ordering::Relaxed);
        my.status.store(how, Ordering::Relaxed);
        queue.senders.push_back(me.clone());
        // Dying already: not blocked, and finish_wait cancels.
        sched::block_unless(|| dying(me));
    }

    /// Sleeps until the IPC is done, or cancels it if the process is dying.
    fn finish_wait(&self, me: &Thread) -> Result<(u64, Message), Error> {
        let my = ipc(me);
        sched::wait_for(|| my.done() || dying(me));
        if my.done() {
            return my.outcome();
        }
        self.cancel(me)
    }

    /// Gives up a wait (the process is dying): off the queue if still on
    /// it; otherwise a partner has taken us, and either the outcome is there
    /// or we refuse the reply we wait for.
    fn cancel(&self, me: &Thread) -> Result<(u64, Message), Error> {
        let my = ipc(me);
        let gone = {
            let mut queue = self.queue.lock();
            queue.senders.remove(me).or_else(|| queue.receivers.remove(me))
        };
        if gone.is_some() {
            my.status.store(status::IDLE, Ordering::Relaxed);
            return Err(Error::PeerGone);
        }
        loop {
            match my.status.compare_exchange(
                status::AWAIT_REPLY,
                status::CANCELLED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Err(Error::PeerGone),
                Err(status::DONE) => return my.outcome(),
                // A replier is writing the reply (REPLYING): moments away.
                Err(_) => core::hint::spin_loop(),
            }
        }
    }
}
