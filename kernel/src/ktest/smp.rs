//! SMP tests: every CPU is who it should be, IPIs reach every other CPU
//! exactly once, and concurrent updates add up.
use super::{Test, TestResult};
use crate::arch::apic;
use crate::arch::ipi::{self, Ipi};
use crate::percpu::{self, MAX_CPUS};
use crate::smp::{self, call::run_on_all};
use crate::sync::IrqSpinlock;
use crate::{ensure, time};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const TESTS: &[Test] = &[
    Test { name: "smp::identity", run: identity },
    Test { name: "smp::ipi_all_pairs", run: ipi_all_pairs },
    Test { name: "smp::shared_counter", run: shared_counter },
    Test { name: "smp::ipi_vectors_to_set", run: ipi_vectors_to_set },
    Test { name: "smp::unlisted_cpu_parks", run: unlisted_cpu_parks },
    Test { name: "smp::tlb_shootdown_reaches_every_cpu", run: tlb_shootdown_reaches_every_cpu },
    Test { name: "smp::tlb_shootdown_survives_a_lost_ipi", run: tlb_shootdown_survives_a_lost_ipi },
    Test { name: "smp::call_reaches_polling_cpus", run: call_reaches_polling_cpus },
    Test { name: "smp::nmi_pins_programmed", run: nmi_pins_programmed },
];

const WORDS: usize = MAX_CPUS / 64;

/// What each CPU saw of itself.
struct Seen {
    apic_id: AtomicU64,
    rsp: AtomicU64,
    gs_base: AtomicU64,
    ran: AtomicBool,
}

