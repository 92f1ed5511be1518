//! Wait queues: how a thread sleeps until something happens.
//!
//! The protocol that makes lost wakeups impossible: a waiter checks its
//! condition and, if it must sleep, marks itself BLOCKED and joins the queue
//! all under the queue's lock; a waker changes the condition first, then
//! takes the same lock to pick waiters. So a wakeup either happens before
//! the waiter's check (which then sees the condition) or finds the waiter on
//! the queue. A waiter that is woken after joining the queue but before it
//! has switched away is simply made RUNNABLE again; `schedule` then finds it
//! runnable and, if nothing else is, keeps running it.
//!
//! The waiters are linked through the threads themselves (tqueue.rs), so
//! waiting never needs memory.
use super::thread::state;
use super::tqueue::ThreadQueue;
use crate::sync::IrqSpinlock;

pub struct WaitQueue {
    waiters: IrqSpinlock<ThreadQueue>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue { waiters: IrqSpinlock::new(ThreadQueue::new()) }
    }

    /// Sleeps until `condition` holds (checked under the queue's lock).
    ///
    /// The thread marks itself BLOCKED before its last look at the
    /// condition (`sched::block_unless`), so a waker that does not take
    /// this lock, such as a kill's `sched::interrupt`, is not lost either;
    /// and a thread woken that way takes itself off the queue, which would
    /// otherwise keep it (and everything it holds) until the next wakeup.
    pub fn wait_until(&self, mut condition: impl FnMut() -> bool) {
        let me = super::current();
        loop {
            let irq = super::InterruptsOff::new();
            {
                let mut waiters = self.waiters.lock();
                if !super::block_unless(&mut condition) {
                    drop(waiters);
                    if me.state() != state::RUNNING {
                        // A waker queued it meanwhile: back off that queue.
                        super::schedule(&irq);
                    }
                    return;
                }
                waiters.push_back(me.clone());
            }
            super::schedule(&irq);
            let gone = self.waiters.lock().remove(&me);
            drop(gone);
        }
    }

    /// Wakes the longest waiter; returns whether there was one.
    pub fn wake_one(&self) -> bool {
        let t = self.waiters.lock().pop_front();
        match t {
            Some(t) => {
                super::wake(t);
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter; returns how many. Under the queue's lock (a run
    /// queue's lock nests inside it), so that it allocates nothing and
    /// wakes only those that were waiting when it began.
    pub fn wake_all(&self) -> usize {
        let mut waiters = self.waiters.lock();
        let mut n = 0;
        while let Some(t) = waiters.pop_front() {
            super::wake(t);
            n += 1;
        }
        n
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
