//! Per-CPU data, reached through the GS base.
//!
//! Each CPU's [`PerCpu`] block sits in a static array, padded to a cache
//! line so that one CPU's writes never bounce another's line. A CPU writes
//! its GS base once, first thing (the boot CPU in `kernel_main`, an AP in
//! `ap_entry`), so [`current`] and [`cpu_index`] are single GS-relative
//! loads from then on. Fields are atomics: other CPUs read them (statistics,
//! the panic path), and a CPU's own writes need no lock.
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use x86_64::registers::model_specific::GsBase;
use x86_64::VirtAddr;

/// Most CPUs Ferrite runs on (the trampoline's table holds as many).
pub const MAX_CPUS: usize = ferrite_trampoline::MAX_CPUS;

#[repr(C)]
pub struct PerCpu {
    /// This block's own address: `current()` reads it through GS.
    self_addr: AtomicU64,
    /// Logical CPU index (0 is the boot CPU).
    index: AtomicU32,
    /// Local APIC ID (not the index: IDs have gaps).
    apic_id: AtomicU32,
    pub online: AtomicBool,
    /// Local APIC timer interrupts taken.
    pub timer_ticks: AtomicU64,
    /// PING IPIs this CPU has taken (the benchmark's round trip).
    pub pings: AtomicU64,
    /// IPIs this CPU sent and received.
    pub ipis_sent: AtomicU64,
    pub ipis_received: AtomicU64,
    /// Generation of the last cross-CPU call this CPU ran (smp::call).
    pub call_generation: AtomicU64,
    /// Bring-up handshake: claimed by the AP when it comes online, or by
    /// the BSP when it gives up on it (smp.rs).
    pub boot_gate: AtomicU32,
    /// Last TLB-shootdown request this CPU acknowledged (tlb.rs).
    pub tlb_generation: AtomicU64,
    /// Last TLB-shootdown request addressed to this CPU (tlb.rs).
    pub tlb_request: AtomicU64,
    /// TLB-shootdown requests this CPU has carried out (tlb.rs).
    pub tlb_served: AtomicU64,
    /// The last fault a fixup absorbed on this CPU (trap.rs).
    pub last_fault_vector: AtomicU64,
    pub last_fault_error: AtomicU64,
    pub last_fault_address: AtomicU64,
    /// The running user thread's kernel stack top: where `syscall` entry
    /// switches to ([`KERNEL_RSP`], read by syscall.S).
    pub kernel_rsp: AtomicU64,
    /// The user stack pointer, parked by syscall entry while it switches
    /// stacks ([`USER_RSP`]).
    pub user_rsp: AtomicU64,
    /// This CPU's TSS (gdt.rs), for its RSP0.
    pub tss: AtomicU64,
    /// The user address space whose page tables this CPU has loaded (null:
    /// the kernel's own). Kept across switches to kernel threads, which
    /// run in any address space (mem::aspace).
    pub loaded_aspace: AtomicPtr<crate::mem::aspace::AddressSpace>,
    /// The user thread whose FPU/SSE state this CPU's registers hold (its
    /// ID; 0: none), so that switching back to it restores nothing.
    pub fpu_owner: AtomicU64,
    /// A user thread runs here (of `loaded_aspace`); false while a kernel
    /// thread runs with it loaded lazily (mem::aspace).
    pub user_running: AtomicBool,
    /// The generation of `loaded_aspace` that this CPU's TLB reflects.
    pub tlb_generation_seen: AtomicU64,
    /// NMIs taken, how many of them have been logged, and where the last
    /// one landed (trap.rs: the handler itself may not log).
    pub nmis: AtomicU64,
    pub nmis_reported: AtomicU64,
    pub nmi_rip: AtomicU64,
    /// The CS and RFLAGS the last NMI interrupted (user or kernel mode,
    /// interrupts on or off), for the hang reports.
    pub nmi_cs_flags: AtomicU64,
    /// Interrupts-off tracing (arch::irqtrace): since when (0: not off, or
    /// not traced) and from where, and the longest stretch and its start.
    pub irq_off_since: AtomicU64,
    pub irq_off_from: AtomicU64,
    pub irq_off_max: AtomicU64,
    pub irq_off_max_from: AtomicU64,
    /// The running thread (a copy of the scheduler's `current`, the
    /// CPU's own reference): read with one GS-relative load, so that a
    /// thread preempted and moved in the middle cannot read another CPU's
    /// ([`current_thread`]).
    pub current_thread: AtomicU64,
    /// Preemption-disabling guards held on this CPU (sched::PreemptGuard),
    /// moved by single GS-relative `inc`/`dec` instructions for the same
    /// reason ([`preempt_disable`]).
    pub preempt_count: AtomicU32,
}

