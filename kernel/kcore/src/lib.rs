//! Ferrite's kernel core: the parts of the kernel that are pure logic.
//!
//! What belongs here is code that makes decisions but never touches
//! hardware: no port or MMIO access, no inline assembly, no page tables being
//! live, no interrupts. Given plain inputs (a memory map as ranges, a command
//! line as a string, a table as bytes) it computes plain outputs. That split
//! lets every such piece be unit-tested on the host with `cargo test`, where a
//! bug costs a failing assertion instead of a triple fault in QEMU.
//!
//! The rules that keep that true:
//!
//! - `no_std`, and no `alloc` outside [`sched`], [`elf`] and [`bench`]: the
//!   kernel calls into this crate before it has a heap (the frame allocator
//!   is what the heap is later built from), so every structure works over
//!   caller-provided storage. The scheduler, the ELF loader and the
//!   benchmarks are the exceptions because the kernel only schedules, loads
//!   programs and measures once the heap exists.
//! - `#![forbid(unsafe_code)]`: anything that needs `unsafe` is by definition
//!   talking to the machine and lives in the kernel crate.
//! - No dependencies, so the host tests build fast and nothing pulls in
//!   `std`-only code by accident.
//!
//! Current modules: the physical [`frame`] allocator, the kernel
//! [`cmdline`] parser, the [`acpi`] table finder, its MADT, FADT and HPET
//! parsers and its DSDT sleep-state reader, what CPUID says about the
//! [`clock`] rates, the [`sched`] run queue and scheduling policy, the [`elf`] load planner
//! for user programs, and the [`bench`] arithmetic of the benchmarks.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod acpi;
pub mod bench;
pub mod clock;
pub mod cmdline;
pub mod elf;
pub mod frame;
pub mod rng;
pub mod sched;
