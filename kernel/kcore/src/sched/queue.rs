//! The per-CPU run queue: one FIFO per class.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::Class;

/// Runnable threads of one CPU, served highest class first and FIFO within a
/// class.
///
/// Round-robin is the caller's half of the deal: when a thread's slice ends
/// it is [`push`](Self::push)ed back, which puts it behind every other
/// thread of its class.
#[derive(Debug, Clone)]
pub struct RunQueue<T> {
    /// One FIFO per class, indexed by [`Class::index`]; front runs first.
    queues: [VecDeque<T>; 2],
}

impl<T> RunQueue<T> {
    /// An empty run queue. `const`, so a per-CPU `static` can hold one; it
    /// does not allocate until the first push.
    pub const fn new() -> Self {
        RunQueue { queues: [VecDeque::new(), VecDeque::new()] }
    }

    /// Makes room for `per_class` items in each class without allocating
    /// again: the kernel sizes its queues once, so that the heap does not
    /// grow (and look like a leak) the first time a queue gets long.
    pub fn reserve(&mut self, per_class: usize) {
        for q in &mut self.queues {
            q.reserve(per_class.saturating_sub(q.len()));
        }
    }

    /// [`reserve`](Self::reserve), failing instead of aborting when there
    /// is no memory: for the kernel to grow its queues before it needs them.
    pub fn try_reserve(&mut self, per_class: usize) -> Result<(), alloc::collections::TryReserveError> {
        for q in &mut self.queues {
            q.try_reserve(per_class.saturating_sub(q.len()))?;
        }
        Ok(())
    }

    /// How many items each class holds before the queue must allocate.
    pub fn capacity_per_class(&self) -> usize {
        self.queues.iter().map(|q| q.capacity()).min().unwrap_or(0)
    }

    /// Adds `item` at the back of `class`.
    pub fn push(&mut self, class: Class, item: T) {
        self.queues[class.index()].push_back(item);
    }

    /// Removes and returns what should run next: the front of the highest
    /// non-empty class.
    pub fn pop(&mut self) -> Option<(Class, T)> {
        Class::ALL.into_iter().find_map(|class| self.queues[class.index()].pop_front().map(|item| (class, item)))
    }

    /// The class of what [`pop`](Self::pop) would return, if anything. The
    /// kernel compares it with the running thread's class to decide on
    /// preemption ([`Class::preempts`]).
    pub fn peek_class(&self) -> Option<Class> {
        Class::ALL.into_iter().find(|class| !self.queues[class.index()].is_empty())
    }

    /// The number of queued items, all classes.
    pub fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// The number of queued items of `class`.
    pub fn len_of(&self, class: Class) -> usize {
        self.queues[class.index()].len()
    }

    /// Removes up to `max` items for another CPU to run (work stealing).
    ///
    /// Takes the items that would run last here: from the back of the lowest
    /// class first, moving towards the front and then up to the next class,
    /// skipping items for which `can_take` is false (say, a thread whose
    /// affinity excludes the thief). Those have the longest wait ahead of
    /// them here, and taking them leaves the order of everything else
    /// unchanged.
    ///
    /// The result is in the order the items had in this queue (pop order),
    /// so the thief can push them in sequence and keep their relative order.
    /// `can_take` is called at most once per item, back to front, and not at
    /// all once `max` items are taken.
    pub fn steal(&mut self, max: usize, mut can_take: impl FnMut(&T) -> bool) -> Vec<(Class, T)> {
        let mut taken = Vec::new();
        for class in Class::ALL.into_iter().rev() {
            let queue = &mut self.queues[class.index()];
            let mut i = queue.len();
            while i > 0 && taken.len() < max {
                i -= 1;
                if can_take(&queue[i]) {
                    // `i < queue.len()`: it only shrinks behind `i`.
                    if let Some(item) = queue.remove(i) {
                        taken.push((class, item));
                    }
                }
            }
        }
        // Collected back to front, lowest class first: exactly reversed.
        taken.reverse();
        taken
    }

    /// [`steal`](Self::steal) into `out` instead of a new vector (the
    /// kernel's scheduler must not allocate): takes at most `out.len()`
    /// items (and at most `max`), fills `out[..n]` in pop order, returns
    /// `n`.
    pub fn steal_into(
        &mut self,
        max: usize,
        mut can_take: impl FnMut(&T) -> bool,
        out: &mut [Option<(Class, T)>],
    ) -> usize {
        let max = max.min(out.len());
        let mut n = 0;
        for class in Class::ALL.into_iter().rev() {
            let queue = &mut self.queues[class.index()];
            let mut i = queue.len();
            while i > 0 && n < max {
                i -= 1;
                if can_take(&queue[i]) {
                    if let Some(item) = queue.remove(i) {
                        out[n] = Some((class, item));
                        n += 1;
                    }
                }
            }
        }
        out[..n].reverse();
        n
    }

    /// Removes and returns the first item, in pop order, for which `pred` is
    /// true (e.g. a thread whose affinity no longer allows this CPU).
    pub fn remove_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<(Class, T)> {
        for class in Class::ALL {
            let queue = &mut self.queues[class.index()];
            if let Some(i) = queue.iter().position(&mut pred) {
                return queue.remove(i).map(|item| (class, item));
            }
        }
        None
    }

    /// Every queued item with its class, in pop order.
    pub fn iter(&self) -> impl Iterator<Item = (Class, &T)> + '_ {
        Class::ALL.into_iter().flat_map(move |class| self.queues[class.index()].iter().map(move |item| (class, item)))
    }
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}
