//! SMP bring-up: every CPU the firmware reports, started in parallel
//! through the real-mode trampoline.
//!
//! Order on the boot CPU (BSP), after memory, traps and its own APIC:
//! 1. Enumerate: the MADT lists the CPUs (local APIC and x2APIC entries,
//!    Enabled or Online Capable, duplicates dropped). Logical index 0 is
//!    the BSP, whatever its APIC ID; the others follow in MADT order, up to
//!    the `smp=` limit. APIC IDs may have gaps: only this map relates them.
//! 2. Prepare: a kernel stack (with guard page) per AP; the trampoline
//!    code and its parameter block (ferrite_trampoline::Params: the APIC-ID
//!    table, the stack table, entry point, GDT, a CR3 below 4 GiB) in the
//!    reserved page below 1 MiB; page tables that map that page
//!    identically and share the kernel half.
//! 3. Start: INIT to every AP; 10 ms, but only on CPUs older than Intel
//!    family 6 or AMD family 0Fh and outside hypervisors (modern ones need
//!    no wait, as Linux also knows); STARTUP to every AP; then, as the SDM
//!    (vol. 3, 8.4.4.1) asks, a second STARTUP to those that have not marked
//!    themselves started within 200 µs. That wait ends as soon as all have:
//!    no fixed delay stands between a modern machine and its APs. All
//!    delays are timed by the calibrated TSC.
//! 4. Each AP finds its own row by APIC ID (or parks: not in the table, or
//!    beyond the limit), climbs to long mode, and in [`ap_entry`] switches
//!    to the kernel's page tables, installs its per-CPU block, loads its
//!    own GDT/TSS and the IDT, enables its APIC and timer, and claims its
//!    boot gate.
//! 5. The BSP waits up to [`BRINGUP_TIMEOUT_NS`]. A CPU that has not
//!    claimed its gate by then loses it to the BSP (a compare-and-swap
//!    decides, so a late AP halts instead of joining behind the report) and
//!    is reported "not responding" (never ran the trampoline) or "stuck"
//!    (with the last mode it reached). If every AP made it, the
//!    trampoline's page tables, the only low identity mapping, are freed.
//!
//! Then one line: `smp: <online> of <present> CPUs online in <us> us`.
//!
//! `apfault=silent` (no STARTUP for the last AP, as if it were dead) and
//! `apfault=stuck` (the last AP stops short of coming online) exercise
//! steps 5's reports and the late-AP path in the test harness.
pub mod call;
pub mod madt;

use crate::arch::apic::{self, Icr};
use crate::arch::ipi::{AtomicCpuSet, CpuSet};
use crate::arch::{cpu, gdt, idt, power};
use crate::boot_info::BootInfo;
use crate::mem::{frames, paging, phys_to_virt, stack::KernelStack};
use crate::percpu::{self, MAX_CPUS};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ferrite_kcore::acpi::LocalNmi;
use ferrite_trampoline::{state, Params, PARAMS_OFFSET};
use x86_64::registers::control::{Cr3, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};

/// How long the BSP waits for the APs to come online.
pub const BRINGUP_TIMEOUT_NS: u64 = 5_000_000_000;
/// SDM delays: after INIT, and between the two STARTUP IPIs.
const INIT_DELAY_NS: u64 = 10_000_000;
const STARTUP_DELAY_NS: u64 = 200_000;
const AP_STACK_SIZE: usize = 64 * 1024;

/// Boot gate values (PerCpu::boot_gate): exactly one of the AP and the BSP
/// moves it away from OPEN.
const GATE_OPEN: u32 = 0;
const GATE_ONLINE: u32 = 1;
const GATE_ABANDONED: u32 = 2;

static ONLINE: AtomicU32 = AtomicU32::new(1);
/// TSC ticks from the first STARTUP IPI until the last AP came online (0:
/// no AP started, or not all of them did).
static BRINGUP_TICKS: AtomicU64 = AtomicU64::new(0);
static PRESENT: AtomicU32 = AtomicU32::new(1);
/// A simulated start-up failure of the last AP (`apfault=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApFault {
    None,
    /// It gets no STARTUP IPI: "not responding".
    Silent,
    /// It stops in ap_entry until the BSP gives up on it: "stuck".
    Stuck,
}
static AP_FAULT: AtomicU32 = AtomicU32::new(ApFault::None as u32);
/// Index of the AP that `apfault=` applies to.
static FAULTY_AP: AtomicU32 = AtomicU32::new(u32::MAX);

