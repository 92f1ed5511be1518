//! The hostile-programs suite (`test=hostile`): what a user program that
//! lies, races, exhausts or never returns can do to the kernel and to
//! other processes. Each case runs `utest <case>` (userland's
//! `utest/hostile` cases) like the user suite, and where a program cannot
//! see the harm from the inside (a leak, the kernel's own state) the
//! kernel checks it here.
use super::user::{run_case, run_leak_checked};
use super::{Test, TestResult};
use crate::mem::frames;
use alloc::format;
use ferrite_abi::EXIT_FAULT;

pub const TESTS: &[Test] = &[
    Test { name: "hostile::kill_race", run: kill_race },
    Test { name: "hostile::ipc_leak", run: ipc_leak },
    Test { name: "hostile::xfer", run: xfer },
    Test { name: "hostile::shm", run: shm },
    Test { name: "hostile::rights_endpoint", run: rights_endpoint },
    Test { name: "hostile::rights_badge", run: rights_badge },
    Test { name: "hostile::rights_notification", run: rights_notification },
    Test { name: "hostile::dead_endpoint", run: dead_endpoint },
    Test { name: "hostile::abi_edges", run: abi_edges },
    Test { name: "hostile::heap_exhaust", run: heap_exhaust },
    Test { name: "hostile::concurrent_maps", run: concurrent_maps },
    Test { name: "hostile::quotas", run: quotas },
    Test { name: "hostile::respawn", run: respawn },
    Test { name: "hostile::unjoined_threads", run: unjoined_threads },
    Test { name: "hostile::control_registers", run: control_registers },
    Test { name: "hostile::umip", run: umip },
    Test { name: "hostile::x87_fault_boot_cpu", run: x87_fault_boot_cpu },
    Test { name: "hostile::x87_fault_ap", run: x87_fault_ap },
    Test { name: "hostile::sysenter", run: sysenter },
    Test { name: "hostile::avx", run: avx },
    Test { name: "hostile::nmi_in_console", run: nmi_in_console },
    Test { name: "hostile::forged_output", run: forged_output },
    Test { name: "hostile::map_race", run: map_race },
];

/// Cases that must exit 0, run as they are.
macro_rules! passing_cases {
    ($($name:ident),* $(,)?) => {
        $(fn $name() -> TestResult { run_case(stringify!($name), 0) })*
    };
}

passing_cases!(
    rights_endpoint,
    rights_badge,
    rights_notification,
    dead_endpoint,
    abi_edges,
    quotas,
    respawn,
    unjoined_threads,
    avx,
    forged_output
);

/// A thousand children killed while their threads are on their way into
/// and out of every blocking call: every wait returns.
fn kill_race() -> TestResult {
    run_case(&format!("kill_race seed={}", super::seed()), 0)
}

/// Children that end with threads blocked in IPC on handles their parent
/// passed them give everything back.
fn ipc_leak() -> TestResult {
    run_leak_checked("ipc_leak", 0)
}

/// Handles in messages, delivered, refused and dropped: nothing leaks.
fn xfer() -> TestResult {
    run_leak_checked("xfer", 0)
}

/// Shared memory through several mappings and processes: its frames come
/// back with the last handle and mapping.
fn shm() -> TestResult {
    run_leak_checked("shm", 0)
}

/// Runs `command` checked by `run` and then checks that the free frames
/// never went below half the kernel's reserve meanwhile: programs may not
/// take it, and the kernel's own needs in the meantime are small.
fn reserve_kept(run: impl FnOnce() -> TestResult) -> TestResult {
    frames::reset_low_water();
    run()?;
    let low = frames::low_water();
    log::info!("hostile: the fewest free frames meanwhile: {low} (reserve {})", frames::KERNEL_RESERVE);
    crate::ensure!(
        low >= frames::KERNEL_RESERVE / 2,
        "free frames went down to {low}, below half the kernel's reserve of {}",
        frames::KERNEL_RESERVE
    );
    Ok(())
}

/// Dozens of processes fill their handle tables while user memory is at
/// the reserve: every one gets NoMemory, the kernel does not panic, the
/// reserve stays, and everything comes back.
fn heap_exhaust() -> TestResult {
    reserve_kept(|| run_leak_checked("heap_exhaust", 0))
}

/// `map`s on every CPU at once, sized to what is left: the reserve stays.
fn concurrent_maps() -> TestResult {
    reserve_kept(|| run_case("concurrent_maps", 0))
}

