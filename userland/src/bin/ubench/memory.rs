//! `tlb_shootdown`: unmapping a page that every CPU has used. A thread
//! pinned to each other CPU touches the page, then goes back to waiting (its
//! CPU idles with this address space still loaded, so the unmap must reach
//! it); the figure is the `unmap` system call alone, shootdown included.
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_abi::map;
use ferrite_kcore::bench::{median, ticks_to_tenths_ns, Figure, Unit, Value};
use ferrite_user::sys::{self, Handle};
use ferrite_user::{println, thread};

use crate::clock;
use crate::{Check, Failure};

const PAGE: usize = 4096;
const SAMPLES: usize = 201;
const WARMUP: usize = 20;

pub fn tlb_shootdown(hz: u64, cpus: u64) -> Result<(), Failure> {
    // The page's address for this round, and how many helpers touched it.
    let page = Arc::new(AtomicU64::new(0));
    let touched = Arc::new(AtomicU64::new(0));
    let mut helpers = Vec::new();
    let mut bells: Vec<Handle> = Vec::new();
    for cpu in 1..cpus {
        let bell = sys::notification_create().check("notification_create")?;
        bells.push(bell);
        let (page, touched) = (page.clone(), touched.clone());
        let helper = thread::spawn(move || {
            if sys::set_affinity(cpu).is_err() {
                return 1;
            }
            loop {
                if sys::notify_wait(bell).is_err() {
                    return 1;
                }
                let at = page.load(Ordering::Acquire);
                if at == 0 {
                    return 0;
                }
                // SAFETY: the main thread mapped the page writable and keeps
                // it until every helper has counted itself in `touched`.
                unsafe { (at as *mut u8).write_volatile(1) };
                touched.fetch_add(1, Ordering::AcqRel);
            }
        })
        .check("spawn a helper")?;
        helpers.push(helper);
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let at = sys::map(PAGE, map::WRITE).check("map")?;
        // SAFETY: fresh writable memory of ours.
        unsafe { at.write_volatile(1) };
        touched.store(0, Ordering::Release);
        page.store(at.addr() as u64, Ordering::Release);
        for &bell in &bells {
            sys::signal(bell, 1).check("signal")?;
        }
        while touched.load(Ordering::Acquire) < cpus - 1 {
            core::hint::spin_loop();
        }
        let start = clock::start();
        // SAFETY: every helper has finished with the page (counted in
        // `touched`), and so have we.
        unsafe { sys::unmap(at, PAGE) }.check("unmap")?;
        let end = clock::end();
        if i >= WARMUP {
            samples.push(end - start);
        }
    }
    page.store(0, Ordering::Release);
    for &bell in &bells {
        sys::signal(bell, 1).check("signal")?;
    }
    for helper in helpers {
        if helper.join().check("join a helper")? != 0 {
            return Err(Failure::new(format_args!("a helper failed")));
        }
    }
    for bell in bells {
        sys::handle_close(bell).check("handle_close")?;
    }
    let ticks = median(&mut samples);
    println!("ubench: tlb_shootdown: unmap of a page touched on all {cpus} CPUs (the others idle); median of {SAMPLES} after {WARMUP}");
    println!(
        "{}",
        Figure { name: "tlb_shootdown", value: Value::Tenths(ticks_to_tenths_ns(ticks, hz)), unit: Unit::Nanoseconds }
    );
    Ok(())
}
