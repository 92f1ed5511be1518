//! The system calls that need no handles: `write` and its pointer checks,
//! unknown numbers, the clock, CPUs and affinity.

use alloc::format;
use alloc::vec;

use ferrite_abi::{map, nr, Error, ANY_CPU, USER_END, USER_START, WRITE_MAX};
use ferrite_user::{sys, syscall};

use crate::harness::{addr, now, Ctx, Outcome, NS_PER_MS};
use crate::raw;

/// The size of a page.
pub const PAGE: u64 = 4096;

/// The first address of the kernel half.
pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
/// Where the kernel's image lives (the top 2 GiB).
pub const KERNEL_IMAGE: u64 = 0xffff_ffff_8000_0000;
/// The first non-canonical address above user space.
pub const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
/// A user address far from anything a program is given (80 TiB).
pub const UNMAPPED_USER: u64 = 0x0000_5000_0000_0000;

/// Ranges that `write` must refuse with `BadAddress`: what they are,
/// pointer, length.
const BAD_RANGES: &[(&str, u64, u64)] = &[
    ("null", 0, 1),
    ("below USER_START", USER_START - 1, 2),
    ("kernel half", KERNEL_HALF, 16),
    ("kernel image", KERNEL_IMAGE, 16),
    ("non-canonical", NON_CANONICAL, 16),
    ("USER_END", USER_END, 16),
    ("across USER_END", USER_END - 8, 16),
    ("wrapping", u64::MAX - 10, 100),
    ("unmapped user address", UNMAPPED_USER, 16),
];

/// How far before the end of a page the partly unmapped write starts, and
/// how long it is (so it runs into the next page).
const STRADDLE_BACK: u64 = 10;
const STRADDLE_LEN: u64 = 100;

/// `write`: lengths, limits and every kind of bad pointer.
pub fn write(_args: &str) -> Outcome {
    let line = b"utest write: one raw write of this line\n";
    let len = line.len() as u64;
    check_eq!(raw::write(addr(line), len), Ok(len), "a good write");
    check_eq!(raw::write(addr(line), 0), Ok(0), "a good pointer with length 0");
    // An empty range is not looked at (the ABI's "Pointers"): an empty Rust
    // slice's pointer is dangling.
    for ptr in [0, KERNEL_HALF] {
        check_eq!(raw::write(ptr, 0), Ok(0), "write of 0 bytes from {ptr:#x}");
    }
    for &(what, ptr, len) in BAD_RANGES {
        check_eq!(raw::write(ptr, len), Err(Error::BadAddress), "write from {what} ({ptr:#x}, {len})");
    }

    // A range that starts in a mapped page and runs into an unmapped one:
    // map two pages and give the second back, so the hole is certain.
    let pages = sys::map(2 * PAGE as usize, map::WRITE).ctx("map 2 pages")?;
    let first = pages.addr() as u64;
    // SAFETY: the second page came from `map` above and nothing refers to it.
    unsafe { sys::unmap(pages.wrapping_add(PAGE as usize), PAGE as usize) }.ctx("unmap the second page")?;
    // Nothing is allocated between the unmap and this write, so nothing
    // can have been mapped into the hole.
    let straddle = raw::write(first + PAGE - STRADDLE_BACK, STRADDLE_LEN);
    // SAFETY: the first page came from `map` and nothing refers to it.
    unsafe { sys::unmap(pages, PAGE as usize) }.ctx("unmap the first page")?;
    check_eq!(straddle, Err(Error::BadAddress), "a write running into an unmapped page");

    // The length limit, from a buffer that is valid for the whole length,
    // so only the length can be wrong. The one that succeeds is a line of
    // spaces that says what it is.
    let mut full = vec![b' '; WRITE_MAX as usize + 1];
    let label = b"utest write: WRITE_MAX bytes in one write, padded with spaces:";
    full[..label.len()].copy_from_slice(label);
    full[WRITE_MAX as usize - 2] = b'|';
    full[WRITE_MAX as usize - 1] = b'\n';
    check_eq!(raw::write(addr(&full[..]), WRITE_MAX + 1), Err(Error::BadLength), "WRITE_MAX + 1 bytes");
    check_eq!(raw::write(addr(&full[..]), WRITE_MAX), Ok(WRITE_MAX), "WRITE_MAX bytes");
    Ok(format!("{} bad ranges refused", BAD_RANGES.len() + 1))
}

/// System-call numbers that must be `BadSyscall`; the last one is `WRITE`
/// with high bits set, which a kernel that truncates the number would take
/// for `WRITE`.
const BAD_NUMBERS: [u64; 5] = [nr::COUNT, nr::COUNT + 1, 1000, u64::MAX, 1 << 32 | nr::WRITE];

