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
use super::thread::{state, Thread};
use crate::sync::IrqSpinlock;
use alloc::collections::VecDeque;
use alloc::sync::Arc;

pub struct WaitQueue {
    waiters: IrqSpinlock<VecDeque<Arc<Thread>>>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue { waiters: IrqSpinlock::new(VecDeque::new()) }
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
            self.waiters.lock().retain(|t| !Arc::ptr_eq(t, &me));
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

    /// Wakes every waiter; returns how many.
    pub fn wake_all(&self) -> usize {
        let all = core::mem::take(&mut *self.waiters.lock());
        let n = all.len();
        for t in all {
            super::wake(t);
        }
        n
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