fn ap_fault() -> ApFault {
    match AP_FAULT.load(Ordering::Relaxed) {
        x if x == ApFault::Silent as u32 => ApFault::Silent,
        x if x == ApFault::Stuck as u32 => ApFault::Stuck,
        _ => ApFault::None,
    }
}

/// Each logical CPU's ACPI processor UID (`u32::MAX` if the MADT did not
/// list it), and the MADT's Local APIC NMI entries: which LINT pin of
/// which CPU the machine's NMI is wired to.
static NMI_PINS: spin::Once<(Vec<u32>, Vec<LocalNmi>)> = spin::Once::new();

/// Programs this CPU's LINT pins that the MADT names as NMI (every CPU
/// does, the boot CPU once the MADT is read, an AP as it comes up).
fn program_nmi_pins(cpu: u32) {
    let Some((uids, nmis)) = NMI_PINS.get() else { return };
    let uid = uids.get(cpu as usize).copied().unwrap_or(u32::MAX);
    for nmi in nmis.iter().filter(|n| n.applies_to(uid)) {
        apic::set_lint_nmi(nmi.lint, nmi.active_low());
    }
}

/// The LINT pins programmed as NMI on `cpu`, for the tests.
pub fn nmi_pins(cpu: u32) -> Vec<(u8, bool)> {
    let Some((uids, nmis)) = NMI_PINS.get() else { return Vec::new() };
    let uid = uids.get(cpu as usize).copied().unwrap_or(u32::MAX);
    nmis.iter().filter(|n| n.applies_to(uid)).map(|n| (n.lint, n.active_low())).collect()
}

/// CPUs the MADT lists that the `smp=` limit left out.
static EXCLUDED: spin::Once<Vec<u32>> = spin::Once::new();

/// APIC IDs of present CPUs that were left out by the `smp=` limit.
pub fn excluded_apic_ids() -> &'static [u32] {
    EXCLUDED.get().map_or(&[], |v| v.as_slice())
}

/// The trampoline's parameter block (direct-map address), for ap_entry.
static PARAMS: AtomicU64 = AtomicU64::new(0);

/// CPUs running Ferrite now.
pub fn online_count() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

/// Which logical CPUs are online. Logical numbers are given before the APs
/// start, so an AP that fails leaves a hole: CPUs above it are online, and
/// `0..online_count()` would miss them. Loops over CPUs go through this
/// set, or through `0..cpu_span()` checking [`is_online`].
static ONLINE_SET: AtomicCpuSet = AtomicCpuSet::new();
/// One more than the highest online logical CPU.
static SPAN: AtomicU32 = AtomicU32::new(1);

/// Marks this CPU online: in the set, the span and the count.
pub fn mark_online(cpu: u32) {
    percpu::get(cpu).online.store(true, Ordering::Release);
    ONLINE_SET.insert(cpu);
    SPAN.fetch_max(cpu + 1, Ordering::AcqRel);
    if cpu != 0 {
        ONLINE.fetch_add(1, Ordering::AcqRel);
    }
}

/// The online CPUs, now.
pub fn online_cpus() -> CpuSet {
    ONLINE_SET.snapshot()
}

/// One more than the highest online logical CPU: what per-CPU loops and
/// arrays span (with [`is_online`] to skip the holes).
pub fn cpu_span() -> u32 {
    SPAN.load(Ordering::Acquire)
}

/// Whether logical CPU `cpu` is online (and has not been stopped).
pub fn is_online(cpu: u32) -> bool {
    (cpu as usize) < MAX_CPUS && percpu::get(cpu).online.load(Ordering::Acquire)
}

/// Every present CPU is online: a broadcast IPI (by shorthand, to all but
/// oneself) then reaches exactly the online CPUs. Not so if an AP failed
/// or `smp=` left CPUs parked: those must get nothing.
pub fn all_present_online() -> bool {
    online_count() >= present_count()
}

