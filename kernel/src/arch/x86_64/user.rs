//! What only x86 knows about user mode: entering it for the first time,
//! the FPU/SSE register state of user threads, and the routine that copies
//! from user memory.
//!
//! **FPU/SSE state.** The kernel is built without SSE and never touches
//! the x87/SSE registers, so they always hold the state of the last user
//! thread that ran on the CPU. A user thread's state is saved (`fxsave64`)
//! whenever it is switched out, since it may next run on another CPU. It is
//! restored (`fxrstor64`) only when the CPU's registers do not hold it
//! already: a thread that runs again on the CPU it left, with no other
//! user thread in between (a kernel or idle thread does not count), costs
//! no restore. AVX state is not managed (XCR0 is left at x87|SSE), so AVX
//! instructions fault as invalid opcodes in user mode.
//!
//! **User memory.** With SMAP on, the kernel faults on any access to a
//! user page unless RFLAGS.AC is set; [`copy_from_user`] (and
//! [`copy_to_user`], the same routine the other way) sets it for the
//! one instruction that copies (`stac`/`clac`), and that instruction has an
//! exception-table entry, so a page that is not mapped (or not readable)
//! makes the copy fail instead of the kernel. Callers check that the range
//! lies in user space first: the copy itself would happily read kernel
//! memory.
use super::trap::TrapFrame;
use core::sync::atomic::AtomicBool;

/// SMAP is on: trap.S and the copy routine execute `clac`/`stac` only
/// then (both are invalid opcodes on CPUs without SMAP).
pub static SMAP_ON: AtomicBool = AtomicBool::new(false);

/// The FXSAVE area: x87, MMX and SSE state (SDM vol. 1, 10.5.1).
#[repr(C, align(16))]
pub struct FpuState([u8; FXSAVE_SIZE]);

const FXSAVE_SIZE: usize = 512;
/// x87 control word after FNINIT: all exceptions masked, 64-bit precision.
const FCW_DEFAULT: u16 = 0x037f;
/// MXCSR at reset: all SIMD exceptions masked, round to nearest.
const MXCSR_DEFAULT: u32 = 0x1f80;
const FCW_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;

impl FpuState {
    /// The state a new thread starts with: what FNINIT and a reset MXCSR
    /// give.
    pub fn initial() -> Self {
        let mut area = [0u8; FXSAVE_SIZE];
        area[FCW_OFFSET..FCW_OFFSET + 2].copy_from_slice(&FCW_DEFAULT.to_le_bytes());
        area[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&MXCSR_DEFAULT.to_le_bytes());
        FpuState(area)
    }
}

/// Saves this CPU's FPU/SSE registers into `state`.
///
/// # Safety
/// `state` must be valid for writes and used by nothing else meanwhile.
pub unsafe fn fpu_save(state: *mut FpuState) {
    // SAFETY: a 512-byte, 16-aligned area the caller lends us.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) state, options(nostack, preserves_flags)) };
}

/// Loads this CPU's FPU/SSE registers from `state`.
///
/// # Safety
/// `state` must hold a state saved by [`fpu_save`] or made by
/// [`FpuState::initial`] (reserved MXCSR bits set would fault).
pub unsafe fn fpu_restore(state: *const FpuState) {
    // SAFETY: as above; the kernel itself uses none of these registers.
    unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) state, options(nostack, preserves_flags)) };
}

core::arch::global_asm!(
    r#"
.section .text
/* enter_user(frame): switch to the frame (at the top of this thread's
 * kernel stack) and return through it to user mode. */
.global enter_user_frame
enter_user_frame:
    cli
    mov rsp, rdi
    jmp trap_return

/* copy_user_bytes(dst, src, len) -> 0, or 1 if the copy faulted; either
 * side may be the user's. */
.global copy_user_bytes
copy_user_bytes:
    mov rcx, rdx
    xor eax, eax
    cmp byte ptr [rip + {smap}], 0
    je 1f
    stac
1:  rep movsb
    cmp byte ptr [rip + {smap}], 0
    je 2f
    clac
2:  ret
copy_user_fault:
    cmp byte ptr [rip + {smap}], 0
    je 3f
    clac
3:  mov eax, 1
    ret

.pushsection .ex_table, "a"
    .quad 1b, copy_user_fault, 0
.popsection
"#,
    smap = sym SMAP_ON,
);

unsafe extern "C" {
    fn enter_user_frame(frame: *mut TrapFrame) -> !;
    fn copy_user_bytes(dst: *mut u8, src: u64, len: u64) -> u64;
}

/// Leaves for user mode through `frame`, which must lie at the top of the
/// current thread's kernel stack (where the CPU and the syscall entry put
/// user frames: see `syscall::user_frame_at`), so that the stack is empty
/// once the thread is in user mode.
///
/// # Safety
/// `frame` must describe user mode: user selectors, a user RIP and RSP,
/// RFLAGS with IF set and IOPL 0, and `syscall::SYSCALL_FRAME` in its
/// vector slot (it leaves like a system call: GS swapped to the user's, then
/// `sysretq`). Everything below it on the stack is abandoned.
pub unsafe fn enter(frame: *mut TrapFrame) -> ! {
    // SAFETY: the caller's promise; trap_return restores the frame and
    // iretq leaves ring 0.
    unsafe { enter_user_frame(frame) }
}

/// Copies `dst.len()` bytes from user address `src` into `dst`. Returns
/// false, with `dst` partly written, if a page of the source is not mapped
/// readable for user mode.
///
/// # Safety
/// `src..src + dst.len()` must lie in user space (checked by the caller):
/// the routine does not check, and would read kernel memory.
pub unsafe fn copy_from_user(dst: &mut [u8], src: u64) -> bool {
    // SAFETY: `dst` is ours to write; a fault on the source is fixed up.
    unsafe { copy_user_bytes(dst.as_mut_ptr(), src, dst.len() as u64) == 0 }
}

/// Copies `src` to user address `dst`. Returns false, with the destination
/// partly written, if a page of it is not mapped writable for user mode.
///
/// # Safety
/// `dst..dst + src.len()` must lie in user space (checked by the caller):
/// the routine does not check, and would write kernel memory.
pub unsafe fn copy_to_user(dst: u64, src: &[u8]) -> bool {
    // SAFETY: `src` is ours to read; a fault on the destination is fixed
    // up (the routine is the same either way: one `rep movsb`).
    unsafe { copy_user_bytes(dst as *mut u8, src.as_ptr() as u64, src.len() as u64) == 0 }
}