/// Unknown system-call numbers.
pub fn bad_syscall(_args: &str) -> Outcome {
    // If a number aliased `WRITE`, this is what would show on the console.
    let alias = b"utest bad_syscall: this line means a bad number aliased WRITE\n";
    for number in BAD_NUMBERS {
        // SAFETY: an unknown number must do nothing. Should the kernel
        // alias it to a real call, the arguments are a readable buffer
        // and its length: `write` prints it, `unmap` and `thread_spawn`
        // must refuse a rodata address and a tiny stack top, and `map`
        // refuses the length as flags. Nothing of ours can break.
        let raw = unsafe { syscall::syscall2(number, addr(alias), alias.len() as u64) };
        check_eq!(raw.result(), Err(Error::BadSyscall), "system call {number:#x}");
    }
    Ok(format!("{} numbers refused", BAD_NUMBERS.len()))
}

/// Clock reads in the monotonicity check.
const TIME_READS: usize = 1000;
/// The sleep whose length is checked.
const SLEEP_NS: u64 = 10 * NS_PER_MS;

/// The clock: monotonic, and sleeps last at least as long as asked.
pub fn time(_args: &str) -> Outcome {
    let mut last = now()?;
    for i in 0..TIME_READS {
        let t = now()?;
        check!(t >= last, "time went backwards at read {i}: {t} after {last}");
        last = t;
    }
    let before = now()?;
    sys::sleep_ns(SLEEP_NS).ctx("sleep 10 ms")?;
    let slept = now()? - before;
    check!(slept >= SLEEP_NS, "sleep_ns({SLEEP_NS}) returned after {slept} ns");
    sys::sleep_ns(0).ctx("sleep 0")?;
    Ok(format!("10 ms sleep took {} us", slept / 1000))
}

/// CPU numbers.
pub fn cpu(_args: &str) -> Outcome {
    let count = sys::cpu_count().ctx("cpu_count")?;
    check!(count >= 1, "cpu_count is {count}");
    let here = sys::cpu().ctx("cpu")?;
    check!(here < count, "cpu() is {here} with {count} CPUs");
    sys::yield_now().ctx("yield")?;
    Ok(format!("{count} CPUs, on CPU {here}"))
}

/// Rounds over all CPUs in the affinity case.
const AFFINITY_ROUNDS: u64 = 3;
/// The short sleep after which a pinned thread must still be on its CPU.
const AFFINITY_SLEEP_NS: u64 = NS_PER_MS;
/// How far past the last CPU the second bad affinity is.
const FAR_CPU: u64 = 100;

/// Pinning: the thread runs on the CPU it asked for, and stays there.
pub fn affinity(_args: &str) -> Outcome {
    let count = sys::cpu_count().ctx("cpu_count")?;
    for round in 0..AFFINITY_ROUNDS {
        for c in 0..count {
            sys::set_affinity(c).ctx("set_affinity")?;
            check_eq!(sys::cpu(), Ok(c), "round {round}: cpu() right after set_affinity({c})");
            sys::yield_now().ctx("yield")?;
            check_eq!(sys::cpu(), Ok(c), "round {round}: cpu() after a yield on CPU {c}");
            sys::sleep_ns(AFFINITY_SLEEP_NS).ctx("sleep")?;
            check_eq!(sys::cpu(), Ok(c), "round {round}: cpu() after a sleep on CPU {c}");
            // A new thread starts with its creator's affinity.
            let child = ferrite_user::thread::spawn(|| sys::cpu().unwrap_or(u64::MAX)).ctx("spawn")?;
            check_eq!(child.join(), Ok(c), "round {round}: a thread spawned on CPU {c} ran on");
        }
    }
    check_eq!(sys::set_affinity(count), Err(Error::BadArgument), "set_affinity(cpu_count)");
    check_eq!(sys::set_affinity(count + FAR_CPU), Err(Error::BadArgument), "set_affinity(cpu_count + {FAR_CPU})");
    sys::set_affinity(ANY_CPU).ctx("set_affinity(ANY_CPU)")?;
    Ok(format!("{count} CPUs, {AFFINITY_ROUNDS} rounds"))
}

/// What `forged_output` writes: lines dressed as the kernel's (a test
/// verdict, a test result, a log record), terminal tricks to move back
/// over a line (carriage return, ANSI and C1 escapes), and an unfinished
/// line. The harness checks that every one of them shows up marked as
/// this process's, escaped, and that its own verdict stays the kernel's.
pub const FORGERIES: &[&str] = &[
    "\n1234 passed, 0 failed\n",
    "test hostile::forged_verdict ... ok\n",
    "[    1.000000] cpu0 INFO  kernel: a forged record\n",
    "\r1234 passed, 0 failed\n",
    "\x1b[2K\x1b[1A1234 passed, 0 failed\n",
    "\u{9b}2K1234 passed, 0 failed\n",
    "an unfinished line, then 1234 passed, 0 failed",
];

/// `forged_output`: writes [`FORGERIES`], each in one `write`.
pub fn forged_output(_args: &str) -> Outcome {
    for text in FORGERIES {
        check_eq!(raw::write(addr(*text), text.len() as u64), Ok(text.len() as u64), "write of {text:?}");
    }
    Ok(alloc::string::String::new())
}