/// The `n`th online CPU (counting from 0): how user programs number CPUs
/// (`cpu`, `cpu_count`, `set_affinity`), densely even where the kernel's
/// numbers have a hole.
pub fn nth_online(n: u32) -> Option<u32> {
    online_cpus().iter().nth(n as usize)
}

/// How many online CPUs come before `cpu`: its number for user programs.
pub fn online_rank(cpu: u32) -> u32 {
    ONLINE_SET.snapshot().count_below(cpu)
}

/// How long AP bring-up took, from the first STARTUP IPI until every AP
/// had checked in, in TSC ticks; None if there was no AP or one failed.
pub fn bringup_ticks() -> Option<u64> {
    Some(BRINGUP_TICKS.load(Ordering::Relaxed)).filter(|&t| t != 0)
}

/// Usable CPUs the firmware listed.
pub fn present_count() -> u32 {
    PRESENT.load(Ordering::Relaxed)
}

/// The logical index -> APIC ID map, BSP first.
fn enumerate(boot: &BootInfo, limit: usize) -> (Vec<u32>, u32) {
    let bsp = apic::id();
    let Some(root) = boot.acpi_root() else {
        log::warn!("smp: no MADT: the loader passed no valid ACPI RSDP; running on the boot CPU alone");
        return (alloc::vec![bsp], 1);
    };
    let madt = match madt::read(root) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("smp: no usable MADT ({e}); running on the boot CPU alone");
            return (alloc::vec![bsp], 1);
        }
    };
    let cpus = &madt.cpus;
    log::info!(
        "smp: MADT lists {} usable CPUs ({} disabled, {} duplicates, {} invalid IDs), {} I/O APICs",
        cpus.len(),
        cpus.disabled,
        cpus.duplicates,
        cpus.invalid_ids,
        madt.io_apics
    );
    if let Some(first) = madt.first_malformed {
        log::warn!("smp: {} malformed MADT entries skipped; the first: {first}", madt.malformed);
    }
    if cpus.beyond_capacity > 0 {
        log::warn!("smp: {} CPUs beyond the {MAX_CPUS} Ferrite supports are not used", cpus.beyond_capacity);
    }
    // Online Capable entries are CPUs that may be added later (hot plug):
    // possible, not present. Sending them INIT/SIPI would only time out.
    let possible = cpus.iter().filter(|c| !c.enabled).count();
    if possible > 0 {
        log::info!("smp: {possible} more CPUs are online capable (possible later); not started");
    }
    let mut present = cpus.iter().filter(|c| c.enabled).count() as u32;
    if !cpus.contains(bsp) {
        log::warn!("smp: the boot CPU's APIC ID {bsp} is not in the MADT; counting it anyway");
        present += 1;
    }
    let mut ids = alloc::vec![bsp];
    let mut excluded = Vec::new();
    for c in cpus.iter().filter(|c| c.apic_id != bsp && c.enabled) {
        if ids.len() >= limit {
            excluded.push(c.apic_id);
            continue;
        }
        if c.apic_id > 0xfe && !apic::is_x2apic() {
            log::warn!("smp: APIC ID {} needs x2APIC mode, which this CPU lacks; not started", c.apic_id);
            continue;
        }
        ids.push(c.apic_id);
    }
    EXCLUDED.call_once(|| excluded);
    let uid_of = |id: u32| cpus.iter().find(|c| c.apic_id == id).map_or(u32::MAX, |c| c.acpi_uid);
    let uids = ids.iter().map(|&id| uid_of(id)).collect();
    let nmis = madt.nmis[..madt.nmi_count].to_vec();
    if !nmis.is_empty() {
        log::info!("smp: NMI wired to {:?} (MADT Local APIC NMI entries)", nmis);
    }
    NMI_PINS.call_once(|| (uids, nmis));
    program_nmi_pins(0);
    (ids, present)
}

/// Page tables for the trampoline: the kernel half shared with the
/// kernel's tables, plus the first 2 MiB identity-mapped (the trampoline
/// page lies there). All below 4 GiB, as 32-bit code loads CR3.
struct TrampolineTables {
    frames: [u64; 3],
}

