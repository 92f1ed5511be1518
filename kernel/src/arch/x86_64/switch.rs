//! The context switch: a few instructions that save the callee-saved
//! registers on the old stack, swap stack pointers, and restore them from
//! the new one. Everything else a thread needs survives in its own stack
//! frames (the caller-saved registers are the compiler's to save; the
//! kernel uses no FPU/SSE state).
//!
//! A new thread's stack is laid out so that the first switch to it
//! "returns" into [`thread_entry`]'s assembly prologue, which calls the
//! scheduler's start routine with the interrupt flag still clear.
core::arch::global_asm!(
    r#"
.section .text
.global switch_context
switch_context:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

.global thread_entry_trampoline
thread_entry_trampoline:
    /* rsp is 16-aligned here (see initial_stack); a call keeps the ABI. */
    xor ebp, ebp
    call {start}
    ud2
"#,
    start = sym crate::sched::thread_start,
);

unsafe extern "C" {
    /// Saves the current context, storing its stack pointer in `*save`,
    /// and resumes the context whose stack pointer is `load`.
    pub fn switch_context(save: *mut u64, load: u64);
    fn thread_entry_trampoline();
}

/// Callee-saved registers pushed by `switch_context`.
const SAVED_REGISTERS: usize = 6;

/// Prepares a fresh stack whose top is `top` so that switching to the
/// returned stack pointer starts the thread. Returns the stack pointer.
///
/// # Safety
/// `top` must be the 16-aligned top of a mapped, writable stack that
/// nothing else uses.
pub unsafe fn initial_stack(top: u64) -> u64 {
    // [r15 r14 r13 r12 rbx rbp] [return address] [pad]: after `ret` pops
    // the return address, rsp = top - 8, so the trampoline's `call` pushes
    // to a 16-aligned slot, as the ABI wants at function entry (rsp + 8
    // aligned).
    let frame = (top - 8) as *mut u64;
    let sp = frame as u64 - 8 * (SAVED_REGISTERS as u64 + 1);
    // SAFETY: all writes lie in the top 64 bytes of the caller's stack.
    unsafe {
        frame.write(0);
        let regs = sp as *mut u64;
        for i in 0..SAVED_REGISTERS {
            regs.add(i).write(0);
        }
        regs.add(SAVED_REGISTERS).write(thread_entry_trampoline as unsafe extern "C" fn() as usize as u64);
    }
    sp
}
