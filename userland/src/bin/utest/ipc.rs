//! IPC inside one process: call and reply on one CPU and across CPUs, many
//! clients, one-way sends, and notifications.
//!
//! Every server here answers a message with each word plus one and, in word
//! 3, the badge it saw; the client checks the whole reply. There is no
//! plain `reply` call, so a server could never both answer its last call
//! and stop: the client ends the conversation with a `send` of [`STOP`],
//! which needs no answer, and the server returns when it receives it.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_abi::{Error, ANY_CPU, MAX_HANDLES};
use ferrite_user::sys::{self, Handle, Message};

use crate::harness::{join_expect, spawn_checked, Ctx, Outcome, Watchdog, NS_PER_MS};

/// Word 0 of the message that ends a server (no client word 0 is this).
pub const STOP: u64 = 0x5709_5709_5709_5709;

/// The answer to `msg` from a server that saw `badge`.
pub fn reply_to(msg: &Message, badge: u64) -> Message {
    [msg[0].wrapping_add(1), msg[1].wrapping_add(1), msg[2].wrapping_add(1), badge]
}

/// Serves `endpoint` until a [`STOP`] message: answers each call with
/// [`reply_to`], after handing it to `inspect`. Checks that the badge never
/// changes (every caller here is in one process); returns the messages
/// served and that badge.
pub fn serve(endpoint: Handle, mut inspect: impl FnMut(&Message) -> Result<(), String>) -> Result<(u64, u64), String> {
    let (first_badge, mut msg) = sys::recv(endpoint).ctx("server: recv")?;
    let mut badge = first_badge;
    let mut served = 0;
    while msg[0] != STOP {
        check_eq!(badge, first_badge, "server: badge of message {served}");
        inspect(&msg)?;
        served += 1;
        (badge, msg) = sys::reply_recv(endpoint, reply_to(&msg, badge)).ctx("server: reply_recv")?;
    }
    check_eq!(badge, first_badge, "server: badge of STOP");
    Ok((served, first_badge))
}

/// The message a client sends as call `seq`: distinct in every word.
fn request(seq: u64, salt: u64) -> Message {
    [seq, seq.wrapping_mul(3) ^ salt, !seq, salt]
}

/// Makes `calls` calls on `endpoint` and checks every reply.
pub fn client(endpoint: Handle, calls: u64, salt: u64) -> Result<(), String> {
    let pid = sys::pid().ctx("pid")?;
    for seq in 0..calls {
        let msg = request(seq, salt);
        let reply = sys::call(endpoint, msg).ctx("call")?;
        check_eq!(reply, reply_to(&msg, pid), "reply to call {seq} (word 3 is the badge, our pid {pid})");
    }
    Ok(())
}

/// Calls per run of the one-client cases.
const CALLS: u64 = 5000;

/// One client (the main thread) and one server thread, pinned to the
/// given CPUs.
fn ping_pong(client_cpu: u64, server_cpu: u64) -> Result<(), String> {
    let _watchdog = Watchdog::start()?;
    sys::set_affinity(client_cpu).ctx("pin the client")?;
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let server = spawn_checked(move || {
        sys::set_affinity(server_cpu).ctx("pin the server")?;
        let (served, _) = serve(endpoint, |_| {
            check_eq!(sys::cpu(), Ok(server_cpu), "the server's CPU");
            Ok(())
        })?;
        Ok(served)
    })
    .ctx("spawn the server")?;
    client(endpoint, CALLS, 0)?;
    check_eq!(sys::cpu(), Ok(client_cpu), "the client's CPU");
    sys::send(endpoint, [STOP, 0, 0, 0]).ctx("send STOP")?;
    join_expect(server, CALLS)?;
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    sys::set_affinity(ANY_CPU).ctx("unpin")?;
    Ok(())
}

/// Client and server on CPU 0.
pub fn ipc_same_cpu(_args: &str) -> Outcome {
    ping_pong(0, 0)?;
    Ok(format!("{CALLS} calls on CPU 0"))
}

/// Client on CPU 0, server on the last CPU.
pub fn ipc_cross_cpu(_args: &str) -> Outcome {
    let last = sys::cpu_count().ctx("cpu_count")? - 1;
    ping_pong(0, last)?;
    if last == 0 {
        Ok(format!("{CALLS} calls, but only one CPU: both on CPU 0"))
    } else {
        Ok(format!("{CALLS} calls from CPU 0 to CPU {last}"))
    }
}

/// Clients in `ipc_many_clients`.
const CLIENTS: u64 = 8;
/// Calls each of them makes.
const CLIENT_CALLS: u64 = 500;

