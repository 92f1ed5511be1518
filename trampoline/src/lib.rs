//! The application-processor trampoline: 16-bit real-mode start code that
//! takes an AP to long mode and into the kernel.
//!
//! Empty until SMP bring-up lands; the crate exists so that the workspace
//! layout is the final one from the start.
#![no_std]
#![forbid(unsafe_code)]
