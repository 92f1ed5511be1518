//! The vector and floating-point state each thread owns: xmm0-15, MXCSR,
//! and the results of floating-point code, across every kind of switch.
//!
//! A check of the xmm registers has to hold them across the switch itself,
//! out of the compiler's reach: [`switch_keeping_xmm`] loads all sixteen,
//! makes the system call, and stores them, in one block of assembly.
//!
//! Per CPU, a pinned pair of threads talks over an endpoint (so each IPC
//! switches straight from one to the other mid-call) and also yields and
//! sleeps; one of the two runs with MXCSR set to round toward zero, the
//! other with the default. A third pinned thread per CPU computes a series
//! whose bits must match the main thread's result exactly.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::asm;
use core::hint::black_box;

use ferrite_abi::{nr, Error};
use ferrite_user::sys::{self, Handle, Message};

use crate::harness::{spawn_checked, Ctx, Outcome, Watchdog};
use crate::ipc::{reply_to, STOP};

/// The number of xmm registers in 64-bit mode.
const XMM_REGS: usize = 16;
/// The contents of xmm0-15, each as two 64-bit halves.
type Xmm = [[u64; 2]; XMM_REGS];

/// The pattern a thread loads before switch number `switch`: different in
/// every register, every thread and every switch.
fn pattern(thread: u64, switch: u64) -> Xmm {
    core::array::from_fn(|reg| {
        let low = thread << 48 | switch << 8 | reg as u64;
        [low, !low.rotate_left(29)]
    })
}

/// The system calls made with the xmm registers loaded; none of them
/// touches memory.
#[derive(Clone, Copy)]
enum Switch {
    Yield,
    Sleep(u64),
    Call(Handle),
    ReplyRecv(Handle),
    Recv(Handle),
    Send(Handle),
}

/// Makes the system call `how` (with `msg` as its message, updated with
/// the one received) while xmm0-15 hold `load`; returns its result and
/// what xmm0-15 held right after it.
fn switch_keeping_xmm(how: Switch, msg: &mut Message, load: &Xmm) -> (Result<u64, Error>, Xmm) {
    let (number, arg) = match how {
        Switch::Yield => (nr::YIELD, 0),
        Switch::Sleep(ns) => (nr::SLEEP, ns),
        Switch::Call(h) => (nr::CALL, h),
        Switch::ReplyRecv(h) => (nr::REPLY_RECV, h),
        Switch::Recv(h) => (nr::RECV, h),
        Switch::Send(h) => (nr::SEND, h),
    };
    let mut store: Xmm = [[0; 2]; XMM_REGS];
    let (status, value): (u64, u64);
    // SAFETY: the calls `Switch` allows touch no user memory; the message
    // registers are in-out, `rcx` and `r11` (which `syscall` overwrites)
    // are clobbered outputs, not lateouts, so neither pointer can be
    // allocated to them, and every xmm register is declared clobbered. The
    // loads read `load` and the stores write `store`, both 256 bytes, and
    // `movdqu` needs no alignment. No stack is used.
    unsafe {
        asm!(
            "movdqu xmm0, [{load}]",
            "movdqu xmm1, [{load} + 16]",
            "movdqu xmm2, [{load} + 32]",
            "movdqu xmm3, [{load} + 48]",
            "movdqu xmm4, [{load} + 64]",
            "movdqu xmm5, [{load} + 80]",
            "movdqu xmm6, [{load} + 96]",
            "movdqu xmm7, [{load} + 112]",
            "movdqu xmm8, [{load} + 128]",
            "movdqu xmm9, [{load} + 144]",
            "movdqu xmm10, [{load} + 160]",
            "movdqu xmm11, [{load} + 176]",
            "movdqu xmm12, [{load} + 192]",
            "movdqu xmm13, [{load} + 208]",
            "movdqu xmm14, [{load} + 224]",
            "movdqu xmm15, [{load} + 240]",
            "syscall",
            "movdqu [{store}], xmm0",
            "movdqu [{store} + 16], xmm1",
            "movdqu [{store} + 32], xmm2",
            "movdqu [{store} + 48], xmm3",
            "movdqu [{store} + 64], xmm4",
            "movdqu [{store} + 80], xmm5",
            "movdqu [{store} + 96], xmm6",
            "movdqu [{store} + 112], xmm7",
            "movdqu [{store} + 128], xmm8",
            "movdqu [{store} + 144], xmm9",
            "movdqu [{store} + 160], xmm10",
            "movdqu [{store} + 176], xmm11",
            "movdqu [{store} + 192], xmm12",
            "movdqu [{store} + 208], xmm13",
            "movdqu [{store} + 224], xmm14",
            "movdqu [{store} + 240], xmm15",
            load = in(reg) load.as_ptr(),
            store = in(reg) store.as_mut_ptr(),
            inlateout("rax") number => status,
            inlateout("rdi") arg => value,
            inout("rsi") msg[0],
            inout("rdx") msg[1],
            inout("r10") msg[2],
            inout("r8") msg[3],
            out("rcx") _,
            out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
        );
    }
    (ferrite_abi::result(status, value), store)
}

