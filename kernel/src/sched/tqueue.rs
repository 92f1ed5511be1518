//! Thread queues that never allocate: a FIFO of threads linked through the
//! threads themselves, as seL4 links its endpoint queues through the TCBs.
//!
//! Wait queues and IPC endpoints queue their waiting threads here, so that
//! no thread ever needs memory to go to sleep (a program could otherwise
//! make the kernel's heap grow by blocking many threads on one object, or
//! fail a wait for want of memory), and a thread that gives up its wait
//! (a kill woke it) leaves its queue in constant time.
//!
//! **The invariant that makes it sound.** Each thread has one link
//! ([`Link`], in `Thread::link`), so it is on at most one such queue at a
//! time; its link is read and written only through the queue it is on,
//! under that queue's lock (every method takes `&mut self`, which the lock
//! guard gives). The queue owns one strong reference to each thread on it
//! (`Arc::into_raw` on the way in, `Arc::from_raw` on the way out). Run
//! queues and the sleepers' heap are separate structures: a thread woken by
//! a kill may be on a run queue while it is still on the wait queue it is
//! about to leave.
use super::thread::Thread;
use alloc::sync::Arc;
use core::ptr;

/// A thread's place on a [`ThreadQueue`].
pub struct Link {
    prev: *const Thread,
    next: *const Thread,
    /// The queue the thread is on (null: none).
    owner: *const ThreadQueue,
}

impl Link {
    pub const fn new() -> Self {
        Link { prev: ptr::null(), next: ptr::null(), owner: ptr::null() }
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

pub struct ThreadQueue {
    head: *const Thread,
    tail: *const Thread,
}

// SAFETY: the raw pointers are strong references to threads (which are
// Send and Sync), reached only through `&mut self`, i.e. under the lock
// that guards the queue.
unsafe impl Send for ThreadQueue {}

/// The link of `t`.
///
/// # Safety
/// The caller holds the lock of the queue `t` is on (or is about to be put
/// on), and no other reference to the link is live.
#[allow(clippy::mut_from_ref)]
unsafe fn link(t: *const Thread) -> &'static mut Link {
    // SAFETY: (of the caller) exclusive access under the queue's lock; the
    // thread is alive (the queue holds a reference, or the caller does).
    unsafe { &mut *(*t).link.get() }
}

impl ThreadQueue {
    pub const fn new() -> Self {
        ThreadQueue { head: ptr::null(), tail: ptr::null() }
    }

    /// Adds `t` at the back. A thread already on a queue is a kernel bug.
    pub fn push_back(&mut self, t: Arc<Thread>) {
        let raw = Arc::into_raw(t);
        // SAFETY: `raw` is on no queue (checked), so its link is ours under
        // this queue's lock; the tail, if any, is on this queue.
        unsafe {
            let l = link(raw);
            assert!(l.owner.is_null(), "tqueue: thread {} is already on a queue", (*raw).id);
            *l = Link { prev: self.tail, next: ptr::null(), owner: self };
            match self.tail.is_null() {
                true => self.head = raw,
                false => link(self.tail).next = raw,
            }
        }
        self.tail = raw;
    }

    /// Removes the thread at the front.
    pub fn pop_front(&mut self) -> Option<Arc<Thread>> {
        let head = self.head;
        if head.is_null() {
            return None;
        }
        // SAFETY: `head` is on this queue.
        Some(unsafe { self.unlink(head) })
    }

    /// Removes `t` if it is on this queue.
    pub fn remove(&mut self, t: &Thread) -> Option<Arc<Thread>> {
        let raw = ptr::from_ref(t);
        // SAFETY: reading `owner` is safe under any queue's lock: it is
        // written only by the queue the thread is on, under that queue's
        // lock, and compared here with this queue (which we hold).
        let mine = unsafe { ptr::eq(link(raw).owner, self) };
        // SAFETY: on this queue.
        mine.then(|| unsafe { self.unlink(raw) })
    }

    /// Takes `t` off this queue and gives back the queue's reference.
    ///
    /// # Safety
    /// `t` is on this queue.
    unsafe fn unlink(&mut self, t: *const Thread) -> Arc<Thread> {
        // SAFETY: `t` and its neighbours are on this queue, whose lock the
        // caller holds.
        unsafe {
            let Link { prev, next, .. } = core::mem::take(link(t));
            match prev.is_null() {
                true => self.head = next,
                false => link(prev).next = next,
            }
            match next.is_null() {
                true => self.tail = prev,
                false => link(next).prev = prev,
            }
            Arc::from_raw(t)
        }
    }
}

impl Default for ThreadQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ThreadQueue {
    /// A queue that goes away with threads on it gives their references
    /// back (they were woken or cancelled elsewhere, or they leak).
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}