/// One unpinned server, many unpinned clients: every client's messages
/// arrive in order and none is lost.
pub fn ipc_many_clients(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    let seen = counts.clone();
    let server = spawn_checked(move || {
        let (served, _) = serve(endpoint, |msg| {
            // Word 3 is the client's number (the salt), word 0 its sequence.
            let (id, seq) = (msg[3], msg[0]);
            check!(id < CLIENTS, "server: a message from client {id}: {msg:x?}");
            let count = seen[id as usize].fetch_add(1, Ordering::Relaxed);
            check_eq!(seq, count, "server: sequence number from client {id}");
            Ok(())
        })?;
        Ok(served)
    })
    .ctx("spawn the server")?;
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        clients.push(spawn_checked(move || client(endpoint, CLIENT_CALLS, id).map(|()| 0)).ctx("spawn a client")?);
    }
    for c in clients {
        join_expect(c, 0)?;
    }
    sys::send(endpoint, [STOP, 0, 0, 0]).ctx("send STOP")?;
    join_expect(server, CLIENTS * CLIENT_CALLS)?;
    for (id, count) in counts.iter().enumerate() {
        check_eq!(count.load(Ordering::Relaxed), CLIENT_CALLS, "messages served for client {id}");
    }
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    Ok(format!("{CLIENTS} clients x {CLIENT_CALLS} calls"))
}

/// Messages in `ipc_send_recv`.
const SENDS: u64 = 1000;
/// Word 3 of every message it sends.
const SEND_TAG: u64 = 0x5e4d;

/// One-way messages: in order, with the sender's pid as badge; and the
/// handle checks of the IPC calls.
pub fn ipc_send_recv(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let pid = sys::pid().ctx("pid")?;
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let receiver = spawn_checked(move || {
        for seq in 0..SENDS {
            let (badge, msg) = sys::recv(endpoint).ctx("recv")?;
            check_eq!(badge, pid, "badge of message {seq}");
            check_eq!(msg, [seq, !seq, seq.wrapping_mul(5), SEND_TAG], "message {seq}");
        }
        Ok(SENDS)
    })
    .ctx("spawn the receiver")?;
    for seq in 0..SENDS {
        sys::send(endpoint, [seq, !seq, seq.wrapping_mul(5), SEND_TAG]).ctx("send")?;
    }
    join_expect(receiver, SENDS)?;

    let notification = sys::notification_create().ctx("notification_create")?;
    check_eq!(sys::recv(notification), Err(Error::BadHandle), "recv on a notification");
    for bad in [MAX_HANDLES, u64::MAX] {
        check_eq!(sys::send(bad, [0; 4]), Err(Error::BadHandle), "send on handle {bad}");
    }
    let closed = sys::endpoint_create().ctx("endpoint_create")?;
    sys::handle_close(closed).ctx("close it")?;
    check_eq!(sys::call(closed, [0; 4]), Err(Error::BadHandle), "call on a closed endpoint");
    sys::handle_close(notification).ctx("close the notification")?;
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    Ok(format!("{SENDS} messages in order"))
}

/// How long the waiter of `notify` gets to (wrongly) wake up on a clear
/// word.
const CLEAR_WORD_NS: u64 = 20 * NS_PER_MS;
/// The bits the child of `notify` signals.
pub const CHILD_BITS: u64 = 0x00c0_ffee;
/// Marks "the waiter returned" in its result slot, since bits may be 0.
const WOKE: u64 = 1 << 63;

/// Notifications: bits accumulate, a wait takes them all, handle checks,
/// and a signal from another process.
pub fn notify(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let n = sys::notification_create().ctx("notification_create")?;
    sys::signal(n, 1).ctx("signal 1")?;
    sys::signal(n, 2).ctx("signal 2")?;
    check_eq!(sys::notify_wait(n), Ok(3), "notify_wait after signals 1 and 2");

    // The word is clear now: a waiter must block until the next signal.
    let woke = Arc::new(AtomicU64::new(0));
    let result = woke.clone();
    let waiter = spawn_checked(move || {
        let bits = sys::notify_wait(n).ctx("the waiter's notify_wait")?;
        result.store(bits | WOKE, Ordering::SeqCst);
        Ok(bits)
    })
    .ctx("spawn the waiter")?;
    sys::sleep_ns(CLEAR_WORD_NS).ctx("sleep")?;
    let early = woke.load(Ordering::SeqCst);
    check_eq!(early, 0, "the waiter's result before the signal (bits {:#x})", early & !WOKE);
    sys::signal(n, 4).ctx("signal 4")?;
    join_expect(waiter, 4)?;

    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    for bad in [MAX_HANDLES, u64::MAX] {
        check_eq!(sys::signal(bad, 1), Err(Error::BadHandle), "signal on handle {bad}");
    }
    check_eq!(sys::signal(endpoint, 1), Err(Error::BadHandle), "signal on an endpoint");
    check_eq!(sys::notify_wait(endpoint), Err(Error::BadHandle), "notify_wait on an endpoint");

    let child = crate::raw::spawn_cmd("utest child_signal", &[n]).ctx("spawn child_signal")?;
    check_eq!(sys::notify_wait(n), Ok(CHILD_BITS), "the bits the child signalled");
    check_eq!(sys::wait(child), Ok(0), "child_signal's exit code");
    sys::handle_close(endpoint).ctx("close the endpoint")?;
    sys::handle_close(n).ctx("close the notification")?;
    Ok(String::new())
}
