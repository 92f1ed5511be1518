//! Directed tests of `RunQueue`: ordering, round-robin, stealing, removal
//! and the counters.

use super::{drain, queue_of};
use crate::sched::{Class, RunQueue};

use Class::{High, Normal};

/// Usable in a `static` initialiser, as a per-CPU array of queues is.
static STATIC_QUEUES: [RunQueue<u32>; 2] = [RunQueue::new(), RunQueue::new()];

#[test]
fn new_is_const_and_empty() {
    assert!(STATIC_QUEUES.iter().all(RunQueue::is_empty));
    let mut rq = RunQueue::<u32>::default();
    assert!(rq.is_empty());
    assert_eq!(rq.len(), 0);
    assert_eq!(rq.peek_class(), None);
    assert_eq!(rq.pop(), None);
    assert_eq!(rq.iter().count(), 0);
}

#[test]
fn fifo_within_a_class() {
    let mut rq = queue_of(&[], &[1, 2, 3]);
    assert_eq!(drain(&mut rq), [(Normal, 1), (Normal, 2), (Normal, 3)]);
    let mut rq = queue_of(&[4, 5, 6], &[]);
    assert_eq!(drain(&mut rq), [(High, 4), (High, 5), (High, 6)]);
}

#[test]
fn high_runs_before_normal_whatever_the_push_order() {
    let mut rq = RunQueue::new();
    rq.push(Normal, 1);
    rq.push(High, 2);
    rq.push(Normal, 3);
    rq.push(High, 4);
    assert_eq!(rq.peek_class(), Some(High));
    assert_eq!(rq.pop(), Some((High, 2)));
    assert_eq!(rq.pop(), Some((High, 4)));
    assert_eq!(rq.peek_class(), Some(Normal));
    // A High arriving late still goes first.
    rq.push(High, 5);
    assert_eq!(rq.peek_class(), Some(High));
    assert_eq!(drain(&mut rq), [(High, 5), (Normal, 1), (Normal, 3)]);
    assert_eq!(rq.peek_class(), None);
}

#[test]
fn round_robin_cycles_through_a_class() {
    let mut rq = queue_of(&[], &[1, 2, 3]);
    let mut order = Vec::new();
    for _ in 0..7 {
        let (class, x) = rq.pop().unwrap();
        order.push(x);
        rq.push(class, x); // slice over: back of the class
    }
    assert_eq!(order, [1, 2, 3, 1, 2, 3, 1]);
    assert_eq!(rq.len(), 3);
}

#[test]
fn round_robin_of_high_starves_normal() {
    let mut rq = queue_of(&[1, 2], &[9]);
    for _ in 0..10 {
        let (class, x) = rq.pop().unwrap();
        assert_eq!(class, High);
        assert_ne!(x, 9);
        rq.push(class, x);
    }
    assert_eq!(rq.len_of(Normal), 1);
}

#[test]
fn counters() {
    let mut rq = queue_of(&[1, 2], &[3, 4, 5]);
    assert_eq!((rq.len(), rq.len_of(High), rq.len_of(Normal)), (5, 2, 3));
    assert!(!rq.is_empty());
    rq.pop();
    assert_eq!((rq.len(), rq.len_of(High), rq.len_of(Normal)), (4, 1, 3));
    drain(&mut rq);
    assert_eq!((rq.len(), rq.len_of(High), rq.len_of(Normal)), (0, 0, 0));
    assert!(rq.is_empty());
}

#[test]
fn iter_is_in_pop_order_and_does_not_consume() {
    let mut rq = RunQueue::new();
    rq.push(Normal, 1);
    rq.push(High, 2);
    rq.push(Normal, 3);
    let seen: Vec<_> = rq.iter().map(|(c, &x)| (c, x)).collect();
    assert_eq!(seen, [(High, 2), (Normal, 1), (Normal, 3)]);
    assert_eq!(drain(&mut rq), seen);
}

#[test]
fn steal_takes_from_the_back_of_normal_first() {
    let mut rq = queue_of(&[1, 2], &[3, 4, 5, 6]);
    assert_eq!(rq.steal(2, |_| true), [(Normal, 5), (Normal, 6)]);
    assert_eq!(drain(&mut rq), [(High, 1), (High, 2), (Normal, 3), (Normal, 4)]);
}

#[test]
fn steal_moves_up_to_high_once_normal_is_exhausted() {
    let mut rq = queue_of(&[1, 2, 3], &[4, 5]);
    assert_eq!(rq.steal(4, |_| true), [(High, 2), (High, 3), (Normal, 4), (Normal, 5)]);
    assert_eq!(drain(&mut rq), [(High, 1)]);
}

