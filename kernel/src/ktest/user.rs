//! The user-mode suite (`test=user`): each case runs the boot module
//! `utest` (userland/src/bin/utest) as its own process and checks how it
//! ends — exit code 0, or for the fault cases [`EXIT_FAULT`], the code of a
//! process the kernel killed. The program checks the system calls from the
//! inside; the kernel checks from the outside what a program cannot see:
//! that every process, thread, frame and heap byte comes back after churn,
//! fuzzing and killing, and that a fault ends only its own process.
use super::{Test, TestResult};
use crate::ensure;
use crate::mem::{frames, heap, stack};
use crate::proc::{self, Process};
use crate::sched::thread::live_threads;
use crate::time::uptime_ns;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ferrite_abi::{Error, EXIT_FAULT};

/// How long one case may run before it is declared hung (TCG with 8
/// virtual CPUs on a 2-core host is slow).
const CASE_LIMIT_NS: u64 = 120_000_000_000;

/// Cases that must exit 0.
macro_rules! passing_cases {
    ($($name:ident),* $(,)?) => {
        $(fn $name() -> TestResult { run_case(stringify!($name), 0) })*
    };
}

/// Cases that must be killed by a fault, and their list.
macro_rules! fault_cases {
    ($($name:ident),* $(,)?) => {
        $(fn $name() -> TestResult { run_case(stringify!($name), EXIT_FAULT) })*
        const FAULT_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

passing_cases!(
    write,
    bad_syscall,
    dev_power_bad_action,
    dev_resources,
    dev_ports,
    dev_irq,
    dev_kill,
    ipc_dying_receiver,
    dev_processes,
    dev_memory,
    time,
    cpu,
    affinity,
    threads,
    thread_limit,
    handle_limit,
    map,
    spawn,
    handles,
    isolation,
    ipc_same_cpu,
    ipc_cross_cpu,
    ipc_many_clients,
    ipc_send_recv,
    ipc_process,
    ipc_peer_gone,
    notify,
    fpu,
);

fault_cases!(
    fault_null,
    fault_write_text,
    fault_exec_data,
    fault_ud,
    fault_gp,
    fault_de,
    fault_stack,
    fault_kernel_read,
    fault_noncanonical,
    fault_ioport,
    dev_ports_outside,
);

pub const TESTS: &[Test] = &[
    Test { name: "user::protection", run: protection },
    Test { name: "user::shootdown_targets", run: shootdown_targets },
    Test { name: "user::bad_modules", run: bad_modules },
    Test { name: "user::write", run: write },
    Test { name: "user::bad_syscall", run: bad_syscall },
    Test { name: "user::dev_power_bad_action", run: dev_power_bad_action },
    Test { name: "user::dev_resources", run: dev_resources },
    Test { name: "user::dev_ports", run: dev_ports },
    Test { name: "user::dev_ports_outside", run: dev_ports_outside },
    Test { name: "user::fault_ioport", run: fault_ioport },
    Test { name: "user::dev_irq", run: dev_irq },
    Test { name: "user::dev_irq_level", run: dev_irq_level },
    Test { name: "user::dev_irq_shared_input", run: dev_irq_shared_input },
    Test { name: "user::dev_kill", run: dev_kill },
    Test { name: "user::ipc_dying_receiver", run: ipc_dying_receiver },
    Test { name: "user::dev_processes", run: dev_processes },
    Test { name: "user::dev_memory", run: dev_memory },
    Test { name: "user::time", run: time },
    Test { name: "user::cpu", run: cpu },
    Test { name: "user::affinity", run: affinity },
    Test { name: "user::threads", run: threads },
    Test { name: "user::thread_limit", run: thread_limit },
    Test { name: "user::handle_limit", run: handle_limit },
    Test { name: "user::map", run: map },
    Test { name: "user::map_exhaust", run: map_exhaust },
    Test { name: "user::exhaust_all", run: exhaust_all },
    Test { name: "user::spawn", run: spawn },
    Test { name: "user::handles", run: handles },
    Test { name: "user::isolation", run: isolation },
    Test { name: "user::ipc_same_cpu", run: ipc_same_cpu },
    Test { name: "user::ipc_cross_cpu", run: ipc_cross_cpu },
    Test { name: "user::ipc_many_clients", run: ipc_many_clients },
    Test { name: "user::ipc_send_recv", run: ipc_send_recv },
    Test { name: "user::ipc_process", run: ipc_process },
    Test { name: "user::ipc_peer_gone", run: ipc_peer_gone },
    Test { name: "user::notify", run: notify },
    Test { name: "user::fpu", run: fpu },
    Test { name: "user::fault_null", run: fault_null },
    Test { name: "user::fault_write_text", run: fault_write_text },
    Test { name: "user::fault_exec_data", run: fault_exec_data },
    Test { name: "user::fault_ud", run: fault_ud },
    Test { name: "user::fault_gp", run: fault_gp },
    Test { name: "user::fault_de", run: fault_de },
    Test { name: "user::fault_stack", run: fault_stack },
    Test { name: "user::fault_kernel_read", run: fault_kernel_read },
    Test { name: "user::fault_noncanonical", run: fault_noncanonical },
    Test { name: "user::faults_spare_others", run: faults_spare_others },
    Test { name: "user::kill_threads", run: kill_threads },
    Test { name: "user::churn", run: churn },
    Test { name: "user::fuzz", run: fuzz },
];

/// Starts `utest <command>`; a `dev_*` case gets the root resources, as
/// init does.
pub(super) fn start(command: &str) -> Result<Arc<Process>, String> {
    let handles = if command.starts_with("dev_") { crate::device::root_handles() } else { Vec::new() };
    proc::spawn("utest", command, handles).map_err(|e| format!("cannot start 'utest {command}': {e:?}"))
}

/// Waits (deadline-bound) for `process` to end; returns its exit code.
pub(super) fn finish(process: &Process, what: &str) -> Result<u64, String> {
    let deadline = uptime_ns() + CASE_LIMIT_NS;
    loop {
        if let Some(code) = process.exit_code() {
            return Ok(code);
        }
        if uptime_ns() > deadline {
            crate::sched::dump_state();
            process.kill(EXIT_FAULT);
            return Err(format!(
                "'utest {what}' (pid {}) did not end within {} s",
                process.id,
                CASE_LIMIT_NS / 1_000_000_000
            ));
        }
        crate::sched::sleep_ns(2_000_000);
    }
}

pub(super) fn expect_code(what: &str, code: u64, expected: u64) -> TestResult {
    let name = |c: u64| match c {
        0 => String::from("0 (passed)"),
        EXIT_FAULT => String::from("EXIT_FAULT (killed by a fault)"),
        c => format!("{c}"),
    };
    ensure!(code == expected, "'utest {what}' ended with {}, expected {}", name(code), name(expected));
    Ok(())
}

/// Runs `utest <command>` to its end and checks its exit code.
pub(super) fn run_case(command: &str, expected: u64) -> TestResult {
    let process = start(command)?;
    let code = finish(&process, command)?;
    expect_code(command, code, expected)
}

/// What user-mode churn must give back: counted with nothing of the case
/// left running, and with cached kernel stacks (reusable memory, not a
/// leak) returned. Frames the heap grew by are not lost either (the heap
/// never shrinks, and a run may fragment it differently), nor are the
/// kernel half's page tables that growth took: they count with the free
/// ones, and the heap's bytes in use are compared instead.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct Resources {
    pub processes: u64,
    pub threads: u64,
    /// Free frames, the frames of the heap's span, and the kernel half's
    /// page tables.
    pub free_frames: u64,
    pub heap_used: usize,
}

pub(super) fn settle(expect_threads: u64) -> Resources {
    // Exited threads are freed by whichever CPU switches away from them.
    let deadline = uptime_ns() + 2_000_000_000;
    while live_threads() > expect_threads && uptime_ns() < deadline {
        crate::sched::sleep_ns(1_000_000);
    }
    stack::trim();
    Resources {
        processes: proc::live_processes(),
        threads: live_threads(),
        free_frames: frames::free_count()
            + heap::usage().1 as u64 / crate::mem::PAGE_SIZE
            + crate::mem::paging::table_frames(),
        heap_used: heap::usage().0,
    }
}

/// Runs `utest <command>` twice (the first run grows the kernel heap and
/// page tables to what the case needs) and checks that the second gives
/// back everything it took.
pub(super) fn run_leak_checked(command: &str, expected: u64) -> TestResult {
    // The idle threads and this test's own (main) thread.
    let kernel_threads = u64::from(crate::smp::online_count()) + 1;
    run_case(command, expected)?;
    let before = settle(kernel_threads);
    run_case(command, expected)?;
    let after = settle(kernel_threads);
    ensure!(after == before, "'utest {command}' leaked: {before:?} before, {after:?} after");
    Ok(())
}

fn map_exhaust() -> TestResult {
    run_leak_checked("map_exhaust", 0)
}

fn exhaust_all() -> TestResult {
    run_leak_checked("exhaust_all", 0)
}

fn churn() -> TestResult {
    run_leak_checked("churn", 0)
}

fn kill_threads() -> TestResult {
    run_leak_checked("kill_threads", EXIT_FAULT)
}

fn fuzz() -> TestResult {
    run_leak_checked(&format!("fuzz seed={}", super::seed()), 0)
}

/// The ACPI SCI, level-triggered, left unacknowledged (utest
/// dev_irq_level), where the FADT names its line and PM1a event block: it
/// stays masked, and the irq-watch reports it.
fn dev_irq_level() -> TestResult {
    match crate::arch::power::sci() {
        Some((evt, irq)) => {
            let reports = crate::device::masked_reports();
            run_case(&format!("dev_irq_level evt={evt} irq={irq}"), 0)?;
            // The case leaves the line masked for twice the report time.
            ensure!(
                crate::device::masked_reports() > reports,
                "IRQ {irq}, masked and unacknowledged for {} ms, was not reported",
                2 * crate::device::REPORT_AFTER_NS / 1_000_000
            );
            Ok(())
        }
        None => {
            log::info!("user::dev_irq_level: no SCI and PM1a event block in the FADT; nothing to test");
            Ok(())
        }
    }
}

/// An ISA IRQ whose input another IRQ's override took (IRQ 2, whose GSI
/// is IRQ 0's on QEMU and most PCs; utest dev_irq_shared_input): it cannot
/// be bound, so it cannot take the other's interrupts or mask its line.
fn dev_irq_shared_input() -> TestResult {
    // From the MADT's overrides themselves, not from the routes made of
    // them: an IRQ (owner) overridden onto the GSI of another ISA IRQ's
    // number (alias) that has no override of its own.
    let madt = crate::boot_info::get().acpi_root().map(crate::smp::madt::read);
    let overrides = match madt {
        Some(Ok(madt)) => madt.isa_overrides,
        _ => [None; 16],
    };
    let found = overrides.iter().enumerate().find_map(|(owner, o)| {
        let gsi = usize::try_from(o.as_ref()?.gsi).ok()?;
        (gsi != owner && gsi < 16 && overrides[gsi].is_none()).then_some((gsi as u8, owner as u8))
    });
    match found {
        Some((alias, owner)) => run_case(&format!("dev_irq_shared_input alias={alias} owner={owner}"), 0),
        None => {
            log::info!("user::dev_irq_shared_input: no ISA IRQ lost its input to another's override; nothing to test");
            Ok(())
        }
    }
}

/// SMEP and SMAP are on where the CPU has them, and user memory is NX.
fn protection() -> TestResult {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let f = crate::arch::cpu::features();
    let cr4 = Cr4::read();
    ensure!(
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION) == f.smep,
        "SMEP {:?} but CPUID says {}",
        cr4,
        f.smep
    );
    ensure!(
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION) == f.smap,
        "SMAP {:?} but CPUID says {}",
        cr4,
        f.smap
    );
    ensure!(cr4.contains(Cr4Flags::OSFXSR), "CR4.OSFXSR is off: user SSE code would fault");
    Ok(())
}

