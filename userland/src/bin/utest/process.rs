//! Processes: `spawn` and `wait`, IPC and notifications between processes,
//! handle tables that are each process's own, and address spaces that are
//! too.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use ferrite_abi::{map, Error, Grant, EXIT_FAULT, MAX_HANDLES, SPAWN_CMD_MAX, SPAWN_HANDLES_MAX};
use ferrite_user::sys::{self, Handle};
use ferrite_user::thread;

use crate::harness::{addr, join_expect, Ctx, Outcome, Watchdog};
use crate::ipc::{client, STOP};
use crate::raw::{self, spawn_cmd};
use crate::syscalls::{KERNEL_HALF, KERNEL_IMAGE, PAGE};

/// The exit code `hello exit=7` must end with.
const HELLO_EXIT: u64 = 7;
/// Processes started at once in `spawn`.
const AT_ONCE: usize = 10;
/// A handle number no case gets from the kernel (they make only a few).
const NEVER_A_HANDLE: u64 = 1000;

/// Spawns `command` and checks the code it exits with.
#[track_caller]
fn run(command: &str, handles: &[Handle], code: u64) -> Result<(), String> {
    let child = spawn_cmd(command, handles).ctx(command)?;
    let at = core::panic::Location::caller();
    match sys::wait(child) {
        Ok(seen) if seen == code => Ok(()),
        seen => Err(format!("{}:{}: '{command}' ended with {seen:?}, expected Ok({code})", at.file(), at.line())),
    }
}

/// Every argument check of `spawn`, each with all other arguments valid.
fn spawn_refusals() -> Result<(), String> {
    let hello = "hello refused";
    let (cmd, cmd_len) = (addr(hello), hello.len() as u64);
    check_eq!(spawn_cmd("nosuch", &[]), Err(Error::NotFound), "spawn of an unknown module");
    // An empty command from a valid pointer (an empty literal's pointer
    // might be dangling).
    check_eq!(raw::spawn(cmd, 0, cmd, 0), Err(Error::NotFound), "spawn of an empty command");
    check_eq!(spawn_cmd("notelf", &[]), Err(Error::BadProgram), "spawn of a text file");
    check_eq!(spawn_cmd("truncated", &[]), Err(Error::BadProgram), "spawn of a cut-off ELF file");

    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let one = [Grant::same(endpoint)];
    let handles = addr(&one);
    check_eq!(raw::spawn(0, cmd_len, handles, 0), Err(Error::BadAddress), "a null command");
    check_eq!(raw::spawn(KERNEL_IMAGE, cmd_len, handles, 0), Err(Error::BadAddress), "a kernel command");
    // A command buffer valid for its whole length, so only the length is
    // wrong.
    let mut long = vec![b' '; SPAWN_CMD_MAX as usize + 1];
    long[..hello.len()].copy_from_slice(hello.as_bytes());
    let long_cmd = raw::spawn(addr(&long[..]), SPAWN_CMD_MAX + 1, handles, 0);
    check_eq!(long_cmd, Err(Error::BadLength), "a command of SPAWN_CMD_MAX + 1 bytes");
    check_eq!(raw::spawn(cmd, cmd_len, 0, 1), Err(Error::BadAddress), "a null handle list");
    check_eq!(raw::spawn(cmd, cmd_len, KERNEL_HALF, 1), Err(Error::BadAddress), "a kernel handle list");
    let many = vec![Grant::same(endpoint); SPAWN_HANDLES_MAX as usize + 1];
    let too_many = raw::spawn(cmd, cmd_len, addr(&many[..]), SPAWN_HANDLES_MAX + 1);
    check_eq!(too_many, Err(Error::BadLength), "SPAWN_HANDLES_MAX + 1 handles");

    check_eq!(spawn_cmd(hello, &[NEVER_A_HANDLE]), Err(Error::BadHandle), "a never-created handle");
    check_eq!(spawn_cmd(hello, &[endpoint, MAX_HANDLES]), Err(Error::BadHandle), "handle MAX_HANDLES");
    let t = thread::spawn(|| 0).ctx("thread::spawn")?;
    check_eq!(spawn_cmd(hello, &[t.handle()]), Err(Error::BadHandle), "a thread handle to pass");
    join_expect(t, 0)?;
    let p = spawn_cmd("hello", &[]).ctx("spawn hello")?;
    check_eq!(spawn_cmd(hello, &[p]), Err(Error::BadHandle), "a process handle to pass");
    check_eq!(sys::wait(p), Ok(0), "hello's exit code");
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    Ok(())
}

