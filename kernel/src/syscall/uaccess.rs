//! Reading user memory: ranges checked against user space first, then
//! copied by arch::user's fault-tolerant routine. The kernel never
//! dereferences a user pointer itself.
use crate::arch::user::copy_from_user;
use alloc::vec::Vec;
use ferrite_abi::{Error, USER_END, USER_START};

/// Checks that `ptr..ptr + len` lies in user space (`len` > 0).
pub fn check_range(ptr: u64, len: u64) -> Result<(), Error> {
    let end = ptr.checked_add(len).ok_or(Error::BadAddress)?;
    if ptr < USER_START || end > USER_END {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// Copies `len` bytes from user address `ptr` (the caller has bounded
/// `len`). An empty range is not looked at (ferrite_abi, "Pointers").
pub fn copy_in(ptr: u64, len: u64) -> Result<Vec<u8>, Error> {
    if len == 0 {
        return Ok(Vec::new());
    }
    check_range(ptr, len)?;
    let len = usize::try_from(len).map_err(|_| Error::BadLength)?;
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| Error::NoMemory)?;
    buffer.resize(len, 0);
    // SAFETY: the range lies in user space (checked above); a page that is
    // not mapped makes the copy fail, not the kernel.
    if unsafe { copy_from_user(&mut buffer, ptr) } {
        Ok(buffer)
    } else {
        Err(Error::BadAddress)
    }
}

/// Copies `count` words from user address `ptr`.
pub fn copy_words(ptr: u64, count: u64) -> Result<Vec<u64>, Error> {
    let bytes = copy_in(ptr, count.checked_mul(8).ok_or(Error::BadLength)?)?;
    Ok(bytes.as_chunks::<8>().0.iter().map(|w| u64::from_le_bytes(*w)).collect())
}
