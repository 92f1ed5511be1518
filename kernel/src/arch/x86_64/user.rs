//! What only x86 knows about user mode: entering it for the first time,
//! the FPU/SSE register state of user threads, and the routine that copies
//! from user memory.
//!
//! **FPU, SSE and AVX state.** The kernel is built without SSE and never
//! touches the x87, SSE or AVX registers, so they always hold the state of
//! the last user thread that ran on the CPU. A user thread's state is
//! saved whenever it is switched out, since it may next run on another
//! CPU, and restored only when the CPU's registers do not hold it already:
//! a thread that runs again on the CPU it left, with no other user thread
//! in between (a kernel or idle thread does not count), costs no restore.
//!
//! With XSAVE (CPUID.01H:ECX[26]) the kernel enables, in XCR0, x87, SSE,
//! AVX and the three AVX-512 components wherever the CPU offers them, and
//! saves with the best form the CPU has: XSAVEC (compacted, skips
//! components in their initial state), else XSAVEOPT (skips unmodified
//! ones), else XSAVE; restores with XRSTOR. Each thread's area is as large
//! as CPUID leaf 0Dh says for those components (832 bytes for AVX, about
//! 2.7 KiB with AVX-512), 64-byte aligned, on the heap (charged to the
//! thread's process). Without XSAVE: FXSAVE and FXRSTOR, 512 bytes, and no
//! AVX (its instructions are invalid opcodes then).
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

/// How this machine saves a thread's register state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveForm {
    Fxsave,
    Xsave,
    Xsaveopt,
    Xsavec,
}

/// The form, the area's size and XCR0, chosen once on the boot CPU.
#[derive(Debug, Clone, Copy)]
pub struct FpuLayout {
    pub form: SaveForm,
    pub size: usize,
    pub xcr0: u64,
}

static LAYOUT: spin::Once<FpuLayout> = spin::Once::new();

/// XCR0 components (SDM vol. 1, 13.1).
const XCR0_X87: u64 = 1 << 0;
const XCR0_SSE: u64 = 1 << 1;
const XCR0_AVX: u64 = 1 << 2;
/// Opmask, ZMM_Hi256 and Hi16_ZMM: all three or none.
const XCR0_AVX512: u64 = 0b111 << 5;

/// The components the kernel manages, of those `supported`.
fn wanted_xcr0(supported: u64) -> u64 {
    let mut xcr0 = XCR0_X87 | XCR0_SSE;
    if supported & XCR0_AVX != 0 {
        xcr0 |= XCR0_AVX;
        if supported & XCR0_AVX512 == XCR0_AVX512 {
            xcr0 |= XCR0_AVX512;
        }
    }
    xcr0
}

/// Sets XCR0 on this CPU (CR4.OSXSAVE is on), and on the boot CPU picks the
/// save form and the area's size, which CPUID gives for the XCR0 in force.
pub fn init_xcr0() {
    let f = super::cpu::features();
    let xcr0 = wanted_xcr0(f.xcr0_supported);
    // SAFETY: CR4.OSXSAVE is set (cpu::init_control_registers) and `xcr0`
    // holds only supported components, x87 included, in valid groups.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nomem, nostack))
    };
    LAYOUT.call_once(|| {
        let (form, size) = if f.xsavec {
            (SaveForm::Xsavec, core::arch::x86_64::__cpuid_count(0xd, 1).ebx)
        } else if f.xsaveopt {
            (SaveForm::Xsaveopt, core::arch::x86_64::__cpuid_count(0xd, 0).ebx)
        } else {
            (SaveForm::Xsave, core::arch::x86_64::__cpuid_count(0xd, 0).ebx)
        };
        FpuLayout { form, size: size as usize, xcr0 }
    });
}

/// How thread state is saved here (FXSAVE if [`init_xcr0`] never ran).
pub fn fpu_layout() -> FpuLayout {
    *LAYOUT.call_once(|| FpuLayout { form: SaveForm::Fxsave, size: FXSAVE_SIZE, xcr0: XCR0_X87 | XCR0_SSE })
}

/// A thread's saved x87/SSE/AVX registers: an FXSAVE or XSAVE area on the
/// heap, 64-byte aligned, of [`FpuLayout::size`] bytes.
pub struct FpuState {
    area: core::ptr::NonNull<u8>,
    layout: core::alloc::Layout,
}

// SAFETY: the area is owned memory with no thread affinity; who may touch
// it is the scheduler's business (proc::thread).
unsafe impl Send for FpuState {}