/// Modules that are not programs are refused with a log line, and the
/// kernel carries on.
fn bad_modules() -> TestResult {
    for (name, expected) in
        [("notelf", Error::BadProgram), ("truncated", Error::BadProgram), ("nosuch", Error::NotFound)]
    {
        match proc::spawn(name, "", Vec::new()) {
            Err(e) => ensure!(e == expected, "spawning '{name}' gave {e:?}, expected {expected:?}"),
            Ok(p) => return Err(format!("'{name}' started as pid {}", p.id)),
        }
    }
    Ok(())
}

/// Processes that fault die alone: one that works for a while runs beside
/// every kind of fault and still passes.
fn faults_spare_others() -> TestResult {
    let worker = start("ipc_many_clients")?;
    let victims = FAULT_CASES.iter().map(|case| start(case).map(|p| (*case, p))).collect::<Result<Vec<_>, _>>()?;
    for (case, process) in &victims {
        expect_code(case, finish(process, case)?, EXIT_FAULT)?;
    }
    expect_code("ipc_many_clients", finish(&worker, "ipc_many_clients")?, 0)
}

/// Unmapping a user page interrupts exactly the CPUs that run the address
/// space: one whose CPU runs a thread of it acknowledges the shootdown, no
/// other CPU is asked; when a kernel thread displaces that thread (the CPU
/// keeps the tables, lazily) it is not asked either, but it catches up
/// with the unmap before the thread runs again; the teardown makes it
/// leave the address space.
fn shootdown_targets() -> TestResult {
    use crate::mem::PAGE_SIZE;
    use crate::percpu;
    use core::sync::atomic::{AtomicBool, Ordering};
    let online = crate::smp::online_count();
    let span = crate::smp::cpu_span();
    let me = percpu::cpu_index();
    // `spin` takes a CPU as user programs number them (among the online).
    let other_rank = (super::my_rank() + 1) % crate::smp::online_count();
    let other = super::nth_cpu(other_rank);
    let process = start(&format!("spin {other_rank}"))?;
    let aspace = &process.aspace;
    let cpu = percpu::get(other);
    let runs_it =
        || core::ptr::eq(cpu.loaded_aspace.load(Ordering::Acquire), aspace) && cpu.user_running.load(Ordering::Acquire);
    let result = (|| {
        // (With one CPU, this test's thread and the spinner take turns on
        // it, and the spinner is never seen running from here.)
        ensure!(other == me || wait_for(runs_it), "the spinner never ran on cpu{other}");
        // No earlier test's exiting threads may shoot down (their stacks
        // going back to the cache) while this one counts: let them go, and
        // empty the cache now. Idle threads, this one and the spinner stay.
        settle(u64::from(online) + 2);
        let acks = || (0..span).map(|c| percpu::get(c).tlb_served.load(Ordering::Acquire)).collect::<Vec<_>>();
        let unmap_one = || -> Result<(Vec<u64>, Vec<u64>, u64), String> {
            let page = aspace.map_anon(PAGE_SIZE, true).map_err(|e| format!("map: {e}"))?;
            let (before, count) = (acks(), crate::arch::tlb::count());
            aspace.unmap_anon(page, PAGE_SIZE).map_err(|e| format!("unmap: {e}"))?;
            Ok((before, acks(), crate::arch::tlb::count() - count))
        };
        // Running: asked, alone (unless it is this very CPU: one CPU).
        let (before, after, sent) = unmap_one()?;
        for c in 0..span {
            let asked = u64::from(c == other && other != me);
            let served = after[c as usize] - before[c as usize];
            ensure!(
                served == asked,
                "cpu{c} acknowledged {served} shootdowns of a running address space, expected {asked}"
            );
        }
        ensure!(sent == u64::from(other != me), "{sent} shootdown requests for one unmap");
        if other == me {
            return Ok(());
        }
        // Lazy: a high-class kernel thread takes the CPU from the spinner.
        let hold = Arc::new(AtomicBool::new(true));
        let held = hold.clone();
        let lazy = crate::sched::spawn("lazy", ferrite_kcore::sched::Class::High, other, move || {
            while held.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        })
        .map_err(|e| format!("spawn: {e}"))?;
        ensure!(
            wait_for(|| !cpu.user_running.load(Ordering::Acquire)),
            "the kernel thread never displaced the spinner"
        );
        let (before, after, sent) = unmap_one()?;
        ensure!(before == after && sent == 0, "a lazy CPU was asked to shoot down ({sent} requests)");
        ensure!(
            cpu.tlb_generation_seen.load(Ordering::Acquire) != aspace.generation(),
            "cpu{other} claims to have seen an unmap it was not told of"
        );
        hold.store(false, Ordering::Release);
        lazy.join();
        let caught_up = || runs_it() && cpu.tlb_generation_seen.load(Ordering::Acquire) == aspace.generation();
        ensure!(wait_for(caught_up), "cpu{other} went back to the spinner without catching up with the unmap");
        Ok(())
    })();
    process.kill(0);
    let code = finish(&process, "spin")?;
    result?;
    expect_code("spin", code, 0)?;
    ensure!(
        !core::ptr::eq(cpu.loaded_aspace.load(Ordering::Acquire), aspace),
        "cpu{other} kept a torn-down address space"
    );
    Ok(())
}

/// Polls `ready` for up to two seconds.
pub(super) fn wait_for(ready: impl Fn() -> bool) -> bool {
    let deadline = uptime_ns() + 2_000_000_000;
    while !ready() {
        if uptime_ns() > deadline {
            return false;
        }
        crate::sched::sleep_ns(100_000);
    }
    true
}
