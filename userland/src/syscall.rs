//! The `syscall` instruction, per the register table in [`ferrite_abi`]:
//! the number in `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`,
//! the status back in `rax` and the value in `rdi`; the CPU clobbers `rcx`
//! and `r11`, the kernel preserves every other register. The kernel runs on
//! its own stack, so the asm touches none of ours (`nostack`).
//!
//! These functions return the pair as it is ([`Raw`]);
//! [`crate::sys`] wraps each system call in a typed, and where possible
//! safe, function.
//!
//! # Safety
//!
//! Every function here has the same contract: the system call, with these
//! arguments, must not break a rule the compiler relies on. A pointer the
//! kernel reads must point to initialized memory of that length, one it
//! writes to must be writable memory nothing else borrows, and memory it
//! unmaps (or a stack it starts a thread on) must not be in use by anything
//! else. The kernel itself rejects bad pointers with an error rather than a
//! fault, but it cannot know about Rust's borrows.

use core::arch::asm;

use ferrite_abi::Error;

/// What a system call returns: the status (`rax`) and the value (`rdi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw {
    pub status: u64,
    pub value: u64,
}

impl Raw {
    /// The value, or the error the status names.
    pub fn result(self) -> Result<u64, Error> {
        ferrite_abi::result(self.status, self.value)
    }
}

/// A system call without arguments.
///
/// # Safety
///
/// See the [module documentation](self).
#[inline(always)]
pub unsafe fn syscall0(nr: u64) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: the asm follows the ABI (rcx and r11 clobbered, the rest
    // preserved, no stack use); what the call does is the caller's promise.
    unsafe {
        asm!("syscall", inlateout("rax") nr => status, lateout("rdi") value, lateout("rcx") _, lateout("r11") _, options(nostack))
    };
    Raw { status, value }
}

/// A system call with one argument.
///
/// # Safety
///
/// See the [module documentation](self).
#[inline(always)]
pub unsafe fn syscall1(nr: u64, a0: u64) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") a0 => value,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}

/// A system call with two arguments.
///
/// # Safety
///
/// See the [module documentation](self).
#[inline(always)]
pub unsafe fn syscall2(nr: u64, a0: u64, a1: u64) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") a0 => value,
            in("rsi") a1,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}

/// A system call with three arguments.
///
/// # Safety
///
/// See the [module documentation](self).
#[inline(always)]
pub unsafe fn syscall3(nr: u64, a0: u64, a1: u64, a2: u64) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") a0 => value,
            in("rsi") a1,
            in("rdx") a2,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}

/// A system call with four arguments.
///
/// # Safety
///
/// See the [module documentation](self).
#[inline(always)]
pub unsafe fn syscall4(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") a0 => value,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}

/// A system call with five arguments.
///
/// # Safety
///
/// See the [module documentation](self).
#[inline(always)]
pub unsafe fn syscall5(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") a0 => value,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            in("r8") a4,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}

/// An IPC system call: the handle in `rdi`, the message in `rsi`, `rdx`,
/// `r10`, `r8` going in, and the received message (if any) in the same
/// registers coming out, written back to `msg`.
///
/// # Safety
///
/// See the [module documentation](self). The IPC calls of the ABI touch no
/// user memory, so any of them is sound.
#[inline(always)]
pub unsafe fn syscall_ipc(nr: u64, handle: u64, msg: &mut [u64; ferrite_abi::MSG_WORDS]) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`; the message registers are in-out.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") handle => value,
            inout("rsi") msg[0],
            inout("rdx") msg[1],
            inout("r10") msg[2],
            inout("r8") msg[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}

/// An IPC system call that passes and takes a handle: like [`syscall_ipc`],
/// with `r9` in and out (ferrite_abi, "Handles in messages").
///
/// # Safety
///
/// As for [`syscall_ipc`].
pub unsafe fn syscall_ipc_handle(
    nr: u64,
    handle: u64,
    msg: &mut [u64; ferrite_abi::MSG_WORDS],
    passed: &mut u64,
) -> Raw {
    let (status, value): (u64, u64);
    // SAFETY: as in `syscall0`; the message registers and r9 are in-out.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => status,
            inlateout("rdi") handle => value,
            inout("rsi") msg[0],
            inout("rdx") msg[1],
            inout("r10") msg[2],
            inout("r8") msg[3],
            inout("r9") *passed,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    Raw { status, value }
}
