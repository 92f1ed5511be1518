//! Sleeping locks built on wait queues: a mutex whose waiters block
//! instead of spinning, and a counting semaphore.
//!
//! Both follow wait.rs's protocol: the condition a waiter sleeps on
//! includes taking the lock (or a permit), checked under the queue's lock;
//! release first gives the lock (or permit) back, then wakes one waiter. A
//! woken waiter can lose to a thread that arrives meanwhile; it then sleeps
//! again, and the winner's own release will wake it, so no release is ever
//! lost.
use super::wait::WaitQueue;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Mutex<T> {
    locked: AtomicBool,
    waiters: WaitQueue,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and one guard exists
// at a time (the `locked` flag).
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex { locked: AtomicBool::new(false), waiters: WaitQueue::new(), value: UnsafeCell::new(value) }
    }

    fn try_take(&self) -> bool {
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Takes the lock, sleeping while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if !self.try_take() {
            self.waiters.wait_until(|| self.try_take());
        }
        MutexGuard { mutex: self }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the lock.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.locked.store(false, Ordering::Release);
        self.mutex.waiters.wake_one();
    }
}

pub struct Semaphore {
    permits: AtomicU64,
    waiters: WaitQueue,
}

impl Semaphore {
    pub const fn new(permits: u64) -> Self {
        Semaphore { permits: AtomicU64::new(permits), waiters: WaitQueue::new() }
    }

    fn try_take(&self) -> bool {
        self.permits.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| p.checked_sub(1)).is_ok()
    }

    /// Takes a permit, sleeping until one is available.
    pub fn acquire(&self) {
        if !self.try_take() {
            self.waiters.wait_until(|| self.try_take());
        }
    }

    /// Returns a permit and wakes a waiter.
    pub fn release(&self) {
        self.permits.fetch_add(1, Ordering::AcqRel);
        self.waiters.wake_one();
    }

    pub fn available(&self) -> u64 {
        self.permits.load(Ordering::Acquire)
    }
}
