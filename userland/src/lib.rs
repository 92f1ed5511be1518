//! The user-mode runtime (entry point, system-call wrappers) and `init`.
//!
//! Empty until user mode lands; the crate exists so that the workspace
//! layout is the final one from the start.
#![no_std]
#![forbid(unsafe_code)]
