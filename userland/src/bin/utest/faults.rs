//! The cases that must end by a fault: the kernel kills the process, and
//! the runner expects exit code `EXIT_FAULT`. Each provokes one fault as
//! its main action and reports a failure if it comes back.
//!
//! The faulting accesses are inline assembly rather than Rust pointer
//! accesses: to Rust, reading an address that holds no allocation is
//! undefined behaviour and the compiler may assume it never happens; to the
//! CPU it is a well-defined fault, which is what these cases are about.

use alloc::format;
use alloc::string::String;
use core::arch::asm;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_abi::{map, ANY_CPU};
use ferrite_user::sys;
use ferrite_user::thread::{self, JoinHandle};

use crate::harness::{now, Ctx, Outcome, NS_PER_MS};
use crate::syscalls::{KERNEL_IMAGE, NON_CANONICAL, PAGE};

/// Reads the 8 bytes at `at` with one `mov`.
///
/// # Safety
///
/// Either `at` is readable memory that nothing writes at the same time, or
/// the caller means the read to fault and end the process.
pub unsafe fn peek(at: u64) -> u64 {
    let value: u64;
    // SAFETY: the caller's promise; the instruction only reads.
    unsafe {
        asm!("mov {value}, qword ptr [{at}]", at = in(reg) at, value = lateout(reg) value, options(nostack, readonly))
    };
    value
}

/// Writes 8 bytes to `at` with one `mov`.
///
/// # Safety
///
/// Either `at` is writable memory nothing else uses, or the caller means
/// the write to fault and end the process.
pub unsafe fn poke(at: u64, value: u64) {
    // SAFETY: the caller's promise.
    unsafe { asm!("mov qword ptr [{at}], {value}", at = in(reg) at, value = in(reg) value, options(nostack)) };
}

/// Reads address 0: a page fault (the first page is never mapped).
pub fn fault_null(_args: &str) -> Outcome {
    // SAFETY: a read meant to fault; it changes nothing.
    let seen = unsafe { peek(black_box(0)) };
    fail!("read {seen:#x} at address 0 without a fault")
}

/// Writes to our own code: a page fault (text is not writable).
pub fn fault_write_text(_args: &str) -> Outcome {
    let at = fault_write_text as fn(&str) -> Outcome as usize as u64;
    // SAFETY: writes back the byte that is already there, so even a kernel
    // that wrongly left the code writable changes nothing; the write is
    // meant to fault.
    unsafe {
        asm!("mov al, byte ptr [{at}]", "mov byte ptr [{at}], al", at = in(reg) at, out("al") _, options(nostack))
    };
    fail!("wrote to our code at {at:#x} without a fault")
}

/// The opcode of `ret`.
const RET: u8 = 0xc3;

/// Calls into a data page: a page fault, since mapped memory is never
/// executable (NX).
pub fn fault_exec_data(_args: &str) -> Outcome {
    let page = sys::map(PAGE as usize, map::WRITE).ctx("map a page")?;
    // SAFETY: the page is ours and writable.
    unsafe { page.write_volatile(RET) };
    // SAFETY: calls a page holding a single `ret`: if the CPU runs it (the
    // bug under test), it returns straight here with nothing changed but
    // what a C call may clobber, which the operands declare. Otherwise the
    // fetch faults and the process ends, as intended.
    unsafe { asm!("call {target}", target = in(reg) page.addr(), clobber_abi("C")) };
    fail!("executed the data page at {page:p}: no NX")
}

/// An undefined instruction: #UD.
pub fn fault_ud(_args: &str) -> Outcome {
    // SAFETY: `ud2` only raises #UD, which ends the process.
    unsafe { asm!("ud2", options(nomem, nostack)) };
    fail!("ud2 did not fault")
}

/// A privileged instruction in ring 3: #GP.
pub fn fault_gp(_args: &str) -> Outcome {
    // SAFETY: `hlt` in ring 3 raises #GP, which ends the process; if the
    // CPU halted instead, the next interrupt would resume here.
    unsafe { asm!("hlt", options(nomem, nostack)) };
    fail!("hlt in user mode did not fault")
}

