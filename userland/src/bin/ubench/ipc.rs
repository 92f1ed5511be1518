//! IPC round trips between two processes: `ipc_same_cpu` (both pinned to
//! CPU 0) and `ipc_cross_cpu` (the server pinned to CPU 1). The client
//! `call`s; the server, `ubench server <cpu>`, answers with `reply_recv`,
//! the one-system-call server loop of L4 and seL4.
//!
//! One more figure, beyond the list: `ipc_same_cpu_threads`, the
//! same round trip between two threads of this process, so no address-space
//! switch. It is the like-for-like peer of Linux's futex ping-pong (between
//! threads), and it shows what the two switches of `ipc_same_cpu` cost.
use ferrite_kcore::bench::{measure, Plan, Unit};
use ferrite_user::sys::{self, Handle, Message};

use crate::clock::Tsc;
use crate::{report_measured, report_not_applicable, Check, Failure};

/// Word 0 of the message that ends a server.
const STOP: u64 = u64::MAX;

/// The IPC figures.
pub fn round_trips(hz: u64, cpus: u64) -> Result<(), Failure> {
    round_trip("ipc_same_cpu", hz, 0)?;
    threads_round_trip(hz)?;
    if cpus < 2 {
        report_not_applicable("ipc_cross_cpu", Unit::Nanoseconds, "needs 2 CPUs");
        return Ok(());
    }
    round_trip("ipc_cross_cpu", hz, 1)
}

/// The server at the other end of a figure.
enum Server {
    /// `ubench server <cpu>`, a process of its own.
    Process(u64),
    /// A thread of this process.
    Thread,
}

/// Calls from CPU 0 to a server on `server_cpu`, timed, then the server
/// stopped and every reply checked.
fn round_trip(name: &str, hz: u64, server_cpu: u64) -> Result<(), Failure> {
    let endpoint = sys::endpoint_create().check("endpoint_create")?;
    let command = alloc::format!("ubench server {server_cpu}");
    let server = Server::Process(sys::spawn(&command, &[endpoint]).check("spawn the server")?);
    let how = alloc::format!("call from cpu0 to a server process on cpu{server_cpu}, reply_recv");
    time_calls(name, hz, endpoint, server, &how)
}

/// `ipc_same_cpu_threads`: calls from CPU 0 to a server thread of this
/// process, also on CPU 0.
fn threads_round_trip(hz: u64) -> Result<(), Failure> {
    let endpoint = sys::endpoint_create().check("endpoint_create")?;
    let server = ferrite_user::thread::spawn(move || match serve_on(endpoint, 0) {
        Ok(()) => 0,
        Err(_) => 1,
    })
    .check("spawn the server thread")?;
    let how = "call from cpu0 to a server thread of the same process on cpu0, reply_recv";
    time_calls("ipc_same_cpu_threads", hz, endpoint, Server::Thread, how)?;
    match server.join().check("join the server thread")? {
        0 => Ok(()),
        _ => Err(Failure::new(format_args!("ipc_same_cpu_threads: the server thread failed"))),
    }
}

/// Times calls on `endpoint`, checking every reply; then stops the server
/// (and, for a process, waits for it) and reports the figure.
fn time_calls(name: &str, hz: u64, endpoint: Handle, server: Server, how: &str) -> Result<(), Failure> {
    let plan = Plan { warmup: 500, samples: 201, batch: 50 };
    let mut failed = None;
    let mut sequence = 0u64;
    let measured = measure(&plan, &Tsc, || {
        sequence += 1;
        match sys::call(endpoint, [sequence, 1, 2, 3]) {
            Ok(reply) if reply[0] == sequence => {}
            Ok(reply) => failed = Some(alloc::format!("reply {reply:?} to call {sequence}")),
            Err(e) => failed = Some(alloc::format!("call: {e:?}")),
        }
    });
    sys::send(endpoint, [STOP, 0, 0, 0]).check("send STOP")?;
    if let Server::Process(process) = server {
        let code = sys::wait(process).check("wait for the server")?;
        if code != 0 {
            return Err(Failure::new(format_args!("{name}: the server ended with {code}")));
        }
    }
    sys::handle_close(endpoint).check("handle_close")?;
    if let Some(why) = failed {
        return Err(Failure::new(format_args!("{name}: {why}")));
    }
    report_measured(name, hz, &plan, &measured, 1, format_args!("{how}"));
    Ok(())
}

/// `ubench server <cpu>`: answers every call on handle 0 with its message,
/// until a STOP arrives.
pub fn serve(cpu: u64) -> Result<(), Failure> {
    const ENDPOINT: Handle = 0;
    serve_on(ENDPOINT, cpu)
}

/// Pins to `cpu` and answers every call on `endpoint` with its message,
/// until a STOP arrives.
fn serve_on(endpoint: Handle, cpu: u64) -> Result<(), Failure> {
    sys::set_affinity(cpu).check("set_affinity")?;
    let (_, mut msg): (u64, Message) = sys::recv(endpoint).check("recv")?;
    while msg[0] != STOP {
        (_, msg) = sys::reply_recv(endpoint, msg).check("reply_recv")?;
    }
    Ok(())
}
