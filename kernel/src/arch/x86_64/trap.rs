//! Trap dispatch: exceptions, interrupts, and the exception-fixup table.
//!
//! Entry: stub (build.rs) -> `trap_common` (trap.S) -> [`trap_dispatch`].
//!
//! Exceptions in the kernel are fatal unless the faulting instruction has an
//! entry in the fixup table (`.ex_table`, built from the probes in trap.S
//! and, later, the user-memory copy routines). A fatal exception prints the
//! vector, error code, RIP, RSP and, for page faults, CR2 with the decoded
//! error bits; a double fault whose CR2 lies in a stack guard page is
//! reported as a kernel stack overflow. Then the kernel panics, which powers
//! off with a failure status: never a silent reboot.
use super::idt::vector;
use super::{apic, pic};
use crate::percpu::cpu_index;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::Cr2;

/// The registers saved on every trap, in the order trap.S pushes them.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    // Pushed by the CPU.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

core::arch::global_asm!(include_str!(concat!(env!("OUT_DIR"), "/trap_stubs.S")));
/// Bits of a frame's vector slot above the vector number (trap.S):
/// the entry swapped GS, so the exit must swap it back;
pub const FRAME_SWAPPED_GS: u32 = 63;
/// the frame is a system call's (arch::syscall): dispatch it as one, and
/// return with `sysretq`.
pub const FRAME_SYSCALL: u32 = 62;

core::arch::global_asm!(
    include_str!("trap.S"),
    dispatch = sym trap_dispatch,
    smap = sym super::user::SMAP_ON,
    swapped_gs = const FRAME_SWAPPED_GS,
    syscall = const FRAME_SYSCALL,
);

impl TrapFrame {
    /// The trap came from user mode (ring 3).
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Short name and description of each exception vector.
pub fn exception_name(v: u8) -> (&'static str, &'static str) {
    const NAMES: [(&str, &str); 32] = [
        ("#DE", "divide error"),
        ("#DB", "debug"),
        ("NMI", "non-maskable interrupt"),
        ("#BP", "breakpoint"),
        ("#OF", "overflow"),
        ("#BR", "bound range exceeded"),
        ("#UD", "invalid opcode"),
        ("#NM", "device not available"),
        ("#DF", "double fault"),
        ("#CSO", "coprocessor segment overrun"),
        ("#TS", "invalid TSS"),
        ("#NP", "segment not present"),
        ("#SS", "stack-segment fault"),
        ("#GP", "general protection fault"),
        ("#PF", "page fault"),
        ("#15", "reserved exception 15"),
        ("#MF", "x87 floating-point error"),
        ("#AC", "alignment check"),
        ("#MC", "machine check"),
        ("#XM", "SIMD floating-point exception"),
        ("#VE", "virtualization exception"),
        ("#CP", "control protection exception"),
        ("#22", "reserved exception 22"),
        ("#23", "reserved exception 23"),
        ("#24", "reserved exception 24"),
        ("#25", "reserved exception 25"),
        ("#26", "reserved exception 26"),
        ("#27", "reserved exception 27"),
        ("#HV", "hypervisor injection exception"),
        ("#VC", "VMM communication exception"),
        ("#SX", "security exception"),
        ("#31", "reserved exception 31"),
    ];
    NAMES.get(usize::from(v)).copied().unwrap_or(("#??", "not an exception"))
}

bitflags::bitflags! {
    /// Page-fault error code bits (Intel SDM vol. 3, figure 4-12).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PageFaultError: u64 {
        const PROTECTION = 1 << 0;
        const WRITE = 1 << 1;
        const USER = 1 << 2;
        const RESERVED_BIT = 1 << 3;
        const INSTRUCTION_FETCH = 1 << 4;
        const PROTECTION_KEY = 1 << 5;
        const SHADOW_STACK = 1 << 6;
        const SGX = 1 << 15;
    }
}

