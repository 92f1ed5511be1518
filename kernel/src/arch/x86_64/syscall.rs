//! The `syscall` instruction's entry and `sysretq` exit (SDM vol. 2,
//! SYSCALL and SYSRET; vol. 3, 5.8.8).
//!
//! `syscall` jumps to LSTAR in ring 0 with the user's RIP in RCX and RFLAGS
//! in R11, clears the RFLAGS bits in FMASK (IF, so nothing interrupts the
//! stack switch; TF, DF, AC and NT, which the user may have set), and
//! changes nothing else: RSP is still the user's stack and GS the user's
//! base. The entry swaps GS to the per-CPU block, parks the user RSP there,
//! switches to the running thread's kernel stack (its top, published per
//! CPU on every switch to a user thread), builds exactly the
//! [`TrapFrame`] an interrupt from user mode would have pushed at that same
//! spot, and joins trap.S's common path. So every kernel path that looks at
//! a user thread's registers (faults, thread start, exit) sees one layout,
//! whichever way it entered. trap.rs hands the frame to `syscall::dispatch`
//! with interrupts on: system calls are preemptible.
//!
//! trap.S's exit restores the frame and returns with `sysretq`, which loads
//! RIP from RCX and RFLAGS from R11. `sysretq` to a non-canonical RIP raises #GP
//! in ring 0 with the user's RSP already loaded on Intel CPUs; the
//! dispatcher never returns with a RIP outside user space (see
//! `syscall::dispatch`), and user space ends a page below the
//! non-canonical hole, so `syscall` itself can never produce one.
use super::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
use super::trap::{TrapFrame, FRAME_SWAPPED_GS, FRAME_SYSCALL};
use crate::percpu;
use x86_64::registers::model_specific::{Efer, EferFlags, KernelGsBase, LStar, Msr, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

/// The vector slot of a frame built by the syscall entry: trap.rs's
/// FRAME_SYSCALL bit (dispatch as a system call, return with `sysretq`) and
/// FRAME_SWAPPED_GS bit (the entry swapped GS). Its low byte, 0, is no
/// vector's: trap.rs looks at the FRAME_SYSCALL bit first.
pub const SYSCALL_FRAME: u64 = (1 << FRAME_SWAPPED_GS) | (1 << FRAME_SYSCALL);

core::arch::global_asm!(
    r#"
.section .text
.global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push {user_ss}
    push qword ptr gs:[{user_rsp}]
    push r11                        /* user RFLAGS */
    push {user_cs}
    push rcx                        /* user RIP */
    push 0                          /* error code */
    mov rcx, {frame_mark}
    push rcx                        /* vector slot */
    jmp trap_save
"#,
    user_rsp = const percpu::USER_RSP,
    kernel_rsp = const percpu::KERNEL_RSP,
    user_ss = const USER_DATA.0,
    user_cs = const USER_CODE.0,
    frame_mark = const SYSCALL_FRAME,
);

unsafe extern "C" {
    fn syscall_entry();
    fn syscall_compat_entry();
}

core::arch::global_asm!(
    r#"
.section .text
/* A `syscall` from compatibility mode (AMD CPUs only; Intel's raise #UD).
 * Ferrite has no 32-bit code segment, so this cannot happen; should it, the
 * entry builds the usual frame, marked as an invalid opcode from user mode,
 * and the fault path ends the process. It never returns with sysret. */
.global syscall_compat_entry
syscall_compat_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push {user_ss}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push 0
    mov rcx, {mark}
    push rcx
    jmp trap_save
"#,
    user_rsp = const percpu::USER_RSP,
    kernel_rsp = const percpu::KERNEL_RSP,
    user_ss = const USER_DATA.0,
    user_cs = const USER_CODE.0,
    mark = const super::idt::vector::INVALID_OPCODE as u64 | (1 << FRAME_SWAPPED_GS),
);

/// RFLAGS bits `syscall` clears on entry.
fn entry_mask() -> RFlags {
    RFlags::INTERRUPT_FLAG
        | RFlags::TRAP_FLAG
        | RFlags::DIRECTION_FLAG
        | RFlags::ALIGNMENT_CHECK
        | RFlags::NESTED_TASK
        | RFlags::IOPL_HIGH
        | RFlags::IOPL_LOW
}

/// IA32_CSTAR, and IA32_SYSENTER_CS, _ESP and _EIP (SDM vol. 4, table
/// 2-2).
const IA32_CSTAR: u32 = 0xc000_0083;
const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;

/// Turns on `syscall`/`sysret` on this CPU: EFER.SCE, the selectors
/// (STAR), the entry points (LSTAR, and CSTAR for compatibility mode) and
/// the flag mask (FMASK); and turns `sysenter` off (SYSENTER_CS 0). Also clears
/// the user GS base that the first `swapgs` to user mode will load.
pub fn init_cpu() {
    if let Err(e) = Star::write(USER_CODE, USER_DATA, KERNEL_CODE, KERNEL_DATA) {
        panic!("syscall: the GDT's selectors do not suit STAR: {e:?}");
    }
    LStar::write(VirtAddr::new(syscall_entry as unsafe extern "C" fn() as usize as u64));
    SFMask::write(entry_mask());
    // SYSENTER_CS 0: `sysenter` raises #GP (SDM vol. 2, SYSENTER), and its
    // stack and entry point are nothing; whatever the firmware left there.
    // SAFETY: these MSRs only matter to `sysenter`, which they now refuse.
    // CSTAR: the compatibility-mode `syscall` entry.
    unsafe {
        Msr::new(IA32_CSTAR).write(syscall_compat_entry as unsafe extern "C" fn() as usize as u64);
        Msr::new(IA32_SYSENTER_CS).write(0);
        Msr::new(IA32_SYSENTER_ESP).write(0);
        Msr::new(IA32_SYSENTER_EIP).write(0);
    }
    KernelGsBase::write(VirtAddr::zero());
    // SAFETY: SCE only makes `syscall` legal; its entry point is set above.
    unsafe { Efer::update(|e| e.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// The user frame of a thread whose kernel stack ends at `top`: where
/// syscall entry and interrupts from user mode put it.
pub fn user_frame_at(top: u64) -> *mut TrapFrame {
    (top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame
}