const FXSAVE_SIZE: usize = 512;
/// x87 control word after FNINIT: all exceptions masked, 64-bit precision.
const FCW_DEFAULT: u16 = 0x037f;
/// MXCSR at reset: all SIMD exceptions masked, round to nearest.
const MXCSR_DEFAULT: u32 = 0x1f80;
const FCW_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;
/// The XSAVE header: XSTATE_BV, then XCOMP_BV (SDM vol. 1, 13.4.2).
const XSTATE_BV_OFFSET: usize = 512;
const XCOMP_BV_OFFSET: usize = 520;
/// XCOMP_BV bit 63: the area is in the compacted form.
const XCOMP_COMPACTED: u64 = 1 << 63;

impl FpuState {
    /// The heap bytes an area takes, for the thread's charge.
    pub fn bytes() -> u64 {
        fpu_layout().size as u64
    }

    /// The state a new thread starts with: what FNINIT and a reset MXCSR
    /// give, every vector register zero. None if the heap has no room.
    pub fn initial() -> Option<Self> {
        let fpu = fpu_layout();
        let layout = core::alloc::Layout::from_size_align(fpu.size, 64).ok()?;
        // SAFETY: a non-zero size.
        let area = core::ptr::NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) })?;
        // SAFETY: the area is ours, `fpu.size` (>= 512, or 576 with the
        // XSAVE header) bytes long.
        unsafe {
            let at = area.as_ptr();
            at.add(FCW_OFFSET).cast::<u16>().write_unaligned(FCW_DEFAULT);
            at.add(MXCSR_OFFSET).cast::<u32>().write_unaligned(MXCSR_DEFAULT);
            if fpu.form != SaveForm::Fxsave {
                // x87 and SSE from the area (the values above); the rest in
                // their initial state (zero).
                at.add(XSTATE_BV_OFFSET).cast::<u64>().write(XCR0_X87 | XCR0_SSE);
                if fpu.form == SaveForm::Xsavec {
                    at.add(XCOMP_BV_OFFSET).cast::<u64>().write(XCOMP_COMPACTED | fpu.xcr0);
                }
            }
        }
        Some(FpuState { area, layout })
    }
}

impl Drop for FpuState {
    fn drop(&mut self) {
        // SAFETY: allocated in `initial` with this layout.
        unsafe { alloc::alloc::dealloc(self.area.as_ptr(), self.layout) };
    }
}

/// Saves this CPU's x87/SSE/AVX registers into `state`.
///
/// # Safety
/// `state` must be valid and used by nothing else meanwhile.
pub unsafe fn fpu_save(state: *mut FpuState) {
    // SAFETY: (of the caller) the area is ours; it is as large and as
    // aligned as the form needs; EDX:EAX all ones asks for every component
    // XCR0 enables.
    unsafe {
        let at = (*state).area.as_ptr();
        match fpu_layout().form {
            SaveForm::Fxsave => core::arch::asm!("fxsave64 [{}]", in(reg) at, options(nostack, preserves_flags)),
            SaveForm::Xsave => {
                core::arch::asm!("xsave64 [{}]", in(reg) at, in("eax") -1, in("edx") -1, options(nostack, preserves_flags))
            }
            SaveForm::Xsaveopt => {
                core::arch::asm!("xsaveopt64 [{}]", in(reg) at, in("eax") -1, in("edx") -1, options(nostack, preserves_flags))
            }
            SaveForm::Xsavec => {
                core::arch::asm!("xsavec64 [{}]", in(reg) at, in("eax") -1, in("edx") -1, options(nostack, preserves_flags))
            }
        }
    }
}

/// Loads this CPU's x87/SSE/AVX registers from `state`.
///
/// # Safety
/// `state` must hold a state saved by [`fpu_save`] or made by
/// [`FpuState::initial`] (a malformed area would fault).
pub unsafe fn fpu_restore(state: *const FpuState) {
    // SAFETY: as above; the kernel itself uses none of these registers.
    unsafe {
        let at = (*state).area.as_ptr();
        match fpu_layout().form {
            SaveForm::Fxsave => core::arch::asm!("fxrstor64 [{}]", in(reg) at, options(nostack, preserves_flags)),
            _ => {
                core::arch::asm!("xrstor64 [{}]", in(reg) at, in("eax") -1, in("edx") -1, options(nostack, preserves_flags))
            }
        }
    }
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