/// An integer division by zero: #DE. Rust's own division checks its
/// divisor and would panic instead, so the `div` is assembly.
pub fn fault_de(_args: &str) -> Outcome {
    let divisor: u64 = black_box(0);
    let quotient: u64;
    // SAFETY: `div` by a zero register raises #DE, which ends the process;
    // the instruction touches only the declared registers.
    unsafe {
        asm!(
            "div {divisor}",
            divisor = in(reg) divisor,
            inout("rax") 1u64 => quotient,
            inout("rdx") 0u64 => _,
            options(nomem, nostack),
        )
    };
    fail!("1 / 0 gave {quotient} without a fault")
}

/// The stack each frame of [`recurse`] takes, at least.
const FRAME: usize = 4096;
/// How deep [`recurse`] goes before giving up: 1 GiB of stack, far more
/// than any stack a program gets, so reaching it means no guard stopped it.
const MAX_DEPTH: u64 = (1 << 30) / FRAME as u64;

/// Recurses with a page of stack per frame until the stack runs into
/// unmapped memory.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; FRAME];
    frame[0] = depth as u8;
    // Keeps the buffer (and so the frame's size) from being optimized out.
    let frame = black_box(&mut frame);
    if depth >= MAX_DEPTH {
        return depth;
    }
    recurse(depth + 1) + u64::from(frame[FRAME - 1])
}

/// Overflows the stack: a page fault below the stack.
pub fn fault_stack(_args: &str) -> Outcome {
    let depth = recurse(black_box(0));
    fail!("recursed {depth} frames of {FRAME} bytes without a fault")
}

/// Reads the kernel's image: a page fault (supervisor page).
pub fn fault_kernel_read(_args: &str) -> Outcome {
    // SAFETY: a read meant to fault; it changes nothing.
    let seen = unsafe { peek(black_box(KERNEL_IMAGE)) };
    fail!("read {seen:#x} at {KERNEL_IMAGE:#x} without a fault")
}

/// Reads a non-canonical address: #GP.
pub fn fault_noncanonical(_args: &str) -> Outcome {
    // SAFETY: a read meant to fault; it changes nothing.
    let seen = unsafe { peek(black_box(NON_CANONICAL)) };
    fail!("read {seen:#x} at {NON_CANONICAL:#x} without a fault")
}

/// `spin <cpu>`: runs on `cpu` in user mode, never entering the kernel,
/// until the kernel ends the process (its TLB-shootdown test watches the
/// CPU while it does).
pub fn spin(args: &str) -> Outcome {
    let cpu: u64 = args.trim().parse().map_err(|_| format!("spin: bad CPU '{args}'"))?;
    sys::set_affinity(cpu).map_err(|e| format!("set_affinity({cpu}): {e:?}"))?;
    loop {
        core::hint::spin_loop();
    }
}

/// Threads of `kill_threads` that block (the spinner does not count).
const BLOCKERS: u64 = 4;
/// How long the sleeper sleeps, and the spinner spins at most: far longer
/// than the runner's deadline, so only the kill can end them in time.
const LONG_NS: u64 = 60_000_000_000;
/// How long the threads get to settle into their waits.
const SETTLE_NS: u64 = 50 * NS_PER_MS;
/// Spins of the spinner between looks at the clock.
const SPINS_PER_CHECK: u64 = 1000;
/// How long the main thread waits for all of them to start.
const START_NS: u64 = 5_000_000_000;

/// Threads that have started in `kill_threads`.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Starts a thread of `kill_threads` that counts itself in [`STARTED`]
/// and then runs `body`, which must never return.
fn starter(body: impl FnOnce() + Send + 'static) -> Result<JoinHandle, String> {
    thread::spawn(move || {
        STARTED.fetch_add(1, Ordering::SeqCst);
        body();
        0
    })
    .ctx("thread::spawn")
}