impl TrampolineTables {
    fn new() -> Option<Self> {
        let mut frames = [0u64; 3];
        for f in frames.iter_mut() {
            *f = frames::alloc_below(1 << 32)?;
            // SAFETY: a free frame, direct-mapped.
            unsafe { (phys_to_virt(*f) as *mut PageTable).write(PageTable::new()) };
        }
        let table = |f: u64| {
            // SAFETY: our own frames, initialised above.
            unsafe { &mut *(phys_to_virt(f) as *mut PageTable) }
        };
        let (pml4, pdpt, pd) = (frames[0], frames[1], frames[2]);
        let rw = Flags::PRESENT | Flags::WRITABLE;
        let kernel_root = Cr3::read().0.start_address().as_u64();
        for i in 256..512 {
            table(pml4)[i] = table(kernel_root)[i].clone();
        }
        table(pml4)[0].set_addr(x86_64::PhysAddr::new(pdpt), rw);
        table(pdpt)[0].set_addr(x86_64::PhysAddr::new(pd), rw);
        table(pd)[0].set_addr(x86_64::PhysAddr::new(0), rw | Flags::HUGE_PAGE);
        Some(TrampolineTables { frames })
    }

    fn root(&self) -> u64 {
        self.frames[0]
    }

    fn free(self) {
        for f in self.frames {
            frames::free(f);
        }
    }
}

/// Brings up every AP (at most `limit` CPUs in all) and reports.
/// `fault` is the `apfault=` option.
pub fn init(boot: &BootInfo, limit: Option<u32>, fault: Option<&str>) {
    let limit = limit.map_or(MAX_CPUS, |l| (l as usize).clamp(1, MAX_CPUS));
    let (ids, present) = enumerate(boot, limit);
    // `apfault=<kind>[@<cpu>]`: the last AP unless an index says which.
    let (kind, which) = match fault.map(|f| f.split_once('@').unwrap_or((f, ""))) {
        None => (None, ""),
        Some((kind, which)) => (Some(kind), which),
    };
    let fault = match kind {
        None => ApFault::None,
        Some("silent") => ApFault::Silent,
        Some("stuck") => ApFault::Stuck,
        Some(other) => {
            log::error!("smp: unknown apfault '{other}' (known: silent, stuck, with an optional @<cpu>); ignored");
            ApFault::None
        }
    };
    let last = ids.len().saturating_sub(1);
    let faulty = match which {
        "" => Some(last),
        n => n.parse::<usize>().ok().filter(|&n| (1..=last).contains(&n)),
    };
    match faulty {
        Some(cpu) if fault != ApFault::None && ids.len() > 1 => {
            log::warn!("smp: apfault: cpu{cpu} will fail to start on purpose ({fault:?})");
            AP_FAULT.store(fault as u32, Ordering::Relaxed);
            FAULTY_AP.store(cpu as u32, Ordering::Relaxed);
        }
        None if fault != ApFault::None => {
            log::error!("smp: apfault: '{which}' is not an AP (1 to {last}); ignored")
        }
        _ => {}
    }
    PRESENT.store(present, Ordering::Relaxed);
    let start = cpu::rdtsc();
    match frames::trampoline_page() {
        // Installed even when no AP is to start: a CPU woken anyway (a
        // stray or broadcast STARTUP) then finds code that parks it.
        Some(page) => {
            let params = install_trampoline(page, &ids);
            if ids.len() > 1 {
                start_aps(&ids, page, params);
            }
        }
        None if ids.len() > 1 => {
            log::warn!("smp: no trampoline page below 1 MiB; running on the boot CPU alone")
        }
        None => {}
    }
    let us = crate::time::tsc_to_ns(cpu::rdtsc() - start) / 1000;
    log_cpu_map(&ids);
    log::info!("smp: {} of {present} CPUs online in {us} us", online_count());
}

/// One line: logical index -> APIC ID, for the CPUs that came online.
fn log_cpu_map(ids: &[u32]) {
    use core::fmt::Write;
    let mut line = String::new();
    for (i, id) in ids.iter().enumerate().filter(|&(i, _)| percpu::get(i as u32).online.load(Ordering::Acquire)) {
        let _ = write!(line, " {i}:{id}");
    }
    log::info!("smp: logical CPU:APIC ID{line}");
}