/// Every CPU loaded complete CR0 and CR4 values: NE (so #MF exists), WP,
/// caching on, and the CR4 features the CPU has, on the boot CPU and on
/// every AP alike (each checks its own, through a cross-CPU call).
fn control_registers() -> TestResult {
    use core::sync::atomic::{AtomicU64, Ordering};
    use x86_64::registers::control::{Cr0, Cr4};
    static SEEN: [AtomicU64; crate::percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; crate::percpu::MAX_CPUS];
    crate::smp::call::run_on_all(&|cpu| {
        let cpu = cpu as usize;
        SEEN[cpu].store(Cr0::read_raw() << 32 | (Cr4::read_raw() & 0xffff_ffff), Ordering::Release);
    });
    let first = SEEN[0].load(Ordering::Acquire);
    let (cr0, cr4) = (first >> 32, first & 0xffff_ffff);
    let f = crate::arch::cpu::features();
    crate::ensure!(cr0 & (1 << 5) != 0, "CR0.NE is clear ({cr0:#x})");
    crate::ensure!(cr0 & (1 << 16) != 0, "CR0.WP is clear ({cr0:#x})");
    crate::ensure!(cr0 & (3 << 29) == 0, "caching is off: CR0 {cr0:#x}");
    crate::ensure!(cr0 & (1 << 3 | 1 << 2) == 0, "CR0.TS or EM is set ({cr0:#x})");
    for (has, bit, name) in [(f.umip, 11, "UMIP"), (f.mce, 6, "MCE"), (f.xsave, 18, "OSXSAVE"), (f.smep, 20, "SMEP")] {
        crate::ensure!((cr4 >> bit) & 1 == u64::from(has), "CR4.{name} is {} but CPUID says {has}", (cr4 >> bit) & 1);
    }
    for cpu in crate::smp::online_cpus().iter().filter(|&c| c != 0) {
        let seen = SEEN[cpu as usize].load(Ordering::Acquire);
        crate::ensure!(seen == first, "cpu{cpu} has CR0:CR4 {seen:#x}, the boot CPU {first:#x}");
    }
    Ok(())
}

/// `sgdt`, `sidt`, `sldt`, `str` and `smsw` in ring 3 end the process where
/// the CPU has UMIP (and run where it has not).
fn umip() -> TestResult {
    let expected = if crate::arch::cpu::features().umip { EXIT_FAULT } else { 0 };
    for op in ["sgdt", "sidt", "sldt", "str", "smsw"] {
        run_case(&format!("fault_umip op={op}"), expected)?;
    }
    Ok(())
}

/// An unmasked x87 exception ends its process with #MF, on the boot CPU...
fn x87_fault_boot_cpu() -> TestResult {
    run_case("fault_mf cpu=0", EXIT_FAULT)
}

/// ...and on the last AP (whose CR0 INIT had left without NE).
fn x87_fault_ap() -> TestResult {
    let last = crate::smp::online_count() - 1;
    run_case(&format!("fault_mf cpu={last}"), EXIT_FAULT)
}

/// `sysenter` is off: it faults in user mode.
fn sysenter() -> TestResult {
    run_case("fault_sysenter", EXIT_FAULT)
}

/// An NMI that lands while its CPU holds the console's lock (mid-write)
/// must not take that lock: it is counted, the holder carries on, and the
/// NMI is logged afterwards. On one CPU the test sends the NMI to itself;
/// otherwise to a thread pinned to another CPU that holds the lock.
fn nmi_in_console() -> TestResult {
    use crate::arch::apic::{self, Icr};
    use crate::percpu;
    use core::sync::atomic::{AtomicBool, Ordering};
    let me = percpu::cpu_index();
    let target = super::nth_cpu(super::my_rank() + 1);
    let cpu = percpu::get(target);
    let before = cpu.nmis.load(Ordering::Acquire);
    let arrived = move || {
        let deadline = crate::arch::cpu::rdtsc() + 5 * crate::time::tsc_hz();
        while cpu.nmis.load(Ordering::Acquire) == before {
            if crate::arch::cpu::rdtsc() > deadline {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    };
    let send = move || {
        apic::send(Icr::nmi(cpu.apic_id()));
    };
    let handled = if target == me {
        let mut handled = false;
        crate::console::hold_for_test(|| {
            send();
            handled = arrived();
        });
        handled
    } else {
        static HOLDING: AtomicBool = AtomicBool::new(false);
        static RELEASE: AtomicBool = AtomicBool::new(false);
        HOLDING.store(false, Ordering::Release);
        RELEASE.store(false, Ordering::Release);
        let holder = crate::sched::spawn("console-holder", ferrite_kcore::sched::Class::High, target, || {
            crate::console::hold_for_test(|| {
                HOLDING.store(true, Ordering::Release);
                let deadline = crate::arch::cpu::rdtsc() + 10 * crate::time::tsc_hz();
                while !RELEASE.load(Ordering::Acquire) && crate::arch::cpu::rdtsc() < deadline {
                    core::hint::spin_loop();
                }
            });
        })
        .map_err(|e| format!("spawn: {e}"))?;
        while !HOLDING.load(Ordering::Acquire) {
            crate::sched::yield_now();
        }
        send();
        let handled = arrived();
        RELEASE.store(true, Ordering::Release);
        crate::ensure!(holder.join_within(20_000_000_000), "the lock holder on cpu{target} never finished");
        handled
    };
    crate::ensure!(handled, "the NMI to cpu{target} was never counted (its handler is stuck?)");
    // The NMI is logged from an ordinary context on its CPU: the timer
    // interrupt or the idle loop. Sleeping lets this CPU's idle loop run;
    // the target's holder has ended, so its idle loop runs too. Waiting
    // here keeps the log line from racing the end of the run.
    let deadline = crate::arch::cpu::rdtsc() + 5 * crate::time::tsc_hz();
    while cpu.nmis_reported.load(Ordering::Acquire) <= before {
        crate::ensure!(crate::arch::cpu::rdtsc() < deadline, "the NMI on cpu{target} was never logged");
        crate::sched::sleep_ns(1_000_000);
    }
    Ok(())
}

/// Threads of one process map and unmap at once on every CPU; an unmap's
/// addresses are not handed out again before its pages are gone.
fn map_race() -> TestResult {
    run_leak_checked("map_race", 0)
}
