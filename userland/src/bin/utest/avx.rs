//! AVX and AVX2: a program built for x86-64-v3 keeps its 256-bit
//! registers across preemption and migration.
//!
//! Without XSAVE-managed state (XCR0 with AVX, which the kernel sets),
//! the first AVX instruction is an invalid opcode and the process dies;
//! with state saved only by FXSAVE, the upper halves of ymm0-15 would leak
//! between threads. Each thread here loads all sixteen registers, doubles
//! every 32-bit lane with AVX2's `vpaddd`, and then, with the registers
//! held, asks to move to another CPU (`set_affinity`, inside the same
//! block of assembly) and spins for a few milliseconds so that the timer
//! preempts it for the other threads sharing the CPU; then it stores the
//! registers and checks every lane.

use alloc::format;
use alloc::vec::Vec;
use core::arch::asm;

use ferrite_abi::nr;
use ferrite_user::sys;

use crate::harness::{spawn_checked, Ctx, Outcome, Watchdog};

/// ymm0-15, each as four 64-bit quarters.
type Ymm = [[u64; 4]; 16];

/// Rounds per thread.
const ROUNDS: u64 = 12;
/// How long a round holds the registers while it spins.
const HOLD_NS: u64 = 3_000_000;

/// CPUID.07H:EBX[5] (AVX2) and CPUID.01H:ECX[27] (OSXSAVE).
fn cpu_has_avx2() -> (bool, bool) {
    let (max, one) = (core::arch::x86_64::__cpuid(0).eax, core::arch::x86_64::__cpuid(1));
    let avx2 = max >= 7 && core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 5) != 0;
    (avx2, one.ecx & (1 << 27) != 0)
}

/// XCR0, which user mode may read once the kernel has set CR4.OSXSAVE.
fn xcr0() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `xgetbv` with ECX 0 only reads XCR0 (OSXSAVE is set, checked
    // by the caller).
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") low, out("edx") high, options(nomem, nostack)) };
    u64::from(high) << 32 | u64::from(low)
}

/// The pattern thread `t` loads in round `r`.
fn pattern(t: u64, r: u64) -> Ymm {
    core::array::from_fn(|reg| {
        core::array::from_fn(|q| (t << 48) ^ (r << 32) ^ ((reg as u64) << 8) ^ q as u64 ^ 0x8000_4000_2000_1000)
    })
}

/// What `vpaddd x, x, x` makes of a quarter: each 32-bit lane doubled.
fn doubled(x: u64) -> u64 {
    let (low, high) = (x as u32, (x >> 32) as u32);
    u64::from(low.wrapping_mul(2)) | u64::from(high.wrapping_mul(2)) << 32
}

