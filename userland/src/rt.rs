//! Program start and the panic handler.
//!
//! # Start
//!
//! The kernel starts a program at its ELF entry point, `_start`, in the
//! state the ABI describes (see [`ferrite_abi`], "Program entry"): `rsp` at
//! the top of the initial stack, 16-byte aligned with nothing pushed; `rdi`
//! and `rsi` the argument string's address and length; `rdx` the number of
//! handles the program was given. That is not how a Rust function may be
//! entered: the System V ABI expects `rsp + 8` to be 16-byte aligned at the
//! first instruction, since a `call` has just pushed a return address.
//! Compiled code that keeps 16-byte SSE values on the stack would fault on
//! a misaligned `movaps` otherwise.
//!
//! So [`entry!`](crate::entry) makes `_start` a naked function of three
//! instructions: clear `rbp` (the end of the frame-pointer chain for a
//! debugger), `call` the Rust start function, which pushes the return
//! address that gives the expected alignment and leaves `rdi`, `rsi`, `rdx`
//! as its first three arguments, and `ud2` in case it ever returned (it
//! cannot: it ends in `exit`). The Rust start, [`start`], turns the
//! arguments into a `&str`, records the handle count for
//! [`handles_given`], runs `main` and exits with its result.
//!
//! # Panics
//!
//! A panic on any thread prints one line, `panic: <message> at
//! <file>:<line>:<col>`, in one `write` (so it never mixes with other
//! output), and ends the whole process with [`PANIC_EXIT`]: with
//! `panic = abort` there is no unwinding, and a process that lost one
//! thread mid-way cannot be trusted to go on. The handler allocates
//! nothing, so it works when the heap is what failed or while a thread
//! holds the heap's lock.
//!
//! If a second panic starts while one is in progress, it is either another
//! thread panicking at the same time or the first panic's own message
//! panicking while being formatted. The handler cannot tell which (there is
//! no thread-local storage), so the second one waits [`NESTED_PANIC_GRACE_NS`]
//! for the first to finish and end the process, and only then reports
//! itself without formatting its message, which cannot recurse.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{println, sys, PANIC_EXIT};

/// How long a panic that starts during another one waits for that one to
/// end the process.
pub const NESTED_PANIC_GRACE_NS: u64 = 100_000_000;

/// The handles the program was given at start (`rdx` at entry).
static HANDLES_GIVEN: AtomicU64 = AtomicU64::new(0);

/// Set by the first panic.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// How many handles the program was given when it started: they are
/// handles `0..handles_given()` (see [`sys::spawn`]).
pub fn handles_given() -> u64 {
    HANDLES_GIVEN.load(Ordering::Relaxed)
}

/// Defines the program's entry point `_start`, which runs `main` and exits
/// with the code it returns. `main` is a `fn(&str) -> u64` that receives
/// the program's argument string (the words after its name in the
/// [`sys::spawn`] command; empty for init).
///
/// ```ignore
/// ferrite_user::entry!(main);
///
/// fn main(args: &str) -> u64 {
///     ferrite_user::println!("args: {args}");
///     0
/// }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The ELF entry point: see `ferrite_user::rt`.
        // SAFETY: the only symbol of this name in the program (the runtime
        // has none), and a naked function whose body is nothing but the
        // assembly: it realigns the stack by calling the Rust start
        // function, with the kernel's `rdi`, `rsi` and `rdx` untouched as
        // its arguments, and that function never returns.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "xor ebp, ebp",
                "call {start}",
                "ud2",
                start = sym __ferrite_start,
            )
        }

        /// Called by `_start` with the kernel's entry registers.
        extern "C" fn __ferrite_start(args: *const u8, args_len: usize, handles: u64) -> ! {
            let main: fn(&str) -> u64 = $main;
            // SAFETY: these are the kernel's entry registers, untouched.
            unsafe { $crate::rt::start(args, args_len, handles, main) }
        }
    };
}

/// The Rust half of `_start`: records the handle count, makes the argument
/// string a `&str`, runs `main`, and exits with its result.
///
/// A string that is not UTF-8, or a null or out-of-range pointer, means the
/// kernel broke its promise: the program panics rather than guess.
///
/// # Safety
///
/// Only `_start` may call this, with the registers the kernel started the
/// program with: the kernel promises a UTF-8 argument string of `args_len`
/// bytes at `args` that stays in place for the life of the process (it
/// lies above the initial stack pointer, or in memory the program never got
/// from `map` and so cannot unmap).
#[doc(hidden)]
pub unsafe fn start(args: *const u8, args_len: usize, handles: u64, main: fn(&str) -> u64) -> ! {
    HANDLES_GIVEN.store(handles, Ordering::Relaxed);
    let bytes: &[u8] = if args_len == 0 {
        &[]
    } else {
        let start = args.addr() as u64;
        let in_user_space = start >= ferrite_abi::USER_START
            && start.checked_add(args_len as u64).is_some_and(|end| end <= ferrite_abi::USER_END);
        assert!(in_user_space, "the argument string {args:p}+{args_len} is not in user memory");
        // SAFETY: the caller's promise: the kernel placed `args_len`
        // initialized bytes at `args` (checked above to be a user range) and
        // keeps them there for the life of the process, and nothing in the
        // program writes to them.
        unsafe { core::slice::from_raw_parts(args, args_len) }
    };
    let Ok(text) = core::str::from_utf8(bytes) else {
        panic!("the argument string is not UTF-8: {bytes:02x?}");
    };
    sys::exit(main(text))
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::AcqRel) {
        // Another panic is in progress: give it time to end the process.
        let _ = sys::sleep_ns(NESTED_PANIC_GRACE_NS);
        match info.location() {
            Some(at) => println!("panic: while panicking, at {}:{}:{}", at.file(), at.line(), at.column()),
            None => println!("panic: while panicking"),
        }
        sys::exit(PANIC_EXIT);
    }
    match info.location() {
        Some(at) => println!("panic: {} at {}:{}:{}", info.message(), at.file(), at.line(), at.column()),
        None => println!("panic: {}", info.message()),
    }
    sys::exit(PANIC_EXIT)
}

/// Referenced by the host target's precompiled `core` and `alloc`, which
/// are built for unwinding; never called, since everything here is
/// `panic = abort` and nothing unwinds.
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// Called by the cleanup code (landing pads) of the precompiled `core` and
/// `alloc` to go on unwinding once a frame's values are dropped, so
/// `format!` and friends need the symbol. Nothing ever unwinds here (a
/// panic ends the process before that), so reaching it is a broken
/// invariant; it ends the process like a panic, without touching what the
/// argument points to.
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume(_exception: *mut core::ffi::c_void) -> ! {
    println!("panic: _Unwind_Resume called, but nothing unwinds with panic = abort");
    sys::exit(PANIC_EXIT)
}