/// Offsets of the fields syscall.S reaches through GS.
pub const KERNEL_RSP: usize = offset_of!(PerCpu, kernel_rsp);
pub const USER_RSP: usize = offset_of!(PerCpu, user_rsp);

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            self_addr: AtomicU64::new(0),
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            timer_ticks: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            ipis_sent: AtomicU64::new(0),
            ipis_received: AtomicU64::new(0),
            call_generation: AtomicU64::new(0),
            boot_gate: AtomicU32::new(0),
            tlb_generation: AtomicU64::new(0),
            tlb_request: AtomicU64::new(0),
            tlb_served: AtomicU64::new(0),
            last_fault_vector: AtomicU64::new(0),
            last_fault_error: AtomicU64::new(0),
            last_fault_address: AtomicU64::new(0),
            kernel_rsp: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            tss: AtomicU64::new(0),
            loaded_aspace: AtomicPtr::new(core::ptr::null_mut()),
            fpu_owner: AtomicU64::new(0),
            user_running: AtomicBool::new(false),
            tlb_generation_seen: AtomicU64::new(0),
            nmis: AtomicU64::new(0),
            nmis_reported: AtomicU64::new(0),
            nmi_rip: AtomicU64::new(0),
            nmi_cs_flags: AtomicU64::new(0),
            irq_off_since: AtomicU64::new(0),
            irq_off_from: AtomicU64::new(0),
            irq_off_max: AtomicU64::new(0),
            irq_off_max_from: AtomicU64::new(0),
            current_thread: AtomicU64::new(0),
            preempt_count: AtomicU32::new(0),
        }
    }

    pub fn index(&self) -> u32 {
        self.index.load(Ordering::Relaxed)
    }

    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }
}

static CPUS: [CachePadded<PerCpu>; MAX_CPUS] = [const { CachePadded::new(PerCpu::new()) }; MAX_CPUS];

/// The block of CPU `index` (for other CPUs: statistics, IPIs).
pub fn get(index: u32) -> &'static PerCpu {
    &CPUS[index as usize]
}

/// Makes `index`'s block this CPU's: sets its identity and the GS base.
/// Called once per CPU, before anything reads [`current`].
pub fn install(index: u32, apic_id: u32) {
    let cpu = get(index);
    cpu.self_addr.store(cpu as *const PerCpu as u64, Ordering::Relaxed);
    cpu.index.store(index, Ordering::Relaxed);
    cpu.apic_id.store(apic_id, Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(cpu));
}

/// Records the APIC ID of the boot CPU once the local APIC can tell it.
pub fn set_apic_id(apic_id: u32) {
    current().apic_id.store(apic_id, Ordering::Relaxed);
}

/// This CPU's block.
#[inline]
pub fn current() -> &'static PerCpu {
    let addr: u64;
    // SAFETY: GS points at this CPU's block (install runs first on every
    // CPU), whose first field is its own address.
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) addr, off = const offset_of!(PerCpu, self_addr),
            options(nostack, readonly, preserves_flags));
        &*(addr as *const PerCpu)
    }
}

/// This CPU's logical index: one GS-relative load.
#[inline]
pub fn cpu_index() -> u32 {
    let index: u32;
    // SAFETY: as in current().
    unsafe {
        core::arch::asm!("mov {:e}, gs:[{off}]", out(reg) index, off = const offset_of!(PerCpu, index),
            options(nostack, readonly, preserves_flags));
    }
    index
}

/// The running thread's pointer (0 before the scheduler starts): one load,
/// which a migration cannot split.
#[inline]
pub fn current_thread() -> u64 {
    let p: u64;
    // SAFETY: as in current().
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) p, off = const offset_of!(PerCpu, current_thread),
            options(nostack, readonly, preserves_flags));
    }
    p
}

/// Counts a preemption guard on the CPU this runs on: one instruction, so
/// it lands on the CPU it was taken on even if the thread is preempted
/// right before or after (then its count moved with the instruction).
#[inline]
pub fn preempt_disable() {
    // SAFETY: increments this CPU's own counter; interrupts cannot split
    // one instruction, and no other CPU writes it.
    unsafe {
        core::arch::asm!("inc dword ptr gs:[{off}]", off = const offset_of!(PerCpu, preempt_count),
            options(nostack));
    }
}

/// Drops a preemption guard; true if it was this CPU's last one.
#[inline]
pub fn preempt_enable() -> bool {
    let zero: u8;
    // SAFETY: as in preempt_disable.
    unsafe {
        core::arch::asm!("dec dword ptr gs:[{off}]", "setz {z}", off = const offset_of!(PerCpu, preempt_count),
            z = out(reg_byte) zero, options(nostack));
    }
    zero != 0
}
