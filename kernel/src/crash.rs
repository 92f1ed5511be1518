//! `crash=<kind>`: faults provoked on purpose, so that the test harness can
//! check that the kernel reports them and powers off with a failure status
//! instead of rebooting.
use core::hint::black_box;

const KINDS: &str = "pagefault, overflow, appanic";

pub fn provoke(kind: &str) {
    log::warn!("crash: provoking '{kind}' on purpose");
    match kind {
        "pagefault" => {
            // SAFETY: none, deliberately: page 0 is unmapped, so this write
            // faults and the kernel reports it and stops.
            unsafe { core::arch::asm!("mov qword ptr [0], 1", options(nostack)) };
        }
        "overflow" => {
            black_box(recurse(black_box(1)));
        }
        "appanic" => {
            if crate::smp::online_count() < 2 {
                log::error!("crash: 'appanic' needs a second CPU; not crashing");
                return;
            }
            crate::smp::call::run_on_all(&|cpu| {
                if cpu == 1 {
                    panic!("crash=appanic: a deliberate panic on cpu1");
                }
                // The others wait here, busy, to be stopped.
                loop {
                    core::hint::spin_loop();
                }
            });
        }
        other => {
            log::error!("crash: unknown kind '{other}' (known: {KINDS}); not crashing");
            return;
        }
    }
    log::error!("crash: '{kind}' did not fault");
}

/// Unbounded recursion with a frame the optimiser cannot remove.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == 0 {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[7])
}
