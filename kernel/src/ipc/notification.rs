//! Notifications: a word of bits that `signal` ORs into and `notify_wait`
//! takes whole. Signalling never blocks and never loses bits: a signal
//! with no waiter stays in the word for the next wait.
use crate::quota::Charge;
use crate::sched::wait::WaitQueue;
use core::sync::atomic::{AtomicU64, Ordering};

pub struct Notification {
    word: AtomicU64,
    waiters: WaitQueue,
    /// The memory it takes, charged to the process that made it.
    _charge: Charge,
}

impl Notification {
    pub fn new(charge: Charge) -> Self {
        Notification { word: AtomicU64::new(0), waiters: WaitQueue::new(), _charge: charge }
    }

    /// ORs `bits` into the word and wakes the waiters (the first to look
    /// takes the word; the others wait again).
    pub fn signal(&self, bits: u64) {
        if bits != 0 {
            self.word.fetch_or(bits, Ordering::AcqRel);
            self.waiters.wake_all();
        }
    }

    /// Waits until the word is non-zero and takes it, or until
    /// `cancelled()` holds (None).
    pub fn wait(&self, cancelled: impl Fn() -> bool) -> Option<u64> {
        loop {
            let bits = self.word.swap(0, Ordering::AcqRel);
            if bits != 0 {
                return Some(bits);
            }
            if cancelled() {
                return None;
            }
            self.waiters.wait_until(|| self.word.load(Ordering::Acquire) != 0 || cancelled());
        }
    }
}
