//! Pseudo-random runs against a model, and a multi-CPU balancing run.
//!
//! The model is the obvious, slow run queue: one `Vec` of `(class, item)` in
//! push order. Its pop order is that list stably sorted by class, and every
//! operation is defined on that order directly (pop takes its first
//! element, steal walks it from the back, remove_first from the front). The
//! queue must give exactly the model's answers, and every item ever pushed
//! must be accounted for exactly once: still queued, or handed out by
//! exactly one pop, steal or remove. The generator is seeded, so a failure
//! replays exactly.

use std::collections::BTreeSet;

use super::drain;
use crate::rng::XorShift64 as XorShift;
use crate::sched::{pick_victim, steal_count, Class, RunQueue};

/// The reference run queue.
#[derive(Default)]
struct Model {
    /// Everything queued, in push order.
    items: Vec<(Class, u32)>,
}

impl Model {
    /// Positions in `items`, in pop order.
    fn pop_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by_key(|&i| self.items[i].0); // stable: FIFO within a class
        order
    }

    fn listing(&self) -> Vec<(Class, u32)> {
        self.pop_order().into_iter().map(|i| self.items[i]).collect()
    }

    fn pop(&mut self) -> Option<(Class, u32)> {
        let first = *self.pop_order().first()?;
        Some(self.items.remove(first))
    }

    fn steal(&mut self, max: usize, can_take: impl Fn(u32) -> bool) -> Vec<(Class, u32)> {
        let order = self.pop_order();
        let mut chosen: Vec<usize> =
            order.iter().rev().copied().filter(|&i| can_take(self.items[i].1)).take(max).collect();
        chosen.reverse(); // back into pop order
        let taken = chosen.iter().map(|&i| self.items[i]).collect();
        chosen.sort_unstable();
        for i in chosen.into_iter().rev() {
            self.items.remove(i);
        }
        taken
    }

    fn remove_first(&mut self, pred: impl Fn(u32) -> bool) -> Option<(Class, u32)> {
        let at = self.pop_order().into_iter().find(|&i| pred(self.items[i].1))?;
        Some(self.items.remove(at))
    }
}

/// A random item predicate: "item is divisible by `m`" for a small `m`, so
/// it is sometimes always true and sometimes selective.
fn divisible_by(rng: &mut XorShift) -> impl Fn(u32) -> bool {
    let m = 1 + rng.below(3) as u32;
    move |x| x % m == 0
}

/// Checks the queue against the model after a step.
fn check(rq: &RunQueue<u32>, model: &Model, seed: u64, step: usize) {
    let listing: Vec<(Class, u32)> = rq.iter().map(|(c, &x)| (c, x)).collect();
    assert_eq!(listing, model.listing(), "seed {seed} step {step}: contents");
    assert_eq!(rq.len(), model.items.len(), "seed {seed} step {step}: len");
    assert_eq!(rq.is_empty(), model.items.is_empty(), "seed {seed} step {step}: is_empty");
    for class in Class::ALL {
        let n = model.items.iter().filter(|(c, _)| *c == class).count();
        assert_eq!(rq.len_of(class), n, "seed {seed} step {step}: len_of({class:?})");
    }
    assert_eq!(rq.peek_class(), model.listing().first().map(|&(c, _)| c), "seed {seed} step {step}: peek");
}

fn random_class(rng: &mut XorShift) -> Class {
    Class::ALL[rng.index(Class::ALL.len())]
}

#[test]
fn churn_matches_model() {
    for seed in 1..=40 {
        let mut rng = XorShift::new(seed);
        let mut rq = RunQueue::new();
        let mut model = Model::default();
        let mut next = 0u32;
        let mut out = Vec::new(); // every item handed out, by any operation
        for step in 0..400 {
            match rng.below(10) {
                0..=3 => {
                    let class = random_class(&mut rng);
                    rq.push(class, next);
                    model.items.push((class, next));
                    next += 1;
                }
                4..=5 => {
                    let got = rq.pop();
                    assert_eq!(got, model.pop(), "seed {seed} step {step}: pop");
                    if let Some((class, x)) = got {
                        out.push(x);
                        if rng.chance(2) {
                            // Round-robin: slice over, back of its class.
                            out.pop();
                            rq.push(class, x);
                            model.items.push((class, x));
                        }
                    }
                }
                6..=7 => {
                    let max = rng.index(5);
                    let can_take = divisible_by(&mut rng);
                    let got = rq.steal(max, |&x| can_take(x));
                    assert!(got.len() <= max, "seed {seed} step {step}: steal over max");
                    assert_eq!(got, model.steal(max, &can_take), "seed {seed} step {step}: steal");
                    assert!(got.iter().all(|&(_, x)| can_take(x)));
                    out.extend(got.into_iter().map(|(_, x)| x));
                }
                _ => {
                    let pred = divisible_by(&mut rng);
                    let got = rq.remove_first(|&x| pred(x));
                    assert_eq!(got, model.remove_first(&pred), "seed {seed} step {step}: remove_first");
                    out.extend(got.map(|(_, x)| x));
                }
            }
            check(&rq, &model, seed, step);
        }
        out.extend(drain(&mut rq).into_iter().map(|(_, x)| x));
        assert_accounted(out, next, seed);
    }
}

/// Every item in `0..count` appears in `out` exactly once.
fn assert_accounted(mut out: Vec<u32>, count: u32, seed: u64) {
    out.sort_unstable();
    assert_eq!(out, (0..count).collect::<Vec<_>>(), "seed {seed}: items lost or duplicated");
}

#[test]
fn balancing_across_cpus_conserves_items() {
    const CPUS: usize = 4;
    for seed in 1..=20 {
        let mut rng = XorShift::new(seed);
        let mut queues: Vec<RunQueue<u32>> = (0..CPUS).map(|_| RunQueue::new()).collect();
        let mut next = 0u32;
        let mut ran = Vec::new();
        let mut steals = 0;
        for _ in 0..1000 {
            let cpu = rng.index(CPUS);
            match rng.below(4) {
                // Skewed spawning: CPU 0 gets most of the work.
                0 | 1 => {
                    let target = if rng.chance(4) { cpu } else { 0 };
                    queues[target].push(random_class(&mut rng), next);
                    next += 1;
                }
                2 => ran.extend(queues[cpu].pop().map(|(_, x)| x)),
                _ => {
                    let loads: Vec<usize> = queues.iter().map(RunQueue::len).collect();
                    let Some(victim) = pick_victim(&loads, cpu) else { continue };
                    assert_ne!(victim, cpu);
                    let n = steal_count(loads[victim], loads[cpu]);
                    assert!(n >= 1);
                    // Items with affinity to the victim (multiples of 7 on
                    // CPU 0) stay behind.
                    let stolen = queues[victim].steal(n, |&x| victim != 0 || x % 7 != 0);
                    assert!(stolen.len() <= n);
                    assert!(queues[victim].len() >= queues[cpu].len() + stolen.len());
                    let before = queues[cpu].len();
                    for (class, x) in stolen {
                        queues[cpu].push(class, x);
                    }
                    steals += usize::from(queues[cpu].len() > before);
                }
            }
        }
        assert!(steals > 0, "seed {seed}: the run never balanced");
        let mut seen = BTreeSet::new();
        for rq in &mut queues {
            for (_, x) in drain(rq) {
                assert!(seen.insert(x), "seed {seed}: {x} queued twice");
                ran.push(x);
            }
        }
        assert_accounted(ran, next, seed);
    }
}
