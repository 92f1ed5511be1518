//! Host tests for the sched module: the run queue (directed cases), the
//! policy functions, and pseudo-random runs against a model.

mod model;
mod policy;
mod queue;

use super::{Class, RunQueue};

/// Drains `rq` in pop order.
fn drain<T>(rq: &mut RunQueue<T>) -> Vec<(Class, T)> {
    std::iter::from_fn(|| rq.pop()).collect()
}

/// A queue holding `high` then `normal`, each pushed in order.
fn queue_of(high: &[u32], normal: &[u32]) -> RunQueue<u32> {
    let mut rq = RunQueue::new();
    for &x in high {
        rq.push(Class::High, x);
    }
    for &x in normal {
        rq.push(Class::Normal, x);
    }
    rq
}
