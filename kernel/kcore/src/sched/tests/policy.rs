//! Tests of `Class` and the load-balancing functions.

use crate::sched::{pick_cpu, pick_victim, steal_count, Class};

use Class::{High, Normal};

#[test]
fn class_order_is_run_order() {
    assert_eq!(Class::ALL, [High, Normal]);
    assert!(High < Normal);
    let mut classes = [Normal, High, Normal];
    classes.sort();
    assert_eq!(classes, [High, Normal, Normal]);
}

#[test]
fn slices() {
    assert_eq!(High.slice_ns(), 2_000_000);
    assert_eq!(Normal.slice_ns(), 10_000_000);
    const NORMAL: u64 = Class::Normal.slice_ns();
    assert!(High.slice_ns() < NORMAL);
}

#[test]
fn only_a_strictly_higher_class_preempts() {
    assert!(Class::preempts(High, Normal));
    assert!(!Class::preempts(High, High));
    assert!(!Class::preempts(Normal, Normal));
    assert!(!Class::preempts(Normal, High));
}

#[test]
fn steal_count_cases() {
    assert_eq!(steal_count(0, 0), 0);
    assert_eq!(steal_count(1, 0), 0, "moving the only extra one just flips the imbalance");
    assert_eq!(steal_count(2, 0), 1);
    assert_eq!(steal_count(3, 0), 1);
    assert_eq!(steal_count(4, 0), 2);
    assert_eq!(steal_count(10, 3), 3);
    assert_eq!(steal_count(5, 5), 0);
    assert_eq!(steal_count(0, 7), 0, "thief busier than victim");
    assert_eq!(steal_count(usize::MAX, 0), usize::MAX / 2);
}

#[test]
fn steal_count_never_inverts_the_imbalance() {
    for victim in 0..40 {
        for thief in 0..40 {
            let n = steal_count(victim, thief);
            assert!(n <= victim);
            if victim <= thief + 1 {
                assert_eq!(n, 0, "{victim} vs {thief}");
            } else {
                assert!(n >= 1, "{victim} vs {thief}");
                assert!(victim - n >= thief + n, "{victim} vs {thief}: victim left with fewer");
                assert!((victim - n) - (thief + n) <= 1, "{victim} vs {thief}: not balanced");
            }
        }
    }
}

#[test]
fn pick_victim_picks_the_busiest_by_a_margin_of_two() {
    assert_eq!(pick_victim(&[0, 3, 5, 2], 0), Some(2));
    assert_eq!(pick_victim(&[4, 3, 5, 2], 3), Some(2));
    // Exactly one more is not worth it; two more is.
    assert_eq!(pick_victim(&[3, 4], 0), None);
    assert_eq!(pick_victim(&[3, 5], 0), Some(1));
    // The thief itself is never the victim, even as the busiest.
    assert_eq!(pick_victim(&[9, 0, 0], 0), None);
    assert_eq!(pick_victim(&[9, 0, 0], 1), Some(0));
}

#[test]
fn pick_victim_edge_cases() {
    assert_eq!(pick_victim(&[], 0), None);
    assert_eq!(pick_victim(&[7], 0), None, "single CPU");
    assert_eq!(pick_victim(&[4, 4, 4, 4], 2), None, "all equal");
    assert_eq!(pick_victim(&[0, 0, 0], 1), None, "all idle");
    // Ties go to the lowest index.
    assert_eq!(pick_victim(&[0, 6, 2, 6, 6], 0), Some(1));
    assert_eq!(pick_victim(&[6, 6, 0, 6], 2), Some(0));
    // A thief beyond the table counts as idle.
    assert_eq!(pick_victim(&[1, 2], 5), Some(1));
}

#[test]
fn pick_cpu_picks_the_least_loaded_allowed() {
    assert_eq!(pick_cpu(&[3, 1, 2], 0, |_| true), Some(1));
    assert_eq!(pick_cpu(&[3, 1, 2], 0, |cpu| cpu != 1), Some(2));
    assert_eq!(pick_cpu(&[3, 1, 2], 2, |cpu| cpu == 0), Some(0));
}

#[test]
fn pick_cpu_ties() {
    // All equal: preferred wins, otherwise the lowest index.
    assert_eq!(pick_cpu(&[2, 2, 2, 2], 2, |_| true), Some(2));
    assert_eq!(pick_cpu(&[2, 2, 2, 2], 0, |_| true), Some(0));
    // Preferred not among the least loaded: no favour.
    assert_eq!(pick_cpu(&[1, 5, 1], 1, |_| true), Some(0));
    // Preferred tied but not allowed.
    assert_eq!(pick_cpu(&[1, 1, 1], 1, |cpu| cpu != 1), Some(0));
    // Preferred before the other tied CPUs, or after them.
    assert_eq!(pick_cpu(&[4, 1, 1, 1], 1, |_| true), Some(1));
    assert_eq!(pick_cpu(&[4, 1, 1, 1], 3, |_| true), Some(3));
    // Preferred out of range: plain lowest index.
    assert_eq!(pick_cpu(&[1, 1], 9, |_| true), Some(0));
}

#[test]
fn pick_cpu_edge_cases() {
    assert_eq!(pick_cpu(&[], 0, |_| true), None, "no CPUs");
    assert_eq!(pick_cpu(&[3, 1], 0, |_| false), None, "nothing allowed");
    assert_eq!(pick_cpu(&[8], 0, |_| true), Some(0), "single CPU");
    assert_eq!(pick_cpu(&[8], 0, |cpu| cpu > 0), None, "single CPU, not allowed");
    // `allowed` is only asked about CPUs that exist.
    assert_eq!(pick_cpu(&[0, 0], 0, |cpu| cpu < 2 || panic!("asked about {cpu}")), Some(0));
}
