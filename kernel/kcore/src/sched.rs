//! Scheduling: the per-CPU run queue and the policy decisions around it.
//!
//! The kernel keeps one [`RunQueue`] per CPU, behind that CPU's lock, holding
//! the threads that are runnable there but not running. The queue is generic
//! over what it holds: the kernel stores `Arc<Thread>`, the tests integers.
//! Everything that needs a clock, a lock or another CPU stays in the kernel;
//! this module only answers "what runs next?", "should this preempt?",
//! "where does a new thread go?" and "who should an idle CPU steal from, and
//! how much?".
//!
//! The policy:
//!
//! - Two priority classes, [`Class::High`] and [`Class::Normal`], with
//!   strict priority between them: while any High thread is runnable on a
//!   CPU, no Normal thread runs there. High is meant for short,
//!   latency-sensitive work (interrupt bottom halves, input, the console),
//!   so starving Normal is the right trade; a High thread that computes for
//!   long is a bug in that thread, not something the scheduler hides.
//! - Round-robin within a class: the running thread is pushed back at the
//!   tail of its class when its time slice ([`Class::slice_ns`]) runs out,
//!   so threads of one class share the CPU in turn.
//! - A newly runnable thread preempts the running one only if its class is
//!   strictly higher ([`Class::preempts`]); within a class it waits its turn.
//! - Load balancing is pull-based: a CPU that runs dry (or is much less
//!   loaded than another) picks the busiest CPU ([`pick_victim`]) and steals
//!   [`steal_count`] threads from it with [`RunQueue::steal`], which takes
//!   the threads that would have run last there. New threads are placed on
//!   the least-loaded allowed CPU ([`pick_cpu`]).
//!
//! Unlike the rest of this crate the run queue allocates (a `VecDeque` per
//! class): the kernel only schedules once its heap exists, and a run queue
//! over fixed storage would have to cap the number of threads.

mod policy;
mod queue;

#[cfg(test)]
mod tests;

pub use policy::{pick_cpu, pick_victim, steal_count};
pub use queue::RunQueue;

/// A thread's priority class.
///
/// The derived order is the run order: `High < Normal`, so the smaller class
/// runs first and sorting by class gives pop order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Short, latency-sensitive work; runs before any [`Class::Normal`].
    High,
    /// Everything else.
    Normal,
}

impl Class {
    /// Every class, highest first (the order the run queue serves them).
    pub const ALL: [Class; 2] = [Class::High, Class::Normal];

    /// The time slice of a thread of this class, in nanoseconds: how long it
    /// may run before it goes to the back of its class.
    ///
    /// High threads get 2 ms: they are expected to block long before that,
    /// and a short slice keeps one misbehaving High thread from delaying the
    /// others (which are latency-sensitive by definition) for long. Normal
    /// threads get 10 ms: they are throughput work, where fewer switches
    /// mean less overhead and warmer caches, and a 10 ms turn is still short
    /// enough to feel interactive.
    pub const fn slice_ns(self) -> u64 {
        match self {
            Class::High => 2_000_000,
            Class::Normal => 10_000_000,
        }
    }

    /// Whether a newly runnable thread of class `woken` should preempt a
    /// running thread of class `running`. Only a strictly higher class
    /// preempts; an equal class waits for the slice to end (round-robin).
    pub fn preempts(woken: Class, running: Class) -> bool {
        woken < running
    }

    /// The index of this class's queue in a [`RunQueue`].
    const fn index(self) -> usize {
        self as usize
    }
}