/// Copies the trampoline to `page` and writes its parameter block: the GDT,
/// the far pointers and the APIC-ID table. What only starting APs needs
/// (page tables, stacks, entry point) is added by [`start_aps`].
fn install_trampoline(page: u64, ids: &[u32]) -> &'static mut Params {
    let base = phys_to_virt(page);
    let code = ferrite_trampoline::code();
    // SAFETY: the page was reserved for this at boot and is direct-mapped;
    // the code is shorter than PARAMS_OFFSET (checked by the crate), and
    // Params fits the page (a constant assertion there).
    let params = unsafe {
        core::ptr::copy_nonoverlapping(code.as_ptr(), base as *mut u8, code.len());
        let p = (base + PARAMS_OFFSET as u64) as *mut Params;
        core::ptr::write_bytes(p, 0, 1);
        &mut *p
    };
    params.describe(page as u32);
    params.cpu_count = ids.len() as u32;
    for (i, &id) in ids.iter().enumerate() {
        params.cpus[i].apic_id = id;
        let initial = if i == 0 { state::ONLINE } else { state::NOT_STARTED };
        params.cpus[i].state.store(initial, Ordering::Relaxed);
        percpu::get(i as u32).boot_gate.store(GATE_OPEN, Ordering::Relaxed);
    }
    params
}

fn start_aps(ids: &[u32], page: u64, params: &mut Params) {
    let n = ids.len();
    let mut stack_tops = alloc::vec![0u64; n];
    for (i, top) in stack_tops.iter_mut().enumerate().skip(1) {
        match KernelStack::new(AP_STACK_SIZE) {
            Ok(stack) => {
                *top = stack.top();
                // The AP runs on it for the rest of its life.
                core::mem::forget(stack);
            }
            Err(e) => {
                log::error!("smp: no stack for cpu{i} ({e}); starting no APs");
                return;
            }
        }
    }
    let Some(tables) = TrampolineTables::new() else {
        log::error!("smp: no memory below 4 GiB for the trampoline's page tables; starting no APs");
        return;
    };

    params.cr3 = tables.root();
    params.entry = ap_entry as extern "C" fn(u64) -> ! as usize as u64;
    params.stacks = stack_tops.as_ptr() as u64;
    let f = cpu::features();
    params.cr4 = (Cr4Flags::PHYSICAL_ADDRESS_EXTENSION
        | if f.global_pages { Cr4Flags::PAGE_GLOBAL } else { Cr4Flags::empty() })
    .bits() as u32;
    params.efer = (EferFlags::LONG_MODE_ENABLE | if f.nx { EferFlags::NO_EXECUTE_ENABLE } else { EferFlags::empty() })
        .bits() as u32;
    PARAMS.store(params as *mut Params as u64, Ordering::Release);

    let silent = |id: &u32| ap_fault() == ApFault::Silent && *id == ids[FAULTY_AP.load(Ordering::Relaxed) as usize];
    let aps = || ids.iter().copied().skip(1).filter(|id| !silent(id));
    for id in aps() {
        send_init(id);
    }
    if !cpu::features().modern_init {
        crate::time::spin_ns(INIT_DELAY_NS);
    }
    let first_startup = cpu::timer_start();
    for id in aps() {
        apic::send(Icr::startup(id, page as u32));
    }
    let not_started = |i: usize| params.cpus[i].state.load(Ordering::Acquire) == state::NOT_STARTED;
    let waiting = || (1..n).filter(|&i| !silent(&ids[i])).any(not_started);
    let second_due = first_startup + ns_to_ticks(STARTUP_DELAY_NS);
    while waiting() && cpu::rdtsc() < second_due {
        core::hint::spin_loop();
    }
    for (i, &id) in ids.iter().enumerate().skip(1).filter(|(_, id)| !silent(id)) {
        if not_started(i) {
            apic::send(Icr::startup(id, page as u32));
        }
    }

    let deadline = cpu::rdtsc() + ns_to_ticks(BRINGUP_TIMEOUT_NS);
    while (online_count() as usize) < n && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    if online_count() as usize == n {
        BRINGUP_TICKS.store(cpu::timer_end() - first_startup, Ordering::Relaxed);
    }

    let mut missing = 0;
    for (i, &id) in ids.iter().enumerate().skip(1) {
        let gate = &percpu::get(i as u32).boot_gate;
        if gate.compare_exchange(GATE_OPEN, GATE_ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            continue; // it made it
        }
        missing += 1;
        match params.cpus[i].state.load(Ordering::Acquire) {
            state::NOT_STARTED => {
                log::error!("smp: cpu{i} (APIC ID {id}) not responding: it never ran the trampoline")
            }
            s => log::error!("smp: cpu{i} (APIC ID {id}) stuck: it reached {} but never came online", state::name(s)),
        }
    }
    let parked = params.parked.load(Ordering::Relaxed);
    if parked > 0 {
        log::info!("smp: {parked} CPU(s) outside the table parked themselves");
    }
    if missing == 0 {
        // Every AP is on the kernel's tables now: drop the identity map.
        tables.free();
        PARAMS.store(0, Ordering::Release);
    } else {
        log::warn!("smp: keeping the trampoline's page tables: a CPU that did not come online may still use them");
    }
    // The stack table must outlive any AP that is still on its way.
    core::mem::forget(stack_tops);
}

