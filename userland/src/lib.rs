//! Ferrite's user-mode runtime, and (in `src/bin/`) the programs built on it.
//!
//! A program is a `#![no_std]`, `#![no_main]` binary that names its `main`
//! with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! #![forbid(unsafe_code)]
//!
//! ferrite_user::entry!(main);
//!
//! fn main(args: &str) -> u64 {
//!     ferrite_user::println!("hello: {args}");
//!     0
//! }
//! ```
//!
//! What the runtime gives it:
//!
//! - [`entry!`]: the ELF entry point `_start`, which calls `main` with the
//!   argument string and then [`sys::exit`] with what `main` returns;
//! - [`sys`]: one typed function per system call of [`ferrite_abi`], over
//!   the raw `syscall` instruction in [`syscall`];
//! - [`print!`] and [`println!`]: formatted console output, one `write` per
//!   line (up to [`ferrite_abi::WRITE_MAX`] bytes);
//! - a panic handler that prints `panic: <message> at <file:line:col>` and
//!   exits with [`PANIC_EXIT`];
//! - [`rt::handles_given`]: how many handles the program was given;
//! - a global allocator over `map` ([`heap`]), so `alloc` works;
//! - [`thread::spawn`]: threads of the same process with their own stacks;
//! - [`port`]: `in` and `out`, for drivers given I/O ports;
//! - [`service`]: what the drivers share ([`service::Forwarder`]);
//! - the C memory functions the compiler calls (`memcpy` and the like),
//!   since programs are linked without libc.
//!
//! Programs are compiled for `x86_64-unknown-linux-gnu`, so that they may
//! use SSE like any Rust code, and linked as static executables for
//! Ferrite by `build.rs` and `link.ld`; `make user` builds them all.
//!
//! All the unsafe code lives here; programs can forbid it.
#![no_std]

extern crate alloc;

pub mod heap;
pub mod io;
mod mem;
pub mod port;
pub mod rt;
pub mod service;
pub mod sys;
pub mod syscall;
pub mod thread;

pub use ferrite_abi::Error;

/// The exit code of a process whose thread panicked (Rust's, on Linux).
pub const PANIC_EXIT: u64 = 101;
