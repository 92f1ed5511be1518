//! Load-balancing decisions: where a new thread goes, whom an idle CPU
//! steals from, and how much.
//!
//! All three work on plain per-CPU load counts the kernel samples without
//! taking every CPU's lock, so the numbers may be slightly stale; the rules
//! are chosen so that acting on a stale answer is merely suboptimal (one
//! thread too many or too few moved), never a correctness problem.

/// How many items a thief with `thief_len` runnable items should steal from
/// a victim with `victim_len`.
///
/// The rule is half the difference, rounded down: `(victim_len -
/// thief_len) / 2`, and 0 when `victim_len <= thief_len + 1`. Afterwards the
/// two differ by at most one and the victim never ends up with fewer than
/// the thief, so two CPUs can't keep stealing the same threads back and
/// forth. A difference of one is left alone: moving the thread would just
/// flip which CPU has the extra one, at the cost of a cold cache.
pub fn steal_count(victim_len: usize, thief_len: usize) -> usize {
    victim_len.saturating_sub(thief_len) / 2
}

/// Picks the CPU for `thief` to steal from, given `loads[i]` = runnable
/// count of CPU `i`.
///
/// That is the busiest CPU other than `thief` whose load exceeds the
/// thief's by at least 2 (the point where [`steal_count`] becomes
/// non-zero); on a tie the lowest index. `None` if no CPU qualifies,
/// including with a single CPU. A `thief` outside `loads` (a CPU not yet
/// counted) is taken to have load 0.
pub fn pick_victim(loads: &[usize], thief: usize) -> Option<usize> {
    let own = loads.get(thief).copied().unwrap_or(0);
    let mut best: Option<(usize, usize)> = None;
    for (cpu, &load) in loads.iter().enumerate() {
        if cpu == thief || steal_count(load, own) == 0 {
            continue;
        }
        // Strictly greater: an equal load later on loses to the lower index.
        if best.is_none_or(|(_, best_load)| load > best_load) {
            best = Some((cpu, load));
        }
    }
    best.map(|(cpu, _)| cpu)
}

/// Picks the CPU for a new thread, given `loads[i]` = runnable plus running
/// count of CPU `i`.
///
/// That is the least-loaded CPU for which `allowed` is true (the thread's
/// affinity). On a tie `preferred` wins if it is among the tied (typically
/// the spawning CPU, whose caches hold the parent's data), otherwise the
/// lowest index. `None` if no CPU in `loads` is allowed.
pub fn pick_cpu(loads: &[usize], preferred: usize, allowed: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (cpu, &load) in loads.iter().enumerate() {
        if !allowed(cpu) {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, best_load)) => load < best_load || (load == best_load && cpu == preferred),
        };
        if better {
            best = Some((cpu, load));
        }
    }
    best.map(|(cpu, _)| cpu)
}