#[test]
fn steal_respects_can_take_and_preserves_order() {
    let mut rq = queue_of(&[10, 11, 12], &[1, 2, 3, 4, 5, 6, 7]);
    // Only odd items may move.
    assert_eq!(rq.steal(3, |&x| x % 2 == 1), [(Normal, 3), (Normal, 5), (Normal, 7)]);
    assert_eq!(rq.steal(3, |&x| x % 2 == 1), [(High, 11), (Normal, 1)]);
    assert_eq!(drain(&mut rq), [(High, 10), (High, 12), (Normal, 2), (Normal, 4), (Normal, 6)]);
}

#[test]
fn steal_never_takes_more_than_max() {
    for max in 0..8 {
        let mut rq = queue_of(&[1, 2], &[3, 4, 5]);
        let stolen = rq.steal(max, |_| true);
        assert_eq!(stolen.len(), max.min(5), "max {max}");
        assert_eq!(rq.len() + stolen.len(), 5);
    }
}

#[test]
fn steal_with_max_zero_asks_nothing() {
    let mut rq = queue_of(&[1], &[2]);
    let stolen = rq.steal(0, |_| panic!("can_take called with max 0"));
    assert!(stolen.is_empty());
    assert_eq!(rq.len(), 2);
}

#[test]
fn steal_asks_each_item_at_most_once_back_to_front() {
    let mut rq = queue_of(&[1, 2], &[3, 4, 5]);
    let mut asked = Vec::new();
    let stolen = rq.steal(2, |&x| {
        asked.push(x);
        x != 4
    });
    assert_eq!(stolen, [(Normal, 3), (Normal, 5)]);
    assert_eq!(asked, [5, 4, 3]);
}

#[test]
fn steal_from_empty_or_untakeable() {
    let mut rq = RunQueue::<u32>::new();
    assert!(rq.steal(4, |_| true).is_empty());
    let mut rq = queue_of(&[1], &[2, 3]);
    assert!(rq.steal(4, |_| false).is_empty());
    assert_eq!(rq.len(), 3);
}

#[test]
fn remove_first_finds_the_first_in_pop_order() {
    let mut rq = RunQueue::new();
    rq.push(Normal, 2);
    rq.push(High, 4);
    rq.push(Normal, 6);
    rq.push(High, 8);
    // Even items everywhere: the first in pop order is High 4, not Normal 2.
    assert_eq!(rq.remove_first(|&x| x % 2 == 0), Some((High, 4)));
    assert_eq!(rq.remove_first(|&x| x > 5), Some((High, 8)));
    assert_eq!(rq.remove_first(|&x| x > 5), Some((Normal, 6)));
    assert_eq!(rq.remove_first(|&x| x > 5), None);
    assert_eq!(rq.remove_first(|&x| x == 2), Some((Normal, 2)));
    assert!(rq.is_empty());
    assert_eq!(rq.remove_first(|_| true), None);
}

#[test]
fn remove_first_keeps_the_order_of_the_rest() {
    let mut rq = queue_of(&[1, 2, 3], &[4, 5, 6]);
    assert_eq!(rq.remove_first(|&x| x == 2), Some((High, 2)));
    assert_eq!(rq.remove_first(|&x| x == 5), Some((Normal, 5)));
    assert_eq!(drain(&mut rq), [(High, 1), (High, 3), (Normal, 4), (Normal, 6)]);
}

#[test]
fn reserve_makes_room_without_changing_contents() {
    let mut q = RunQueue::new();
    q.push(Class::Normal, 1);
    q.reserve(64);
    assert!(q.capacity_per_class() >= 64);
    assert_eq!(q.pop(), Some((Class::Normal, 1)));
    assert!(q.is_empty());
}

#[test]
fn steal_into_matches_steal_and_respects_the_buffer() {
    for max in 0..10 {
        for room in 0..10 {
            let mut a = queue_of(&[10, 11, 12], &[1, 2, 3, 4, 5, 6, 7]);
            let mut b = a.clone();
            let stolen = a.steal(max.min(room), |&x| x % 3 != 0);
            let mut out: Vec<Option<(Class, u32)>> = vec![None; room];
            let n = b.steal_into(max, |&x| x % 3 != 0, &mut out);
            assert_eq!(n, stolen.len(), "max {max} room {room}");
            let got: Vec<(Class, u32)> = out[..n].iter().map(|x| x.unwrap()).collect();
            assert_eq!(got, stolen, "max {max} room {room}");
            assert_eq!(drain(&mut a), drain(&mut b));
        }
    }
}
