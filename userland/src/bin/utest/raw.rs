//! System calls with raw numbers for arguments, to hand the kernel the bad
//! pointers and lengths that the typed wrappers of `ferrite_user::sys`
//! cannot express.
//!
//! `write` and `spawn` only ever *read* user memory, and the ABI promises
//! that the kernel checks a range before it touches it. So calling them
//! with any address is sound from Rust's point of view: reading memory
//! breaks no borrow, and an address the kernel may not read is an error
//! code, not a fault. That is why these wrappers are safe functions.

use ferrite_abi::{nr, Error, Grant};
use ferrite_user::sys::Handle;
use ferrite_user::syscall::{syscall2, syscall5};

use crate::harness::addr;

/// `write(ptr, len)` with any pointer and length.
pub fn write(ptr: u64, len: u64) -> Result<u64, Error> {
    // SAFETY: `write` only reads user memory, through the kernel's checked
    // copy (see the module documentation); it changes nothing of ours.
    unsafe { syscall2(nr::WRITE, ptr, len) }.result()
}

/// `spawn(cmd_ptr, cmd_len, grants_ptr, grants_len)` with any pointers
/// and lengths.
pub fn spawn(cmd_ptr: u64, cmd_len: u64, grants_ptr: u64, grants_len: u64) -> Result<Handle, Error> {
    // SAFETY: `spawn` only reads the command and the grants (see the
    // module documentation); a child it starts has its own memory.
    unsafe { syscall5(nr::SPAWN, cmd_ptr, cmd_len, grants_ptr, grants_len, 0) }.result()
}

/// `spawn(command, grants)` with the slices as they are: an empty grant
/// list's pointer dangles (it is the alignment, 0x8), which the kernel must
/// not look at (the ABI's "Pointers").
pub fn spawn_grants(command: &str, grants: &[Grant]) -> Result<Handle, Error> {
    spawn(addr(command), command.len() as u64, addr(grants), grants.len() as u64)
}

/// `spawn(command, handles)`, each handle with the rights it has.
pub fn spawn_cmd(command: &str, handles: &[Handle]) -> Result<Handle, Error> {
    let grants: alloc::vec::Vec<Grant> = handles.iter().map(|&h| Grant::same(h)).collect();
    spawn_grants(command, &grants)
}