/// `spawn` and `wait`.
pub fn spawn(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    run("hello a b", &[], 0)?;
    run("hello exit=7", &[], HELLO_EXIT)?;
    spawn_refusals()?;

    for bad in [NEVER_A_HANDLE, MAX_HANDLES, u64::MAX] {
        check_eq!(sys::wait(bad), Err(Error::BadHandle), "wait on handle {bad}");
    }
    let p = spawn_cmd("hello twice", &[]).ctx("spawn hello")?;
    check_eq!(sys::wait(p), Ok(0), "the first wait");
    check_eq!(sys::wait(p), Err(Error::BadHandle), "a second wait on the same handle");
    // Wrong kinds. Should the kernel accept them, the thread and the
    // process both end soon, so the mistake shows as a result, not a hang.
    let t = thread::spawn(|| 0).ctx("thread::spawn")?;
    check_eq!(sys::wait(t.handle()), Err(Error::BadHandle), "wait on a thread handle");
    join_expect(t, 0)?;
    let p = spawn_cmd("hello joined", &[]).ctx("spawn hello")?;
    check_eq!(sys::thread_join(p), Err(Error::BadHandle), "thread_join on a process handle");
    check_eq!(sys::wait(p), Ok(0), "hello's exit code");

    let mut children = Vec::new();
    for i in 0..AT_ONCE {
        children.push(spawn_cmd(&format!("hello at once {i}"), &[]).ctx("spawn hello")?);
    }
    for (i, child) in children.into_iter().enumerate() {
        check_eq!(sys::wait(child), Ok(0), "exit code of hello {i} of {AT_ONCE}");
    }
    Ok(format!("{AT_ONCE} at once"))
}

/// Rounds of `churn`, the processes per round, and the threads after them.
const CHURN_ROUNDS: usize = 30;
const CHURN_PROCESSES: usize = 3;
const CHURN_THREADS: u64 = 200;

/// Many short processes and threads; the kernel checks that its frames,
/// heap and thread counts come back afterwards.
pub fn churn(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    for round in 0..CHURN_ROUNDS {
        let mut children = [0; CHURN_PROCESSES];
        for child in &mut children {
            *child = spawn_cmd("hello churn", &[]).ctx("spawn hello")?;
        }
        for child in children {
            check_eq!(sys::wait(child), Ok(0), "round {round}: hello's exit code");
        }
    }
    for i in 0..CHURN_THREADS {
        let t = thread::spawn(move || i).ctx("thread::spawn")?;
        join_expect(t, i)?;
    }
    Ok(format!("{} processes, {CHURN_THREADS} threads", CHURN_ROUNDS * CHURN_PROCESSES))
}

/// Calls the parent makes in `ipc_process`.
const PROCESS_CALLS: u64 = 1000;
/// The salt (word 3) of its calls, to tell them from the thread cases'.
const PROCESS_SALT: u64 = 0x9a7e;

/// IPC with a child process as the server.
pub fn ipc_process(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let child = spawn_cmd("utest child_server", &[endpoint]).ctx("spawn child_server")?;
    // `client` checks that word 3 of each reply, the badge the child saw,
    // is our pid.
    client(endpoint, PROCESS_CALLS, PROCESS_SALT)?;
    sys::send(endpoint, [STOP, 0, 0, 0]).ctx("send STOP")?;
    check_eq!(sys::wait(child), Ok(0), "child_server's exit code");
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    Ok(format!("{PROCESS_CALLS} calls to a child"))
}

/// A call whose receiver's process ends before replying fails with
/// `PeerGone`.
pub fn ipc_peer_gone(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let child = spawn_cmd("utest child_receive_and_die", &[endpoint]).ctx("spawn child_receive_and_die")?;
    check_eq!(sys::call(endpoint, [1, 2, 3, 4]), Err(Error::PeerGone), "a call the child never answers");
    check_eq!(sys::wait(child), Ok(0), "child_receive_and_die's exit code");
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    Ok(String::new())
}

