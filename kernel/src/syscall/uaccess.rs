//! Reading and writing user memory: ranges checked against user space
//! first, then copied by arch::user's fault-tolerant routine. The kernel never
//! dereferences a user pointer itself.
use crate::arch::user::{copy_from_user, copy_to_user};
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

/// Copies `dst.len()` bytes from user address `ptr` into `dst`. An empty
/// range is not looked at.
pub fn copy_in_to(ptr: u64, dst: &mut [u8]) -> Result<(), Error> {
    if dst.is_empty() {
        return Ok(());
    }
    check_range(ptr, dst.len() as u64)?;
    // SAFETY: the range lies in user space (checked above); a page that is
    // not mapped makes the copy fail, not the kernel.
    if unsafe { copy_from_user(dst, ptr) } {
        Ok(())
    } else {
        Err(Error::BadAddress)
    }
}

/// Copies `count` words from user address `ptr`.
pub fn copy_words(ptr: u64, count: u64) -> Result<Vec<u64>, Error> {
    let bytes = copy_in(ptr, count.checked_mul(8).ok_or(Error::BadLength)?)?;
    Ok(bytes.as_chunks::<8>().0.iter().map(|w| u64::from_le_bytes(*w)).collect())
}

/// Writes `words` to user address `ptr`: the whole range must lie in user
/// space and be mapped writable, or the call fails (`BadAddress`) with
/// what came before the bad page written.
pub fn copy_words_out(ptr: u64, words: &[u64]) -> Result<(), Error> {
    let mut bytes = [0u8; 64];
    let len = words.len() * 8;
    if len > bytes.len() {
        return Err(Error::BadLength);
    }
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    check_range(ptr, len as u64)?;
    // SAFETY: the range lies in user space (checked above); a page that is
    // not mapped writable makes the copy fail, not the kernel.
    if unsafe { copy_to_user(ptr, &bytes[..len]) } {
        Ok(())
    } else {
        Err(Error::BadAddress)
    }
}

/// Writes `bytes` to user address `ptr`, as [`copy_words_out`] does. An
/// empty range is not looked at.
pub fn copy_out(ptr: u64, bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    check_range(ptr, bytes.len() as u64)?;
    // SAFETY: as in copy_words_out.
    if unsafe { copy_to_user(ptr, bytes) } {
        Ok(())
    } else {
        Err(Error::BadAddress)
    }
}
