//! The C memory functions (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`).
//!
//! Programs are linked without libc, but the compiler still emits calls to
//! these for copies, fills and comparisons, and the precompiled `core` and
//! `alloc` of the host target call them too (on `x86_64-unknown-none`,
//! `compiler_builtins` would provide them; on a Linux target it leaves them
//! to libc). So the runtime defines them.
//!
//! The danger in writing them in Rust is that the optimizer recognizes a
//! byte loop as "a memcpy" and replaces it with a call to `memcpy`: the
//! function would call itself forever. The copies and fills therefore use
//! the string instructions (`rep movsb`, `rep stosb`, which modern CPUs run
//! at cache-line speed), whose inline asm the compiler cannot see into, and
//! the comparisons read through volatile loads, which it may not merge into
//! a library call.
//!
//! The System V ABI guarantees the direction flag is clear at every call, so
//! the string instructions run forwards unless `memmove` sets it, and it
//! clears it again before returning.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest` in ascending address order, one
/// byte after the other as far as the result shows (the CPU guarantees that
/// for `rep movsb` even when it moves whole lines at a time). So the ranges
/// may overlap if `dest` is below `src`.
///
/// # Safety
///
/// `src` is readable and `dest` writable for `n` bytes, and `dest` does not
/// start inside `src + 1..src + n`.
unsafe fn copy_up(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: `rep movsb` copies `rcx` bytes from `[rsi]` to `[rdi]`
    // upwards (the direction flag is clear, per the ABI); the caller
    // promised both ranges. It changes no flags and touches no stack.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copies `n` bytes from `src` to `dest`; returns `dest`.
///
/// # Safety
///
/// The C contract: `src` is readable and `dest` writable for `n` bytes, and
/// the two ranges do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller promised both ranges, and disjoint ones.
    unsafe { copy_up(dest, src, n) };
    dest
}

/// Copies `n` bytes from `src` to `dest`, which may overlap; returns `dest`.
///
/// # Safety
///
/// The C contract: `src` is readable and `dest` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // An upward copy is right unless `dest` starts inside `src + 1..src + n`:
    // then it would overwrite source bytes before reading them, and the copy
    // must run from the top down.
    let distance = (dest as usize).wrapping_sub(src as usize);
    if distance == 0 || distance >= n {
        // SAFETY: the caller promised both ranges, and `dest` is not inside
        // `src + 1..src + n` (it is `src`, below it, or at or past its end).
        unsafe { copy_up(dest, src, n) };
        return dest;
    }
    // SAFETY: with the direction flag set, `rep movsb` copies `rcx` bytes
    // downwards from the last byte of each range, so every source byte is
    // read before the overlapping destination byte above it is written. The
    // flag is cleared again, as the ABI requires on return. `n` is at least
    // 2 here (`0 < distance < n`), so `n - 1` stays inside both ranges.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dest.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack),
        );
    }
    dest
}

/// Sets `n` bytes from `dest` to `c` (as a byte); returns `dest`.
///
/// # Safety
///
/// The C contract: `dest` is writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: `rep stosb` stores `al` into `rcx` bytes from `[rdi]` upwards;
    // the caller promised the range. C converts `c` to `unsigned char`,
    // which is what `as u8` does.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Compares `n` bytes; returns the difference of the first unequal pair (as
/// unsigned bytes), or 0.
///
/// # Safety
///
/// The C contract: both ranges are readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`, and the caller promised `n` readable bytes at
        // each. Volatile, so that the loop stays a loop (see the module
        // documentation).
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// Compares `n` bytes; returns 0 if they are equal and non-zero otherwise.
///
/// # Safety
///
/// The C contract: both ranges are readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract as `memcmp`, which answers more than asked.
    unsafe { memcmp(a, b, n) }
}