/// The highest handle number `handles` probes before creating any.
const PROBE_LOW: u64 = 20;
/// Endpoints the parent holds while its child probes its own table.
const PARENT_ENDPOINTS: usize = 8;

/// Every call that takes a handle must refuse `h` with `BadHandle`. The
/// calls that cannot block come first, so a number that wrongly names
/// something is reported by them rather than hanging a blocking call.
fn refuses_everywhere(h: Handle) -> Result<(), String> {
    check_eq!(sys::signal(h, 1), Err(Error::BadHandle), "signal({h})");
    check_eq!(sys::handle_close(h), Err(Error::BadHandle), "handle_close({h})");
    check_eq!(sys::call(h, [0; 4]), Err(Error::BadHandle), "call({h})");
    check_eq!(sys::send(h, [0; 4]), Err(Error::BadHandle), "send({h})");
    check_eq!(sys::recv(h), Err(Error::BadHandle), "recv({h})");
    check_eq!(sys::reply_recv(h, [0; 4]), Err(Error::BadHandle), "reply_recv({h})");
    check_eq!(sys::notify_wait(h), Err(Error::BadHandle), "notify_wait({h})");
    check_eq!(sys::thread_join(h), Err(Error::BadHandle), "thread_join({h})");
    check_eq!(sys::wait(h), Err(Error::BadHandle), "wait({h})");
    Ok(())
}

/// Handle numbers that were never handed out, closed ones, and a child
/// that cannot use its parent's.
pub fn handles(_args: &str) -> Outcome {
    // No handle exists yet in this process (so no watchdog: it needs one).
    for h in (0..=PROBE_LOW).chain([MAX_HANDLES, u64::MAX]) {
        refuses_everywhere(h)?;
    }
    let _watchdog = Watchdog::start()?;
    let closed = sys::endpoint_create().ctx("endpoint_create")?;
    sys::handle_close(closed).ctx("close it")?;
    refuses_everywhere(closed)?;

    let mut endpoints = Vec::new();
    for _ in 0..PARENT_ENDPOINTS {
        endpoints.push(sys::endpoint_create().ctx("endpoint_create")?);
    }
    run("utest child_probe_handles", &[], 0)?;
    for h in endpoints {
        sys::handle_close(h).ctx("close an endpoint")?;
    }
    Ok(String::new())
}

/// What the parent of `isolation` writes into its page.
pub const SECRET: u64 = 0x5ec2_e75e_c2e7_5ec2;
/// The read-only padding mapped before the secret page, to keep its
/// address far above anything the child maps for itself at start.
const SPACER: usize = 4 << 20;

/// Another process cannot read our memory, no process can touch the
/// kernel's, and `write` will not copy it out for us.
pub fn isolation(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let spacer = sys::map(SPACER, 0).ctx("map the spacer")?;
    let page = sys::map(PAGE as usize, map::WRITE).ctx("map the secret page")?.cast::<u64>();
    // SAFETY: the page is ours, writable and aligned, and used by nothing
    // else.
    unsafe { page.write_volatile(SECRET) };
    let at = page.addr();
    run(&format!("utest child_peek {at:#x}"), &[], EXIT_FAULT)?;
    run("utest child_kernel_read", &[], EXIT_FAULT)?;
    run("utest child_kernel_write", &[], EXIT_FAULT)?;
    for kernel in [KERNEL_HALF, KERNEL_IMAGE] {
        check_eq!(raw::write(kernel, 8), Err(Error::BadAddress), "write from {kernel:#x}");
    }
    // SAFETY: as above.
    let kept = unsafe { page.read_volatile() };
    check_eq!(kept, SECRET, "the secret afterwards");
    // SAFETY: both came from `map` and are not used any more.
    unsafe { sys::unmap(page.cast(), PAGE as usize) }.ctx("unmap the secret page")?;
    // SAFETY: as above.
    unsafe { sys::unmap(spacer, SPACER) }.ctx("unmap the spacer")?;
    Ok(format!("secret at {at:#x}"))
}