/// Makes a switch with a fresh pattern and checks the registers after it;
/// returns the call's result (and updates `msg`).
fn checked_switch(how: Switch, msg: &mut Message, thread: u64, switch: &mut u64) -> Result<u64, String> {
    *switch += 1;
    let load = pattern(thread, *switch);
    let (result, seen) = switch_keeping_xmm(how, msg, &load);
    for reg in 0..XMM_REGS {
        check_eq!(seen[reg], load[reg], "thread {thread}: xmm{reg} after switch {switch}");
    }
    result.ctx("a system call with the xmm registers loaded")
}

/// The MXCSR bits a thread chooses (DAZ, the exception masks, rounding,
/// FZ), as opposed to the exception flags that arithmetic sets.
const MXCSR_CONTROL: u32 = 0xffc0;
/// The control bits after reset (all exceptions masked, round to nearest),
/// which compiled Rust code assumes.
const MXCSR_DEFAULT: u32 = 0x1f80;
/// The rounding-control field set to "toward zero".
const MXCSR_ROUND_TOWARD_ZERO: u32 = 0x6000;

/// MXCSR's control bits.
fn mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: `stmxcsr` stores 4 bytes into `value` and changes nothing.
    unsafe { asm!("stmxcsr [{at}]", at = in(reg) &mut value, options(nostack)) };
    value & MXCSR_CONTROL
}

/// Sets MXCSR.
///
/// # Safety
///
/// Compiled code assumes the default rounding and masks: until MXCSR is
/// [`MXCSR_DEFAULT`] again, the thread may do no floating-point arithmetic.
unsafe fn set_mxcsr(value: u32) {
    // SAFETY: `ldmxcsr` loads 4 bytes from `value`, a valid MXCSR value
    // (reserved bits clear); the caller keeps to the rounding promise.
    unsafe { asm!("ldmxcsr [{at}]", at = in(reg) &value, options(nostack, readonly)) };
}

/// Round trips per pair.
const ROUNDS: u64 = 200;
/// The pair's client also sleeps every this many rounds...
const SLEEP_EVERY: u64 = 8;
/// ...for this long.
const SLEEP_NS: u64 = 50_000;
/// The pair's server yields every this many messages.
const YIELD_EVERY: u64 = 3;

/// The client of a pair: runs with MXCSR rounding toward zero, calls,
/// yields and sleeps, and checks its registers after each.
fn pair_client(cpu: u64, endpoint: Handle, thread: u64) -> Result<u64, String> {
    sys::set_affinity(cpu).ctx("pin")?;
    let pid = sys::pid().ctx("pid")?;
    let mut switch = 0;
    let toward_zero = MXCSR_DEFAULT | MXCSR_ROUND_TOWARD_ZERO;
    // SAFETY: this thread does only integer work until it restores the
    // default below.
    unsafe { set_mxcsr(toward_zero) };
    for round in 0..ROUNDS {
        let sent = [round, thread, !round, 0];
        let mut msg = sent;
        checked_switch(Switch::Call(endpoint), &mut msg, thread, &mut switch)?;
        check_eq!(msg, reply_to(&sent, pid), "thread {thread}: reply to call {round}");
        checked_switch(Switch::Yield, &mut msg, thread, &mut switch)?;
        if round % SLEEP_EVERY == 0 {
            checked_switch(Switch::Sleep(SLEEP_NS), &mut msg, thread, &mut switch)?;
        }
        check_eq!(mxcsr(), toward_zero, "thread {thread}: MXCSR after round {round}");
    }
    checked_switch(Switch::Send(endpoint), &mut [STOP, 0, 0, 0], thread, &mut switch)?;
    // SAFETY: back to the default, which is what compiled code expects.
    unsafe { set_mxcsr(MXCSR_DEFAULT) };
    check_eq!(sys::cpu(), Ok(cpu), "thread {thread}: CPU at the end");
    Ok(switch)
}