/// Faults while other threads are blocked in every way there is, and one
/// runs on another CPU: the kernel must end all of them, promptly.
pub fn kill_threads(_args: &str) -> Outcome {
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let notification = sys::notification_create().ctx("notification_create")?;
    let count = sys::cpu_count().ctx("cpu_count")?;
    let sleeper = starter(|| {
        let _ = sys::sleep_ns(LONG_NS);
    })?;
    // On another CPU if there is one, so that the kill must reach a CPU
    // that is busy in user mode.
    let spinner_cpu = if count > 1 { count - 1 } else { ANY_CPU };
    // Never joined: the fault must end them. Their bodies ignore results,
    // since none of them may ever return.
    let _threads = [
        starter(move || {
            let _ = sys::recv(endpoint);
        })?,
        starter(move || {
            let _ = sys::notify_wait(notification);
        })?,
        starter(move || {
            let _ = sleeper.join();
        })?,
        starter(move || {
            let _ = sys::set_affinity(spinner_cpu);
            let Ok(start) = sys::time_ns() else { return };
            while sys::time_ns().is_ok_and(|t| t - start < LONG_NS) {
                for _ in 0..black_box(SPINS_PER_CHECK) {
                    core::hint::spin_loop();
                }
            }
        })?,
    ];
    let deadline = now()? + START_NS;
    while STARTED.load(Ordering::SeqCst) < BLOCKERS + 1 {
        check!(now()? < deadline, "only {} threads started", STARTED.load(Ordering::SeqCst));
        sys::yield_now().ctx("yield")?;
    }
    sys::sleep_ns(SETTLE_NS).ctx("sleep")?;
    // SAFETY: a read meant to fault and end the process, threads and all.
    let seen = unsafe { peek(black_box(0)) };
    fail!("read {seen:#x} at address 0 without a fault")
}

/// `fault_mf cpu=<n>`: on CPU n, an unmasked x87 divide by zero, then
/// `fwait`: with CR0.NE set that raises #MF and the process ends. Without
/// it the CPU would signal FERR# instead (and under QEMU carry on with a
/// wrong result), which this case reports as a failure.
pub fn fault_mf(args: &str) -> Outcome {
    let cpu = crate::harness::arg(args, "cpu")?.unwrap_or(0);
    sys::set_affinity(cpu).map_err(|e| format!("set_affinity({cpu}): {e:?}"))?;
    // The x87 control word with every exception masked but zero divide.
    let control: u16 = 0x037f & !(1 << 2);
    // SAFETY: the instructions touch only the x87 registers and `control`;
    // the exception they raise ends the process.
    unsafe {
        asm!(
            "fninit",
            "fldcw [{control}]",
            "fld1",
            "fldz",
            "fdivp st(1), st",
            "fwait",
            control = in(reg) &control,
            options(nostack),
        )
    };
    fail!("an unmasked x87 zero divide on cpu{cpu} did not raise #MF")
}

/// CPUID.07H:ECX[2]: the CPU has UMIP.
pub fn has_umip() -> bool {
    let max = core::arch::x86_64::__cpuid(0).eax;
    max >= 7 && core::arch::x86_64::__cpuid_count(7, 0).ecx & (1 << 2) != 0
}

/// `fault_umip op=<sgdt|sidt|sldt|str|smsw>`: where the CPU has UMIP the
/// instruction must fault (the kernel turns UMIP on); without it, it runs
/// and the case passes, saying so.
pub fn fault_umip(args: &str) -> Outcome {
    let op = args.split_whitespace().find_map(|w| w.strip_prefix("op=")).unwrap_or("sgdt");
    let mut table = [0u8; 16];
    let at = table.as_mut_ptr();
    // SAFETY: each stores at most 10 bytes into `table` (or a register);
    // with UMIP each raises #GP instead, which ends the process.
    unsafe {
        match op {
            "sgdt" => asm!("sgdt [{}]", in(reg) at, options(nostack)),
            "sidt" => asm!("sidt [{}]", in(reg) at, options(nostack)),
            "sldt" => asm!("sldt word ptr [{}]", in(reg) at, options(nostack)),
            "str" => asm!("str word ptr [{}]", in(reg) at, options(nostack)),
            "smsw" => asm!("smsw word ptr [{}]", in(reg) at, options(nostack)),
            other => fail!("unknown instruction '{other}'"),
        }
    }
    if has_umip() {
        fail!("{op} ran in user mode although the CPU has UMIP (it gave {:02x?})", &table[..10]);
    }
    Ok(format!("{op} runs: this CPU has no UMIP"))
}

/// `sysenter` in user mode: the kernel has turned it off (SYSENTER_CS 0),
/// so it raises #GP (#UD on AMD), and the process ends.
pub fn fault_sysenter(_args: &str) -> Outcome {
    // SAFETY: `sysenter` must fault; were it to enter the kernel, the
    // kernel is broken and the case cannot tell (it never comes back).
    unsafe { asm!("sysenter", options(nostack)) };
    fail!("sysenter came back")
}
