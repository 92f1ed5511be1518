//! The `syscall` instruction's entry and `sysretq` exit (SDM vol. 2,
//! SYSCALL and SYSRET; vol. 3, 5.8.8).
//!
//! `syscall` jumps to LSTAR in ring 0 with the user's RIP in RCX and RFLAGS
//! in R11, clears the RFLAGS bits in FMASK (IF, so nothing interrupts the
//! stack switch; TF, DF, AC and NT, which the user may have set), and
//! changes nothing else: RSP is still the user's stack and GS the user's
//! base. The entry swaps GS to the per-CPU block, parks the user RSP there,
//! switches to the running thread's kernel stack (its top, published per
//! CPU on every switch to a user thread), and builds exactly the
//! [`TrapFrame`] an interrupt from user mode would have pushed at that same
//! spot. So every kernel path that looks at a user thread's registers
//! (faults, thread start, exit) sees one layout, whichever way it entered.
//! Interrupts come back on for the handler: system calls are preemptible.
//!
//! The exit restores the frame and returns with `sysretq`, which loads RIP
//! from RCX and RFLAGS from R11. `sysretq` to a non-canonical RIP raises #GP
//! in ring 0 with the user's RSP already loaded on Intel CPUs; the
//! dispatcher never returns with a RIP outside user space (see
//! `syscall::dispatch`), and user space ends a page below the
//! non-canonical hole, so `syscall` itself can never produce one.
use super::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
use super::trap::TrapFrame;
use crate::percpu;
use x86_64::registers::model_specific::{Efer, EferFlags, KernelGsBase, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

/// The vector slot of a frame built by the syscall entry: no interrupt
/// vector (they stop at 255), with trap.S's SWAPPED_GS bit set because the
/// entry swapped GS.
pub const SYSCALL_FRAME: u64 = (1 << 63) | 0x100;

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
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    sti
    call {dispatch}
    cli
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    mov rcx, [rsp + 16]             /* RIP, checked to lie in user space */
    mov r11, [rsp + 32]             /* RFLAGS */
    mov rsp, [rsp + 40]             /* the user's stack */
    swapgs
    sysretq
"#,
    user_rsp = const percpu::USER_RSP,
    kernel_rsp = const percpu::KERNEL_RSP,
    user_ss = const USER_DATA.0,
    user_cs = const USER_CODE.0,
    frame_mark = const SYSCALL_FRAME,
    dispatch = sym crate::syscall::dispatch,
);

unsafe extern "C" {
    fn syscall_entry();
}

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

/// Turns on `syscall`/`sysret` on this CPU: EFER.SCE, the selectors
/// (STAR), the entry point (LSTAR) and the flag mask (FMASK). Also clears
/// the user GS base that the first `swapgs` to user mode will load.
pub fn init_cpu() {
    if let Err(e) = Star::write(USER_CODE, USER_DATA, KERNEL_CODE, KERNEL_DATA) {
        panic!("syscall: the GDT's selectors do not suit STAR: {e:?}");
    }
    LStar::write(VirtAddr::new(syscall_entry as unsafe extern "C" fn() as usize as u64));
    SFMask::write(entry_mask());
    KernelGsBase::write(VirtAddr::zero());
    // SAFETY: SCE only makes `syscall` legal; its entry point is set above.
    unsafe { Efer::update(|e| e.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// The user frame of a thread whose kernel stack ends at `top`: where
/// syscall entry and interrupts from user mode put it.
pub fn user_frame_at(top: u64) -> *mut TrapFrame {
    (top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame
}
