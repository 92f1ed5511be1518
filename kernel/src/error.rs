//! The kernel's error type for what can fail at run time.
use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelError {
    /// No physical frames, or no virtual space, left.
    NoMemory,
    /// The virtual address is already mapped.
    AlreadyMapped,
    /// The virtual address is not mapped.
    NotMapped,
    /// An address that is not canonical, not aligned, or outside its region.
    BadAddress,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelError::NoMemory => "out of memory",
            KernelError::AlreadyMapped => "already mapped",
            KernelError::NotMapped => "not mapped",
            KernelError::BadAddress => "bad address",
        })
    }
}
