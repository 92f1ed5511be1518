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
use core::sync::atomic::Ordering;

pub struct WaitQueue {
    waiters: IrqSpinlock<VecDeque<Arc<Thread>>>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue { waiters: IrqSpinlock::new(VecDeque::new()) }
    }

    /// Sleeps until `condition` holds (checked under the queue's lock).
    pub fn wait_until(&self, mut condition: impl FnMut() -> bool) {
        loop {
            let irq = super::InterruptsOff::new();
            {
                let mut waiters = self.waiters.lock();
                if condition() {
                    return;
                }
                let me = super::current();
                me.state.store(state::BLOCKED, Ordering::Release);
                waiters.push_back(me);
            }
            super::schedule(&irq);
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
