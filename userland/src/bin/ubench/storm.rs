//! `ubench storm`: the load under which the kernel measures `irq_off_max`
//! (kernel/src/bench.rs): on every CPU at once, for a while, a thread maps
//! 16 MiB (which the kernel zeroes), unmaps it, and starts a child
//! (`ubench hog 16`) that maps 16 MiB and exits, so that its teardown frees
//! it all. The kernel records the longest stretch any CPU spent with
//! interrupts off meanwhile.
use alloc::format;
use alloc::vec::Vec;

use ferrite_abi::map;
use ferrite_user::{println, sys, thread};

use crate::{Check, Failure};

/// What each round maps, and what each hog maps.
const MIB: usize = 1 << 20;
const SIZE: usize = 16 * MIB;
/// How long the storm blows.
const STORM_NS: u64 = 1_000_000_000;

/// `storm`: one thread per CPU, mapping, unmapping and starting hogs.
pub fn storm() -> Result<(), Failure> {
    let cpus = sys::cpu_count().check("cpu_count")?;
    let mut threads = Vec::new();
    for cpu in 0..cpus {
        threads.push(
            thread::spawn(move || {
                if sys::set_affinity(cpu).is_err() {
                    return u64::MAX;
                }
                let end = sys::time_ns().unwrap_or(0) + STORM_NS;
                let mut rounds = 0;
                while sys::time_ns().is_ok_and(|t| t < end) {
                    let at = match sys::map(SIZE, map::WRITE) {
                        Ok(at) => at,
                        Err(e) => {
                            println!("ubench: storm: map of 16 MiB on cpu{cpu} after {rounds} rounds: {e:?}");
                            return u64::MAX - 1;
                        }
                    };
                    // SAFETY: just mapped, and used by nothing.
                    if unsafe { sys::unmap(at, SIZE) }.is_err() {
                        return u64::MAX - 2;
                    }
                    let Ok(hog) = sys::spawn(&format!("ubench hog {}", SIZE / MIB), &[]) else { return u64::MAX - 3 };
                    if sys::wait(hog) != Ok(0) {
                        return u64::MAX - 4;
                    }
                    rounds += 1;
                }
                rounds
            })
            .check("thread::spawn")?,
        );
    }
    let mut rounds = 0;
    for t in threads {
        match t.join() {
            Ok(n) if n < u64::MAX - 16 => rounds += n,
            other => return Err(Failure::new(format_args!("a storm thread ended with {other:?}"))),
        }
    }
    println!("ubench: storm: {rounds} rounds of map, unmap and a child's exit, 16 MiB each, on {cpus} CPUs");
    Ok(())
}

/// `hog <MiB>`: maps that much and exits, leaving it to the teardown.
pub fn hog(mib: usize) -> Result<(), Failure> {
    let at = sys::map(mib * MIB, map::WRITE).check("map")?;
    // Touched, so that it is plainly in use.
    // SAFETY: the first byte of the mapping just made.
    unsafe { at.write_volatile(1) };
    Ok(())
}
