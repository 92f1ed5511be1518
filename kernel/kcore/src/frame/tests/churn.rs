//! Pseudo-random churn against a model.
//!
//! The model is the obvious, slow implementation: an ordered set of free
//! frame addresses. Every operation is applied to both, the answers must be
//! identical (including *which* frame comes back, since the allocator
//! promises lowest-first), and the bitmap's internal invariants are checked
//! after every step. The generator is seeded, so a failure replays exactly.

use std::collections::BTreeSet;

use super::{r, storage, MIB};
use crate::frame::{FrameBitmap, FrameError, Range, FRAME_SIZE};
use crate::rng::XorShift64 as XorShift;

/// The model's answer to `allocate_contiguous`: try every aligned start.
fn model_contiguous(free: &BTreeSet<u64>, count: u64, align: u64, limit: u64) -> Option<u64> {
    let align = align.max(1);
    (0..)
        .map(|i| i * align * FRAME_SIZE)
        .take_while(|start| start + count * FRAME_SIZE <= limit)
        .find(|start| (0..count).all(|i| free.contains(&(start + i * FRAME_SIZE))))
}

fn churn(seed: u64, limit: u64, usable: &[Range], reserved: &[Range], steps: usize) {
    let mut bits = storage(limit);
    let mut fb = FrameBitmap::new(&mut bits, limit).unwrap();
    for &u in usable {
        fb.add_usable(u);
    }
    for &res in reserved {
        fb.reserve(res);
    }
    // The model's starting pool, computed the slow way, frame by frame.
    let mut free: BTreeSet<u64> = (0..limit / FRAME_SIZE)
        .map(|f| f * FRAME_SIZE)
        .filter(|&a| {
            let page = Range::new(a, a + FRAME_SIZE);
            usable.iter().any(|u| u.contains_range(&page)) && !reserved.iter().any(|res| res.overlaps(&page))
        })
        .collect();
    assert_eq!(fb.free_frames(), free.len() as u64);
    assert_eq!(fb.usable_frames(), free.len() as u64);
    let pool = free.len() as u64;

    let mut rng = XorShift::new(seed);
    let mut held: Vec<u64> = Vec::new();
    for step in 0..steps {
        match rng.below(10) {
            0..=2 => {
                let got = fb.allocate();
                let want = free.first().copied();
                assert_eq!(got, want, "step {step}: allocate");
                if let Some(a) = want {
                    free.remove(&a);
                    held.push(a);
                }
            }
            3 => {
                let below = rng.below(limit + 2 * FRAME_SIZE);
                let got = fb.allocate_below(below);
                let want = free.iter().copied().find(|&a| a + FRAME_SIZE <= below);
                assert_eq!(got, want, "step {step}: allocate_below({below:#x})");
                if let Some(a) = want {
                    free.remove(&a);
                    held.push(a);
                }
            }
            4 => {
                let count = 1 + rng.below(12);
                let align = [0, 1, 2, 4, 8, 16, 64][rng.below(7) as usize];
                let below = rng.below(limit + 2 * FRAME_SIZE);
                let got = fb.allocate_contiguous(count as usize, align, below);
                let want = model_contiguous(&free, count, align as u64, below);
                assert_eq!(got, want, "step {step}: contiguous({count}, {align}, {below:#x})");
                if let Some(base) = want {
                    for i in 0..count {
                        free.remove(&(base + i * FRAME_SIZE));
                        held.push(base + i * FRAME_SIZE);
                    }
                }
            }
            5..=8 if !held.is_empty() => {
                let a = held.swap_remove(rng.below(held.len() as u64) as usize);
                assert_eq!(fb.free(a), Ok(()), "step {step}: free({a:#x})");
                free.insert(a);
            }
            _ => {
                // Misuse that must be caught: freeing a free frame, or a
                // bad address. (Freeing a reserved frame cannot be caught.)
                if let Some(&a) = free.iter().nth(rng.below(free.len() as u64 + 1) as usize) {
                    assert_eq!(fb.free(a), Err(FrameError::DoubleFree), "step {step}");
                }
                assert_eq!(fb.free(fb.limit()), Err(FrameError::OutOfRange));
                assert_eq!(fb.free(FRAME_SIZE + 8), Err(FrameError::NotAligned));
            }
        }
        assert_eq!(fb.free_frames(), free.len() as u64, "step {step}: free count");
        assert_eq!(held.len() as u64 + free.len() as u64, pool);
        fb.check_invariants();
    }

    for a in held.drain(..) {
        fb.free(a).unwrap();
    }
    assert_eq!(fb.free_frames(), pool);
    assert_eq!(fb.usable_frames(), pool);
    fb.check_invariants();
}

#[test]
fn churn_small_fragmented_map() {
    let usable = [r(0x1800, 0x9_FC00), r(0x10_0000, 0x18_0000), r(0x18_8000, 0x1C_0800), r(0x1E_0000, 2 * MIB)];
    let reserved = [r(0x9_F000, 0x10_0000), r(0x12_0000, 0x13_0400), r(0x1F_F000, 3 * MIB)];
    for seed in [1, 0x9E37_79B9_7F4A_7C15, 0xDEAD_BEEF] {
        churn(seed, 2 * MIB, &usable, &reserved, 4000);
    }
}

#[test]
fn churn_nearly_full() {
    // A small pool that the churn empties often, so the "nothing free" and
    // hint-at-the-end paths get exercised.
    let usable = [r(0x4000, 0x2_4000), r(0x3_0000, 0x3_3000)];
    for seed in [7, 12_345] {
        churn(seed, 0x4_0000 + 0x800, &usable, &[], 3000);
    }
}