fn ns_to_ticks(ns: u64) -> u64 {
    ns * (crate::time::tsc_hz() / 1_000_000) / 1000
}

/// INIT (and, in xAPIC mode, the de-assert that older CPUs need).
fn send_init(apic_id: u32) {
    apic::send(Icr::init(apic_id));
    if !apic::is_x2apic() {
        apic::send(Icr::init_deassert(apic_id));
    }
}

/// Runs the INIT-SIPI sequence on a CPU that is not in the trampoline's
/// table (one `smp=` left out) and returns whether it parked itself within
/// `wait_ns`: the trampoline's defence against CPUs it does not know.
pub fn start_unlisted_cpu(apic_id: u32, wait_ns: u64) -> bool {
    let Some(page) = frames::trampoline_page() else { return false };
    // SAFETY: the page still holds the trampoline and its parameter block
    // (nothing else may use it); only the atomic counter is read.
    let params = unsafe { &*((phys_to_virt(page) + PARAMS_OFFSET as u64) as *const Params) };
    let before = params.parked.load(Ordering::Acquire);
    send_init(apic_id);
    crate::time::spin_ns(INIT_DELAY_NS);
    apic::send(Icr::startup(apic_id, page as u32));
    let start = cpu::rdtsc();
    while crate::time::tsc_to_ns(cpu::rdtsc() - start) < wait_ns {
        if params.parked.load(Ordering::Acquire) > before {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// Where an AP enters Rust, on its own kernel stack, still on the
/// trampoline's page tables.
extern "C" fn ap_entry(index: u64) -> ! {
    // SAFETY: the kernel's tables map everything the kernel uses (the
    // trampoline's share their upper half); this code runs from it.
    unsafe { Cr3::write(paging::kernel_root(), x86_64::registers::control::Cr3Flags::empty()) };
    let index = index as u32;
    let params = PARAMS.load(Ordering::Acquire) as *const Params;
    // SAFETY: PARAMS stays valid until every AP has claimed its gate (and
    // this one has not yet).
    let slot = unsafe { &(*params).cpus[index as usize] };
    percpu::install(index, slot.apic_id);
    cpu::init_control_registers();
    gdt::init_cpu();
    idt::load(true);
    crate::arch::syscall::init_cpu();
    apic::init_ap();
    program_nmi_pins(index);
    crate::sched::init_ap();
    let me = percpu::current();
    me.call_generation.store(call::generation(), Ordering::Relaxed);
    if ap_fault() == ApFault::Stuck && FAULTY_AP.load(Ordering::Relaxed) == index {
        // Simulated hang: wait until the BSP has given up on us.
        while me.boot_gate.load(Ordering::Acquire) == GATE_OPEN {
            core::hint::spin_loop();
        }
    }
    if me.boot_gate.compare_exchange(GATE_OPEN, GATE_ONLINE, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // The BSP gave up on us and said so; joining now would contradict it.
        power::halt_forever();
    }
    slot.state.store(state::ONLINE, Ordering::Release);
    mark_online(index);
    crate::sched::run_ap()
}