fn identity() -> TestResult {
    // Indexed by logical CPU, holes (CPUs that failed to start) included.
    let n = smp::cpu_span() as usize;
    let online = smp::online_cpus();
    let seen: Vec<Seen> = (0..n)
        .map(|_| Seen {
            apic_id: AtomicU64::new(0),
            rsp: AtomicU64::new(0),
            gs_base: AtomicU64::new(0),
            ran: AtomicBool::new(false),
        })
        .collect();
    let bad = AtomicU64::new(0);
    run_on_all(&|cpu| {
        let me = percpu::current();
        let Some(s) = seen.get(cpu as usize) else {
            bad.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let rsp: u64;
        // SAFETY: reads the stack pointer.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp) };
        s.apic_id.store(u64::from(apic::id()), Ordering::Relaxed);
        s.rsp.store(rsp, Ordering::Relaxed);
        s.gs_base.store(x86_64::registers::model_specific::GsBase::read().as_u64(), Ordering::Relaxed);
        if me.index() != cpu || !core::ptr::eq(me, percpu::get(cpu)) {
            bad.fetch_add(1, Ordering::Relaxed);
        }
        s.ran.store(true, Ordering::Release);
    });
    ensure!(bad.load(Ordering::Relaxed) == 0, "a CPU's per-CPU block is not its own");
    ensure!(
        online.len() <= smp::present_count(),
        "{} CPUs online but only {} present",
        online.len(),
        smp::present_count()
    );
    for (i, s) in seen.iter().enumerate() {
        let cpu = percpu::get(i as u32);
        ensure!(
            s.ran.load(Ordering::Acquire) == online.contains(i as u32),
            "cpu{i} ran the check: {}",
            !online.contains(i as u32)
        );
        if !online.contains(i as u32) {
            continue;
        }
        let id = s.apic_id.load(Ordering::Relaxed);
        ensure!(id == u64::from(cpu.apic_id()), "cpu{i} runs on APIC ID {id}, expected {}", cpu.apic_id());
        ensure!(s.gs_base.load(Ordering::Relaxed) == cpu as *const _ as u64, "cpu{i}'s GS base is not its block");
        for (j, t) in seen.iter().enumerate().skip(i + 1).filter(|&(j, _)| online.contains(j as u32)) {
            ensure!(
                s.gs_base.load(Ordering::Relaxed) != t.gs_base.load(Ordering::Relaxed),
                "cpu{i} and cpu{j} share a GS base"
            );
            ensure!(
                s.apic_id.load(Ordering::Relaxed) != t.apic_id.load(Ordering::Relaxed),
                "cpu{i} and cpu{j} share an APIC ID"
            );
            // Kernel stacks are at least a page apart and far smaller than
            // the distance between two CPUs' stacks.
            let (a, b) = (s.rsp.load(Ordering::Relaxed), t.rsp.load(Ordering::Relaxed));
            ensure!(a.abs_diff(b) >= 16 * 1024, "cpu{i} and cpu{j} run on the same stack ({a:#x}, {b:#x})");
        }
    }
    Ok(())
}

/// Mailboxes for the TEST IPI: a sender sets its bit in the receiver's
/// pending set, then sends. The receiver moves pending bits to its
/// received set, counting a bit that is already there as a duplicate.
/// (The APIC merges IPIs of one vector that arrive together, so counting
/// interrupts would be wrong; counting mailbox bits is exact.)
static PENDING: [[AtomicU64; WORDS]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_CPUS];
static RECEIVED: [[AtomicU64; WORDS]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_CPUS];
static DUPLICATES: AtomicU64 = AtomicU64::new(0);

/// Called by the TEST IPI handler.
pub fn test_ipi_received() {
    let me = percpu::cpu_index() as usize;
    for w in 0..WORDS {
        let bits = PENDING[me][w].swap(0, Ordering::AcqRel);
        let before = RECEIVED[me][w].fetch_or(bits, Ordering::AcqRel);
        DUPLICATES.fetch_add(u64::from((before & bits).count_ones()), Ordering::Relaxed);
    }
}

fn ipi_all_pairs() -> TestResult {
    let online = smp::online_cpus();
    let n = online.len() as usize;
    for row in PENDING.iter().chain(RECEIVED.iter()) {
        for w in row {
            w.store(0, Ordering::Relaxed);
        }
    }
    DUPLICATES.store(0, Ordering::Relaxed);
    let timeouts = AtomicU64::new(0);
    run_on_all(&|cpu| {
        let me = cpu as usize;
        for target in online.iter().map(|t| t as usize).filter(|&t| t != me) {
            PENDING[target][me / 64].fetch_or(1 << (me % 64), Ordering::AcqRel);
            ipi::send(target as u32, Ipi::Test);
        }
        // Wait, interrupts on, until every other CPU's IPI has arrived.
        let deadline = time::uptime_ns() + 10_000_000_000;
        while (0..WORDS).map(|w| RECEIVED[me][w].load(Ordering::Acquire).count_ones()).sum::<u32>() < n as u32 - 1 {
            if time::uptime_ns() > deadline {
                timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            }
            core::hint::spin_loop();
        }
    });
    ensure!(timeouts.load(Ordering::Relaxed) == 0, "{} CPUs missed IPIs for 10 s", timeouts.load(Ordering::Relaxed));
    ensure!(DUPLICATES.load(Ordering::Relaxed) == 0, "{} IPIs arrived twice", DUPLICATES.load(Ordering::Relaxed));
    for (receiver, row) in RECEIVED.iter().enumerate().take(smp::cpu_span() as usize) {
        for sender in 0..smp::cpu_span() as usize {
            let got = row[sender / 64].load(Ordering::Relaxed) & (1 << (sender % 64)) != 0;
            let both = online.contains(receiver as u32) && online.contains(sender as u32);
            ensure!(got == (both && sender != receiver), "cpu{receiver} from cpu{sender}: received={got}");
        }
    }
    Ok(())
}

fn shared_counter() -> TestResult {
    const ROUNDS: u64 = 20_000;
    let n = u64::from(smp::online_count());
    let atomic = AtomicU64::new(0);
    let locked = IrqSpinlock::new(0u64);
    run_on_all(&|_| {
        for _ in 0..ROUNDS {
            atomic.fetch_add(1, Ordering::Relaxed);
            // A plain read-modify-write: only the lock makes it exact.
            let mut v = locked.lock();
            *v = core::hint::black_box(*v) + 1;
        }
    });
    let (a, l) = (atomic.load(Ordering::Relaxed), *locked.lock());
    ensure!(a == n * ROUNDS, "atomic counter {a}, expected {}", n * ROUNDS);
    ensure!(l == n * ROUNDS, "locked counter {l}, expected {}", n * ROUNDS);
    Ok(())
}

/// The reschedule IPI to a set of CPUs and a TLB shootdown to all others:
/// each target takes exactly one interrupt of each (different vectors do
/// not merge), and nobody else takes any.
fn ipi_vectors_to_set() -> TestResult {
    let n = smp::cpu_span();
    let me = percpu::cpu_index();
    let received = |c: u32| percpu::get(c).ipis_received.load(Ordering::Acquire);
    let before: Vec<u64> = (0..n).map(received).collect();
    let mut set = ipi::CpuSet::new();
    for c in smp::online_cpus().iter().filter(|&c| c != me) {
        set.insert(c);
    }
    ensure!(!set.contains(me) && set.len() == smp::online_count() - 1, "the CPU set is wrong");
    ipi::send_set(&set, Ipi::Reschedule);
    // By shorthand where every present CPU is online, else by set.
    ipi::send_online_others(Ipi::TlbShootdown);
    let deadline = time::uptime_ns() + 10_000_000_000;
    for c in set.iter() {
        while received(c) < before[c as usize] + 2 {
            ensure!(time::uptime_ns() < deadline, "cpu{c} took {} of 2 IPIs in 10 s", received(c) - before[c as usize]);
            core::hint::spin_loop();
        }
    }
    // Give any stray extra interrupt time to show up.
    time::spin_ns(10_000_000);
    for c in 0..n {
        let expected = if c == me || !set.contains(c) { 0 } else { 2 };
        let got = received(c) - before[c as usize];
        ensure!(got == expected, "cpu{c} took {got} IPIs, expected {expected}");
    }
    Ok(())
}

/// A present CPU that `smp=` left out, started anyway, must park itself in
/// the trampoline and not come online. (Only bites when `smp=` leaves a
/// CPU out; otherwise there is no such CPU and nothing to check.)
fn unlisted_cpu_parks() -> TestResult {
    let online = smp::online_count();
    for &id in smp::excluded_apic_ids() {
        ensure!(smp::start_unlisted_cpu(id, 5_000_000_000), "APIC ID {id}, started, did not park within 5 s");
    }
    ensure!(smp::online_count() == online, "a CPU outside the table came online");
    Ok(())
}

/// Every CPU caches a kernel mapping, the boot CPU removes it, and then no
/// CPU can read through it any more: without the shootdown, the others
/// would keep using their stale TLB entries.
fn tlb_shootdown_reaches_every_cpu() -> TestResult {
    use crate::arch::trap::probe_read;
    use crate::mem::{frames, paging, MMIO_MAX, MMIO_START, PAGE_SIZE};
    const PAGE: u64 = MMIO_START + MMIO_MAX - 2 * PAGE_SIZE;
    let n = smp::online_count();
    let frame = frames::alloc().ok_or("out of frames")?;
    paging::map(PAGE, frame, paging::kernel_flags(true, false)).map_err(|e| alloc::format!("map: {e}"))?;
    let misses = AtomicU64::new(0);
    run_on_all(&|_| {
        // SAFETY: a mapped test page of plain memory.
        if unsafe { probe_read(PAGE) }.is_err() {
            misses.fetch_add(1, Ordering::Relaxed);
        }
    });
    let before = crate::arch::tlb::count();
    let back = paging::unmap(PAGE).map_err(|e| alloc::format!("unmap: {e}"))?;
    frames::free(back);
    let shootdowns = crate::arch::tlb::count() - before;
    let stale = AtomicU64::new(0);
    run_on_all(&|_| {
        // SAFETY: reading an unmapped test page faults, or reads a stale
        // translation of a frame we just freed (plain memory) if the
        // shootdown failed.
        if unsafe { probe_read(PAGE) }.is_ok() {
            stale.fetch_add(1, Ordering::Relaxed);
        }
    });
    ensure!(misses.load(Ordering::Relaxed) == 0, "CPUs could not read the mapped page");
    ensure!(shootdowns == u64::from(n > 1), "{shootdowns} shootdowns for one unmap on {n} CPUs");
    ensure!(stale.load(Ordering::Relaxed) == 0, "{} CPUs still read the unmapped page", stale.load(Ordering::Relaxed));
    Ok(())
}

/// A cross-CPU call reaches CPUs that have just gone idle, and so poll for
/// work with interrupts on before they halt (sched::idle_main): back-to-back
/// calls find the others polling after the previous one, the call's IPI is
/// taken while they poll, and each must run the call rather than halt with
/// it pending. (They did halt, until a poll ended on any interrupt: a
/// call then waited for an unrelated interrupt, a minute under test, and
/// failed the run.)
fn call_reaches_polling_cpus() -> TestResult {
    let online = u64::from(smp::online_count());
    for _ in 0..1000 {
        let ran = AtomicU64::new(0);
        run_on_all(&|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        ensure!(ran.load(Ordering::Relaxed) == online, "a CPU skipped the call");
    }
    Ok(())
}

/// Every CPU programmed the LINT pins that the MADT's Local APIC NMI
/// entries name as NMI (QEMU's table wires LINT1 of every processor), so
/// that a machine's NMI button and watchdog reach the kernel.
fn nmi_pins_programmed() -> TestResult {
    if crate::boot_info::get().acpi_root().is_none() {
        return Ok(());
    }
    ensure!(!smp::nmi_pins(0).is_empty(), "the MADT lists no Local APIC NMI for the boot CPU (QEMU's does)");
    let wrong = AtomicU64::new(0);
    run_on_all(&|cpu| {
        for (lint, active_low) in smp::nmi_pins(cpu) {
            let lvt = apic::lint_lvt(lint);
            let (delivery, masked, low) = ((lvt >> 8) & 7, lvt & (1 << 16) != 0, lvt & (1 << 13) != 0);
            if delivery != 0b100 || masked || low != active_low {
                log::error!("smp: cpu{cpu} LINT{lint} is {lvt:#x}, not an unmasked NMI (active low: {active_low})");
                wrong.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    ensure!(wrong.load(Ordering::Relaxed) == 0, "{} LINT pins are not NMIs", wrong.load(Ordering::Relaxed));
    Ok(())
}

/// A shootdown whose IPI is lost (the other CPUs idle, halted with
/// interrupts on, as in the one hang CI saw) still completes: after a
/// second the initiator names the late CPUs and sends the IPI again.
/// Without that the request, and this CPU with it, waits for ever.
fn tlb_shootdown_survives_a_lost_ipi() -> TestResult {
    if smp::online_count() < 2 {
        return Ok(());
    }
    // Let the other CPUs go idle.
    crate::sched::sleep_ns(50_000_000);
    let before = crate::arch::tlb::resent();
    crate::arch::tlb::lose_next_ipi();
    crate::arch::tlb::shootdown_all();
    let resent = crate::arch::tlb::resent() - before;
    ensure!(resent > 0, "the shootdown completed without a resend: was the IPI really held back?");
    Ok(())
}
