//! Synchronous endpoints: `call`, `reply_recv`, `send` and `recv`.
//!
//! An endpoint is a rendezvous: a queue of senders waiting for a receiver,
//! or of receivers waiting for a sender (never both at once), behind one
//! lock. When the partner is already waiting, the message moves at once;
//! for `call` and for the reply of `reply_recv` the CPU then goes straight
//! to the partner (sched::handoff) instead of through the run queue: the
//! caller blocks until the reply, so the receiver runs in its place, on
//! what is left of its time slice. A partner that may not run on this CPU
//! (pinned elsewhere) is woken on its own CPU, with a reschedule IPI if
//! that CPU must act.
use super::{answer, badge_of, dying, ipc, owe_reply, status, Message};
use crate::sched::thread::Thread;
use crate::sched::{self, InterruptsOff};
use crate::sync::IrqSpinlock;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use ferrite_abi::Error;

#[derive(Default)]
struct Queue {
    senders: VecDeque<Arc<Thread>>,
    receivers: VecDeque<Arc<Thread>>,
}

pub struct Endpoint {
    queue: IrqSpinlock<Queue>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoint {
    pub fn new() -> Self {
        Endpoint { queue: IrqSpinlock::new(Queue::default()) }
    }

    /// Sends `msg` and waits for the reply.
    pub fn call(&self, me: &Arc<Thread>, msg: &Message) -> Result<Message, Error> {
        let my = ipc(me);
        let irq = InterruptsOff::new();
        let mut queue = self.queue.lock();
        match queue.receivers.pop_front() {
            Some(receiver) => {
                my.status.store(status::AWAIT_REPLY, Ordering::Relaxed);
                // A kill that came meanwhile: handoff still runs the
                // receiver (it has the message), and the wait below
                // cancels the reply.
                sched::block_unless(|| dying(me));
                owe_reply(&receiver, me.clone());
                ipc(&receiver).complete(msg, badge_of(me), None);
                drop(queue);
                sched::handoff(&irq, receiver);
            }
            None => {
                self.park(&mut queue, me, msg, status::CALLING);
                drop(queue);
                sched::schedule(&irq);
            }
        }
        drop(irq);
        self.finish_wait(me).map(|(_, reply)| reply)
    }

    /// Sends `msg`, waiting until a receiver has taken it.
    pub fn send(&self, me: &Arc<Thread>, msg: &Message) -> Result<(), Error> {
        let irq = InterruptsOff::new();
        let mut queue = self.queue.lock();
        if let Some(receiver) = queue.receivers.pop_front() {
            ipc(&receiver).complete(msg, badge_of(me), None);
            drop(queue);
            sched::wake(receiver);
            return Ok(());
        }
        self.park(&mut queue, me, msg, status::SENDING);
        drop(queue);
        sched::schedule(&irq);
        drop(irq);
        self.finish_wait(me).map(|_| ())
    }

    /// Replies `reply` to the caller `me` owes one (if `reply` is given and
    /// the caller still waits), then waits for the next message; returns
    /// its badge and words.
    pub fn reply_recv(&self, me: &Arc<Thread>, reply: Option<&Message>) -> Result<(u64, Message), Error> {
        let my = ipc(me);
        let answered = match reply {
            Some(msg) => my.reply_to.lock().take().and_then(|caller| answer(caller, msg, None)),
            None => None,
        };
        let irq = InterruptsOff::new();
        let mut queue = self.queue.lock();
        if let Some(sender) = queue.senders.pop_front() {
            let theirs = ipc(&sender);
            let (badge, msg) = (theirs.badge.load(Ordering::Relaxed), theirs.msg());
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

    /// Queues `me` as a sender with `msg` and blocks it (to sleep once the
    /// lock is dropped) unless its process is dying.
    fn park(&self, queue: &mut Queue, me: &Arc<Thread>, msg: &Message, how: u8) {
        let my = ipc(me);
        my.set_msg(msg);
        my.badge.store(badge_of(me), Ordering::Relaxed);
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
        {
            let mut queue = self.queue.lock();
            let before = queue.senders.len() + queue.receivers.len();
            queue.senders.retain(|t| !core::ptr::eq(&**t, me));
            queue.receivers.retain(|t| !core::ptr::eq(&**t, me));
            if queue.senders.len() + queue.receivers.len() != before {
                my.status.store(status::IDLE, Ordering::Relaxed);
                return Err(Error::PeerGone);
            }
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