impl core::fmt::Display for PageFaultError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.contains(Self::PROTECTION) { "protection violation" } else { "not present" })?;
        f.write_str(if self.contains(Self::INSTRUCTION_FETCH) {
            ", instruction fetch"
        } else if self.contains(Self::WRITE) {
            ", write"
        } else {
            ", read"
        })?;
        f.write_str(if self.contains(Self::USER) { ", user" } else { ", kernel" })?;
        for (flag, name) in [
            (Self::RESERVED_BIT, ", reserved bit set"),
            (Self::PROTECTION_KEY, ", protection key"),
            (Self::SHADOW_STACK, ", shadow stack"),
            (Self::SGX, ", SGX"),
        ] {
            if self.contains(flag) {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

/// One entry of the exception-fixup table (see trap.S).
#[repr(C)]
struct Fixup {
    /// The faulting instruction, or for [`FIXUP_CALL_TARGET`] the return
    /// address of the `call` whose target faulted.
    address: u64,
    /// Where to resume.
    continuation: u64,
    kind: u64,
}
const FIXUP_INSTRUCTION: u64 = 0;
const FIXUP_CALL_TARGET: u64 = 1;

unsafe extern "C" {
    static __ex_table_start: Fixup;
    static __ex_table_end: Fixup;
}

fn fixups() -> &'static [Fixup] {
    // SAFETY: the linker script brackets .ex_table with these symbols, and
    // the section holds only Fixup records (24 bytes, 8-aligned).
    unsafe {
        let start = &raw const __ex_table_start;
        let end = &raw const __ex_table_end;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The last fault that a fixup absorbed, for the code that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    pub vector: u8,
    pub error_code: u64,
    pub address: u64,
}

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

pub fn last_fixed_fault() -> FaultRecord {
    // Per CPU: probes run on every CPU at once, and each must see its own.
    let cpu = crate::percpu::current();
    FaultRecord {
        vector: cpu.last_fault_vector.load(Ordering::Relaxed) as u8,
        error_code: cpu.last_fault_error.load(Ordering::Relaxed),
        address: cpu.last_fault_address.load(Ordering::Relaxed),
    }
}

/// How many breakpoint exceptions this kernel has taken.
pub fn breakpoints() -> u64 {
    BREAKPOINTS.load(Ordering::Relaxed)
}

/// Resumes at a fixup if the fault has one. Only page and general-protection
/// faults from kernel mode qualify.
fn try_fixup(frame: &mut TrapFrame, cr2: u64) -> bool {
    let v = frame.vector as u8;
    if !(v == vector::PAGE_FAULT || v == vector::GENERAL_PROTECTION) || frame.cs & 3 != 0 {
        return false;
    }
    for f in fixups() {
        let hit = match f.kind {
            FIXUP_INSTRUCTION => f.address == frame.rip,
            FIXUP_CALL_TARGET => {
                // The callee faulted on its first fetch: nothing ran, so the
                // return address is still on top of the stack.
                v == vector::PAGE_FAULT
                    && PageFaultError::from_bits_retain(frame.error_code).contains(PageFaultError::INSTRUCTION_FETCH)
                    && frame.rip == cr2
                    // SAFETY: a kernel-mode fault's rsp is a mapped kernel
                    // stack: the CPU has just pushed this frame onto it.
                    && unsafe { *(frame.rsp as *const u64) } == f.address
            }
            _ => false,
        };
        if hit {
            if f.kind == FIXUP_CALL_TARGET {
                frame.rsp += 8;
            }
            frame.rip = f.continuation;
            let cpu = crate::percpu::current();
            cpu.last_fault_vector.store(u64::from(v), Ordering::Relaxed);
            cpu.last_fault_error.store(frame.error_code, Ordering::Relaxed);
            cpu.last_fault_address.store(if v == vector::PAGE_FAULT { cr2 } else { 0 }, Ordering::Relaxed);
            return true;
        }
    }
    false
}

/// Called by trap.S for every vector and every system call.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    // Interrupts went off on the way in (for irqtrace: from a context that
    // had them on).
    let interrupted_on = frame.rflags & x86_64::registers::rflags::RFlags::INTERRUPT_FLAG.bits() != 0;
    if interrupted_on {
        super::irqtrace::off(core::panic::Location::caller());
    }
    if frame.vector & (1 << FRAME_SYSCALL) != 0 {
        super::irqtrace::on();
        x86_64::instructions::interrupts::enable();
        crate::syscall::dispatch(frame);
        x86_64::instructions::interrupts::disable();
        super::irqtrace::off(core::panic::Location::caller());
        super::irqtrace::on();
        return;
    }
    // The low byte: trap.S keeps flags in the high bits.
    let v = frame.vector as u8;
    match v {
        vector::BREAKPOINT => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        }
        vector::NMI => {
            // An NMI may land anywhere, in the middle of a console write or
            // inside any lock's holder on this CPU: it takes no lock and
            // logs nothing itself. It is counted, and reported later from
            // an ordinary context (`report_nmis`). It returns straight to
            // what it interrupted, user mode included, with no scheduling.
            super::ipi::nmi();
            let cpu = crate::percpu::current();
            cpu.nmi_rip.store(frame.rip, Ordering::Relaxed);
            cpu.nmi_cs_flags.store(frame.cs << 32 | (frame.rflags & 0xffff_ffff), Ordering::Relaxed);
            cpu.nmis.fetch_add(1, Ordering::Release);
            return;
        }
        // A user program's fault ends its process, not the kernel. A machine
        // check is the hardware's, wherever it lands, and a double fault
        // is always the kernel's (it is an abort: the saved CS may say user
        // mode, but the CPU could not deliver a fault, which only a broken
        // kernel stack or IDT causes).
        0..vector::EXCEPTIONS if frame.is_from_user() && v != vector::MACHINE_CHECK && v != vector::DOUBLE_FAULT => {
            crate::proc::user_fault(frame, exception_name(v), Cr2::read_raw())
        }
        0..vector::EXCEPTIONS => {
            let cr2 = Cr2::read_raw();
            if !try_fixup(frame, cr2) {
                fatal_exception(frame, cr2);
            }
        }
        vector::TIMER => {
            apic::timer_interrupt();
            apic::end_of_interrupt();
            report_nmis();
            crate::sched::timer_interrupt();
            crate::sched::preempt_point();
        }
        vector::SPURIOUS => {} // no EOI for spurious APIC interrupts
        v if super::ipi::interrupt(v) => crate::sched::preempt_point(),
        v if (vector::PIC_BASE..vector::PIC_BASE + 16).contains(&v) => pic::interrupt(v - vector::PIC_BASE),
        v if (vector::ISA_BASE..vector::ISA_BASE + 16).contains(&v) => {
            super::ioapic::isa_interrupt(v - vector::ISA_BASE)
        }
        _ => {
            log::warn!("trap: unexpected interrupt vector {v:#x} on cpu{}", cpu_index());
            apic::end_of_interrupt();
        }
    }
    if frame.is_from_user() {
        crate::proc::before_user_return();
    }
    if interrupted_on {
        super::irqtrace::on();
    }
}

