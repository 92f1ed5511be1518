//! The `child_*` cases: the other half of the cases that need a second
//! process. Their parent passes them handles (as handle 0) and arguments,
//! and judges them by their exit code.

use alloc::format;
use alloc::string::String;

use ferrite_abi::Error;
use ferrite_user::{rt, sys};

use crate::faults::{peek, poke};
use crate::harness::{Ctx, Outcome};
use crate::ipc::{serve, CHILD_BITS};
use crate::process::SECRET;
use crate::syscalls::{KERNEL_HALF, KERNEL_IMAGE};

/// The handle every child that is given one finds it at.
const GIVEN: u64 = 0;
/// The handle numbers `child_probe_handles` tries.
const PROBED: u64 = 64;
/// Where `child_kernel_write` writes: kernel memory, 1 MiB into the
/// kernel half.
const KERNEL_WRITE_TARGET: u64 = KERNEL_HALF + 0x10_0000;

/// Checks that the runtime was told of exactly `count` handles. Children
/// that serve their parent check this only after the exchange: failing
/// before it would leave the parent waiting for a partner that is gone.
fn expect_handles(count: u64) -> Result<(), String> {
    check_eq!(rt::handles_given(), count, "handles given at start");
    Ok(())
}

/// Serves handle 0 until STOP (for `ipc_process`); the badge must stay the
/// same throughout (its parent checks that it is its pid).
pub fn child_server(_args: &str) -> Outcome {
    let (served, badge) = serve(GIVEN, |_| Ok(()))?;
    expect_handles(1)?;
    Ok(format!("served {served} calls from pid {badge}"))
}

/// Takes the parent's call on handle 0 and ends without answering it (for
/// `ipc_peer_gone`).
pub fn child_receive_and_die(_args: &str) -> Outcome {
    let (_badge, msg) = sys::recv(GIVEN).ctx("recv")?;
    check_eq!(msg, [1, 2, 3, 4], "the parent's call");
    expect_handles(1)?;
    Ok(String::from("leaving the call unanswered"))
}

/// Signals the notification it was given (for `notify`).
pub fn child_signal(_args: &str) -> Outcome {
    sys::signal(GIVEN, CHILD_BITS).ctx("signal")?;
    expect_handles(1)?;
    Ok(String::new())
}

/// Given no handles, no number may name anything (for `handles`), however
/// many its parent holds. Creating anything first would make a number
/// valid, so this probes before doing anything else. `signal` and
/// `handle_close` never block, so they go first for every number: if one
/// of the parent's handles had leaked in, they report it (and the close
/// removes it) before a `call` or `send` on it could block for ever.
pub fn child_probe_handles(_args: &str) -> Outcome {
    expect_handles(0)?;
    for h in 0..PROBED {
        check_eq!(sys::signal(h, 1), Err(Error::BadHandle), "signal({h})");
        check_eq!(sys::handle_close(h), Err(Error::BadHandle), "handle_close({h})");
    }
    for h in 0..PROBED {
        check_eq!(sys::call(h, [0; 4]), Err(Error::BadHandle), "call({h})");
        check_eq!(sys::send(h, [0; 4]), Err(Error::BadHandle), "send({h})");
    }
    Ok(format!("handles 0..{PROBED} refused"))
}

/// Reads the parent's page, at the address given in hex (for
/// `isolation`): the page is not mapped here, so this must fault.
pub fn child_peek(args: &str) -> Outcome {
    let digits = args.trim_start_matches("0x");
    let Ok(at) = u64::from_str_radix(digits, 16) else {
        fail!("'{args}' is not a hex address");
    };
    // SAFETY: deliberately reads memory this process does not have, which
    // must fault and end the process; the read has no other effect.
    let seen = unsafe { peek(at) };
    if seen == SECRET {
        fail!("read the parent's secret at {at:#x}");
    }
    fail!("{at:#x} is mapped here (it holds {seen:#x}): no fault, and the case cannot tell")
}

/// Reads the kernel's image: must fault.
pub fn child_kernel_read(_args: &str) -> Outcome {
    // SAFETY: deliberately reads a supervisor page, which must fault and
    // end the process.
    let seen = unsafe { peek(KERNEL_IMAGE) };
    fail!("read {seen:#x} at {KERNEL_IMAGE:#x} without a fault")
}

/// Writes to kernel memory: must fault.
pub fn child_kernel_write(_args: &str) -> Outcome {
    // SAFETY: deliberately writes to a supervisor address, which must fault
    // and end the process; if the write went through the kernel is broken
    // already, and the failure line says so.
    unsafe { poke(KERNEL_WRITE_TARGET, 0) };
    fail!("wrote to {KERNEL_WRITE_TARGET:#x} without a fault")
}