/// Loads `load` into ymm0-15, doubles every lane, moves to `cpu` and spins
/// until the TSC reaches `until`, all with the registers held; returns
/// them and `set_affinity`'s status.
///
/// # Safety
///
/// The CPU must have AVX2 and the kernel must have enabled it (XCR0).
#[target_feature(enable = "avx2")]
unsafe fn hold_ymm(load: &Ymm, cpu: u64, until: u64) -> (Ymm, u64) {
    let mut store: Ymm = [[0; 4]; 16];
    let status: u64;
    // SAFETY: (of the caller) AVX2 runs. The loads read `load` and the
    // stores write `store`, 512 bytes each, unaligned moves; the system
    // call is `set_affinity` (no memory); every register it or `rdtsc`
    // changes is an output, and every ymm register is declared clobbered.
    unsafe {
        asm!(
            "vmovdqu ymm0, [{load} + 0]",
            "vmovdqu ymm1, [{load} + 32]",
            "vmovdqu ymm2, [{load} + 64]",
            "vmovdqu ymm3, [{load} + 96]",
            "vmovdqu ymm4, [{load} + 128]",
            "vmovdqu ymm5, [{load} + 160]",
            "vmovdqu ymm6, [{load} + 192]",
            "vmovdqu ymm7, [{load} + 224]",
            "vmovdqu ymm8, [{load} + 256]",
            "vmovdqu ymm9, [{load} + 288]",
            "vmovdqu ymm10, [{load} + 320]",
            "vmovdqu ymm11, [{load} + 352]",
            "vmovdqu ymm12, [{load} + 384]",
            "vmovdqu ymm13, [{load} + 416]",
            "vmovdqu ymm14, [{load} + 448]",
            "vmovdqu ymm15, [{load} + 480]",
            "vpaddd ymm0, ymm0, ymm0",
            "vpaddd ymm1, ymm1, ymm1",
            "vpaddd ymm2, ymm2, ymm2",
            "vpaddd ymm3, ymm3, ymm3",
            "vpaddd ymm4, ymm4, ymm4",
            "vpaddd ymm5, ymm5, ymm5",
            "vpaddd ymm6, ymm6, ymm6",
            "vpaddd ymm7, ymm7, ymm7",
            "vpaddd ymm8, ymm8, ymm8",
            "vpaddd ymm9, ymm9, ymm9",
            "vpaddd ymm10, ymm10, ymm10",
            "vpaddd ymm11, ymm11, ymm11",
            "vpaddd ymm12, ymm12, ymm12",
            "vpaddd ymm13, ymm13, ymm13",
            "vpaddd ymm14, ymm14, ymm14",
            "vpaddd ymm15, ymm15, ymm15",
            "syscall",
            "mov {status}, rax",
            "2:",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "cmp rax, {until}",
            "jb 2b",
            "vmovdqu [{store} + 0], ymm0",
            "vmovdqu [{store} + 32], ymm1",
            "vmovdqu [{store} + 64], ymm2",
            "vmovdqu [{store} + 96], ymm3",
            "vmovdqu [{store} + 128], ymm4",
            "vmovdqu [{store} + 160], ymm5",
            "vmovdqu [{store} + 192], ymm6",
            "vmovdqu [{store} + 224], ymm7",
            "vmovdqu [{store} + 256], ymm8",
            "vmovdqu [{store} + 288], ymm9",
            "vmovdqu [{store} + 320], ymm10",
            "vmovdqu [{store} + 352], ymm11",
            "vmovdqu [{store} + 384], ymm12",
            "vmovdqu [{store} + 416], ymm13",
            "vmovdqu [{store} + 448], ymm14",
            "vmovdqu [{store} + 480], ymm15",
            load = in(reg) load.as_ptr(),
            store = in(reg) store.as_mut_ptr(),
            until = in(reg) until,
            status = out(reg) status,
            inlateout("rax") nr::SET_AFFINITY => _,
            inlateout("rdi") cpu => _,
            out("rcx") _,
            out("rdx") _,
            out("r11") _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
    (store, status)
}

/// The TSC now.
fn rdtsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `rdtsc` only reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack)) };
    u64::from(high) << 32 | u64::from(low)
}

/// One thread's rounds.
fn rounds(thread: u64, cpus: u64, hold_ticks: u64) -> Result<u64, alloc::string::String> {
    for round in 0..ROUNDS {
        let load = pattern(thread, round);
        let target = (thread + round) % cpus;
        // SAFETY: the caller checked that AVX2 runs.
        let (seen, status) = unsafe { hold_ymm(&load, target, rdtsc() + hold_ticks) };
        check_eq!(status, 0, "thread {thread}: set_affinity({target}) with the registers held");
        for reg in 0..16 {
            for q in 0..4 {
                check_eq!(seen[reg][q], doubled(load[reg][q]), "thread {thread} round {round}: ymm{reg} quarter {q}");
            }
        }
        check_eq!(sys::cpu(), Ok(target), "thread {thread}: the CPU after round {round}");
    }
    Ok(ROUNDS)
}

/// `avx`: two threads per CPU hold their ymm registers across migrations
/// and preemption.
pub fn avx(_args: &str) -> Outcome {
    let (avx2, osxsave) = cpu_has_avx2();
    if !avx2 {
        return Ok(alloc::string::String::from("this CPU has no AVX2: nothing to check"));
    }
    check!(osxsave, "the CPU has AVX2 but the kernel did not set CR4.OSXSAVE");
    check_eq!(xcr0() & 0b111, 0b111, "XCR0's x87, SSE and AVX bits");
    let _watchdog = Watchdog::start()?;
    let cpus = sys::cpu_count().ctx("cpu_count")?;
    let hz = sys::tsc_hz().ctx("tsc_hz")?.max(1_000_000);
    let hold_ticks = HOLD_NS * (hz / 1_000_000) / 1000;
    let mut threads = Vec::new();
    for t in 0..2 * cpus {
        threads.push(spawn_checked(move || rounds(t, cpus, hold_ticks)).ctx("spawn")?);
    }
    let mut total = 0;
    for (t, handle) in threads.into_iter().enumerate() {
        match handle.join() {
            Ok(n) => total += n,
            Err(e) => fail!("join of thread {t}: {e:?}"),
        }
    }
    Ok(format!("{} threads on {cpus} CPUs held ymm0-15 through {total} migrations, XCR0 {:#x}", 2 * cpus, xcr0()))
}