/// Logs the NMIs this CPU has taken since it last looked (an NMI handler
/// cannot log itself). Called from the timer interrupt and the idle loop.
pub fn report_nmis() {
    let cpu = crate::percpu::current();
    let taken = cpu.nmis.load(Ordering::Acquire);
    let reported = cpu.nmis_reported.load(Ordering::Relaxed);
    if taken != reported {
        cpu.nmis_reported.store(taken, Ordering::Relaxed);
        log::warn!(
            "trap: {} NMI(s) on cpu{}, the last at rip={:#x}",
            taken - reported,
            cpu_index(),
            cpu.nmi_rip.load(Ordering::Relaxed)
        );
    }
}

/// Reports an exception the kernel cannot survive, then panics.
fn fatal_exception(frame: &TrapFrame, cr2: u64) -> ! {
    let v = frame.vector as u8;
    let (mnemonic, name) = exception_name(v);
    let cpu = cpu_index();
    crate::console::emergency(|out| {
        let _ = writeln!(out, "EXCEPTION {mnemonic} ({name}) on cpu{cpu}, error code {:#x}", frame.error_code);
        let _ = writeln!(
            out,
            "  rip={:#018x} rsp={:#018x} rflags={:#x} cs={:#x} ss={:#x}",
            frame.rip, frame.rsp, frame.rflags, frame.cs, frame.ss
        );
        let _ = writeln!(
            out,
            "  rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}",
            frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp
        );
        if v == vector::PAGE_FAULT {
            let bits = PageFaultError::from_bits_retain(frame.error_code);
            let _ = writeln!(out, "  cr2={cr2:#018x} ({bits})");
        }
        if v == vector::DOUBLE_FAULT {
            // CR2 still holds the address of the page fault that could not
            // be delivered, if one caused this double fault.
            let _ = writeln!(out, "  cr2={cr2:#018x}");
            if let Some(stack) = crate::mem::stack::guard_page_owner(cr2) {
                let _ = writeln!(out, "  kernel stack overflow: cr2 is in the guard page of {stack}");
            }
        }
    });
    panic!("unhandled {mnemonic} ({name}) in the kernel at rip={:#x}", frame.rip);
}

unsafe extern "C" {
    fn probe_read_u8(addr: u64) -> u64;
    fn probe_write_u8(addr: u64, value: u8) -> u64;
    fn probe_call(addr: u64) -> u64;
}

/// Turns a probe's return value into the fault it took, if any.
fn probe_result(faulted: u64) -> Result<(), FaultRecord> {
    if faulted == 0 {
        Ok(())
    } else {
        Err(last_fixed_fault())
    }
}

/// Reads a byte at `addr`, reporting a page or protection fault instead of
/// dying of it.
///
/// # Safety
/// Reading `addr` must have no side effects that matter (no device
/// registers).
pub unsafe fn probe_read(addr: u64) -> Result<(), FaultRecord> {
    // SAFETY: the probe's only access has a fixup; the caller vouches for
    // the read itself.
    probe_result(unsafe { probe_read_u8(addr) })
}

/// Writes `value` at `addr`, reporting a fault instead of dying of it.
///
/// # Safety
/// If the write does not fault, it happens: `addr` must be memory the
/// caller may overwrite.
pub unsafe fn probe_write(addr: u64, value: u8) -> Result<(), FaultRecord> {
    // SAFETY: as for probe_read; the caller vouches for the write.
    probe_result(unsafe { probe_write_u8(addr, value) })
}

/// Calls the code at `addr` (which must return at once if it runs),
/// reporting a fault on its first instruction fetch instead of dying.
///
/// # Safety
/// If `addr` is executable, the code there runs: it must be a function of
/// the C ABI that takes no arguments and returns.
pub unsafe fn probe_exec(addr: u64) -> Result<(), FaultRecord> {
    // SAFETY: a fetch fault at the target is fixed up; the caller vouches
    // for the code if it runs.
    probe_result(unsafe { probe_call(addr) })
}