/// The server of a pair: keeps the default MXCSR, answers calls with its
/// registers loaded, yields now and then, and checks its registers after
/// each.
fn pair_server(cpu: u64, endpoint: Handle, thread: u64) -> Result<u64, String> {
    sys::set_affinity(cpu).ctx("pin")?;
    check_eq!(mxcsr(), MXCSR_DEFAULT, "thread {thread}: MXCSR at start");
    let mut switch = 0;
    let mut msg = [0; 4];
    let mut badge = checked_switch(Switch::Recv(endpoint), &mut msg, thread, &mut switch)?;
    let mut served = 0;
    while msg[0] != STOP {
        msg = reply_to(&msg, badge);
        badge = checked_switch(Switch::ReplyRecv(endpoint), &mut msg, thread, &mut switch)?;
        served += 1;
        if served % YIELD_EVERY == 0 {
            checked_switch(Switch::Yield, &mut [0; 4], thread, &mut switch)?;
        }
        check_eq!(mxcsr(), MXCSR_DEFAULT, "thread {thread}: MXCSR after message {served}");
    }
    check_eq!(served, ROUNDS, "thread {thread}: messages served");
    Ok(switch)
}

/// Terms of the series.
const TERMS: u64 = 20_000;
/// The series yields every this many terms, so that threads switch in the
/// middle of it.
const TERMS_PER_YIELD: u64 = 500;

/// A floating-point computation whose every bit depends on the registers
/// and MXCSR surviving its switches: 4 * sum(1/k^2) + sum((-1)^(k+1)/k).
fn series() -> f64 {
    let terms = black_box(TERMS);
    let (mut squares, mut alternating) = (0.0f64, 0.0f64);
    for k in 1..=terms {
        let x = k as f64;
        squares += 1.0 / (x * x);
        alternating += if k % 2 == 1 { 1.0 / x } else { -1.0 / x };
        if k % TERMS_PER_YIELD == 0 {
            // A failed yield only means one switch fewer.
            let _ = sys::yield_now();
        }
    }
    4.0 * squares + alternating
}

/// xmm registers, MXCSR and floating-point results across switches.
pub fn fpu(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    check_eq!(mxcsr(), MXCSR_DEFAULT, "the main thread's MXCSR at start");
    let reference = series().to_bits();
    let count = sys::cpu_count().ctx("cpu_count")?;
    let mut threads = Vec::new();
    let mut endpoints = Vec::new();
    for cpu in 0..count {
        let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
        endpoints.push(endpoint);
        let (client, server, computer) = (3 * cpu, 3 * cpu + 1, 3 * cpu + 2);
        threads.push((client, spawn_checked(move || pair_client(cpu, endpoint, client)).ctx("spawn")?));
        threads.push((server, spawn_checked(move || pair_server(cpu, endpoint, server)).ctx("spawn")?));
        let computing = spawn_checked(move || {
            sys::set_affinity(cpu).ctx("pin")?;
            let bits = series().to_bits();
            check_eq!(bits, reference, "thread {computer}: the series' bits");
            Ok(0)
        })
        .ctx("spawn")?;
        threads.push((computer, computing));
    }
    let mut switches = 0;
    for (thread, handle) in threads {
        match handle.join() {
            Ok(n) => switches += n,
            Err(e) => fail!("join of thread {thread}: {e:?}"),
        }
    }
    for endpoint in endpoints {
        sys::handle_close(endpoint).ctx("close an endpoint")?;
    }
    check_eq!(series().to_bits(), reference, "the main thread's series, again");
    Ok(format!("{count} CPUs, {switches} checked switches"))
}
