//! Rights on handles, badges, endpoints nobody can receive on any more,
//! and the edge values of the ABI's results.
//!
//! A holder of a send-only endpoint handle must not take other clients'
//! calls, a holder of a signal-only notification must not take its bits,
//! rights can only shrink, a badge reaches the server and cannot be
//! changed by the client, and a caller never waits for a receiver that
//! cannot come. Every value a call returns, `u64::MAX` and bit 63
//! included, must come back as a value and not read as an error.

use alloc::format;
use alloc::vec::Vec;

use ferrite_abi::{rights, Error, Grant};
use ferrite_user::sys::{self, Handle};
use ferrite_user::thread;

use crate::harness::{join_expect, spawn_checked, Ctx, Outcome, Watchdog, NS_PER_MS};
use crate::raw;

/// The handle a child is given.
const GIVEN: Handle = 0;
/// Word 0 of the message that tells a child server to stop.
const STOP: u64 = 0x5709;

/// Spawns `command` with `grants` and checks its exit code.
fn run_child(command: &str, grants: &[Grant], code: u64) -> Result<(), alloc::string::String> {
    let child = raw::spawn_grants(command, grants).ctx(command)?;
    check_eq!(sys::wait(child), Ok(code), "'{command}''s exit code");
    Ok(())
}

/// Endpoint rights: send-only and receive-only handles, derivation that can
/// only shrink, and a send-only client that cannot steal calls.
pub fn rights_endpoint(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let e = sys::endpoint_create().ctx("endpoint_create")?;
    check_eq!(sys::handle_rights(e), Ok(rights::ENDPOINT), "a new endpoint's rights");
    let send = sys::handle_derive(e, rights::SEND).ctx("derive send-only")?;
    check_eq!(sys::handle_rights(send), Ok(rights::SEND), "the send-only handle's rights");
    check_eq!(sys::recv(send).map(|_| ()), Err(Error::NoRights), "recv on a send-only handle");
    check_eq!(sys::reply_recv(send, [0; 4]).map(|_| ()), Err(Error::NoRights), "reply_recv on a send-only handle");
    check_eq!(sys::handle_derive(send, rights::SEND | rights::RECEIVE), Err(Error::NoRights), "more rights");
    check_eq!(sys::handle_derive(send, rights::SEND | 1 << 40), Err(Error::BadArgument), "an unknown right");
    let minted = sys::handle_mint(send, rights::SAME, 7).ctx("mint of an unbadged send handle")?;
    check_eq!(sys::handle_rights(minted), Ok(rights::SEND), "the minted handle's rights");
    let receive = sys::handle_derive(e, rights::RECEIVE).ctx("derive receive-only")?;
    check_eq!(sys::call(receive, [0; 4]), Err(Error::NoRights), "call on a receive-only handle");
    check_eq!(sys::send(receive, [0; 4]), Err(Error::NoRights), "send on a receive-only handle");
    let same = sys::handle_derive(e, rights::SAME).ctx("derive the same rights")?;
    check_eq!(sys::handle_rights(same), Ok(rights::ENDPOINT), "SAME rights");

    // Passing on needs TRANSFER, and the child's copy never has more.
    check_eq!(
        raw::spawn_grants("utest child_steal_calls", &[Grant::same(send)]),
        Err(Error::NoRights),
        "spawn passing a handle without TRANSFER"
    );
    let passable = sys::handle_derive(e, rights::SEND | rights::TRANSFER).ctx("derive send+transfer")?;
    check_eq!(
        raw::spawn_grants("utest child_steal_calls", &[Grant { handle: passable, rights: rights::RECEIVE }]),
        Err(Error::NoRights),
        "a grant of more rights than held"
    );
    // A send-only client beside a real one: it must not see the other's
    // call, and the server must get both.
    let pid = sys::pid().ctx("pid")?;
    let server = spawn_checked(move || {
        let mut seen = Vec::new();
        let (mut badge, mut msg) = sys::recv(e).ctx("server recv")?;
        while msg[0] != STOP {
            seen.push(msg[0]);
            (badge, msg) = sys::reply_recv(e, [msg[0] + 1, badge, 0, 0]).ctx("server reply_recv")?;
        }
        let _ = badge;
        seen.sort_unstable();
        check_eq!(seen, [11, 22], "the calls the server got");
        Ok(0)
    })
    .ctx("spawn the server")?;
    let client = spawn_checked(move || {
        check_eq!(sys::call(send, [22, 0, 0, 0]), Ok([23, pid, 0, 0]), "the local client's reply");
        Ok(0)
    })
    .ctx("spawn a client")?;
    run_child("utest child_steal_calls", &[Grant { handle: passable, rights: rights::SEND }], 0)?;
    join_expect(client, 0)?;
    sys::send(e, [STOP, 0, 0, 0]).ctx("stop the server")?;
    join_expect(server, 0)?;
    for h in [e, send, receive, same, passable, minted] {
        sys::handle_close(h).ctx("close")?;
    }
    Ok(alloc::string::String::from("send-only and receive-only handles refused 8 calls"))
}

/// The child of [`rights_endpoint`]: its handle may only send. It must not
/// be able to receive (which would steal the other client's call), to
/// derive more, or to pass it on; then it makes its own call.
pub fn child_steal_calls(_args: &str) -> Outcome {
    check_eq!(sys::handle_rights(GIVEN), Ok(rights::SEND), "the rights the child got");
    check_eq!(sys::recv(GIVEN).map(|_| ()), Err(Error::NoRights), "recv");
    check_eq!(sys::reply_recv(GIVEN, [0; 4]).map(|_| ()), Err(Error::NoRights), "reply_recv");
    check_eq!(sys::handle_derive(GIVEN, rights::RECEIVE), Err(Error::NoRights), "derive a receive handle");
    check_eq!(sys::spawn("hello", &[GIVEN]), Err(Error::NoRights), "pass it on");
    let pid = sys::pid().ctx("pid")?;
    check_eq!(sys::call(GIVEN, [11, 0, 0, 0]), Ok([12, pid, 0, 0]), "the child's reply");
    Ok(format!("pid {pid}: could only send"))
}

/// Badges: handles minted with a badge of the server's choosing carry it to
/// the server, from this process and from children; a badge cannot be
/// changed by minting again.
pub fn rights_badge(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let e = sys::endpoint_create().ctx("endpoint_create")?;
    let a = sys::handle_mint(e, rights::SEND | rights::TRANSFER, 0xa).ctx("mint a")?;
    let b = sys::handle_mint(e, rights::SEND | rights::TRANSFER, 0xb).ctx("mint b")?;
    let top = sys::handle_mint(e, rights::SEND, u64::MAX).ctx("mint u64::MAX")?;
    check_eq!(sys::handle_mint(a, rights::SEND, 0xc), Err(Error::BadArgument), "minting a badged handle again");
    check_eq!(sys::handle_mint(e, rights::SEND | rights::WAIT, 1), Err(Error::NoRights), "mint with WAIT");
    let n = sys::notification_create().ctx("notification_create")?;
    check_eq!(sys::handle_mint(n, rights::SIGNAL, 1), Err(Error::BadHandle), "mint of a notification");
    let a_copy = sys::handle_derive(a, rights::SEND).ctx("derive from a")?;
    let server = spawn_checked(move || {
        let mut badges = Vec::new();
        let (mut badge, mut msg) = sys::recv(e).ctx("server recv")?;
        while msg[0] != STOP {
            badges.push(badge);
            (badge, msg) = sys::reply_recv(e, [badge, msg[0], 0, 0]).ctx("server reply_recv")?;
        }
        badges.sort_unstable();
        check_eq!(badges, [0xa, 0xa, 0xb, u64::MAX], "the badges the server saw");
        Ok(0)
    })
    .ctx("spawn the server")?;
    check_eq!(sys::call(top, [1, 0, 0, 0]), Ok([u64::MAX, 1, 0, 0]), "a call with badge u64::MAX");
    check_eq!(sys::call(a_copy, [2, 0, 0, 0]), Ok([0xa, 2, 0, 0]), "a derived handle keeps the badge");
    run_child("utest child_badged_call badge=10", &[Grant { handle: a, rights: rights::SEND }], 0)?;
    run_child("utest child_badged_call badge=11", &[Grant { handle: b, rights: rights::SEND }], 0)?;
    sys::send(e, [STOP, 0, 0, 0]).ctx("stop the server")?;
    join_expect(server, 0)?;
    for h in [e, a, b, top, n, a_copy] {
        sys::handle_close(h).ctx("close")?;
    }
    Ok(alloc::string::String::from("badges 0xa, 0xb and u64::MAX reached the server"))
}

/// The child of [`rights_badge`]: calls through its minted handle, cannot
/// re-badge it, and checks that the server saw the badge in `badge=`.
pub fn child_badged_call(args: &str) -> Outcome {
    let badge = crate::harness::arg(args, "badge")?.unwrap_or(0);
    check_eq!(sys::handle_mint(GIVEN, rights::SEND, 0x666), Err(Error::BadArgument), "re-badge");
    check_eq!(sys::call(GIVEN, [3, 0, 0, 0]), Ok([badge, 3, 0, 0]), "the reply with the badge seen");
    Ok(format!("called with badge {badge:#x}"))
}

/// Notification rights: a signal-only holder cannot take the bits, a
/// wait-only holder cannot signal, and a child given signal-only cannot
/// wait either.
pub fn rights_notification(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let n = sys::notification_create().ctx("notification_create")?;
    check_eq!(sys::handle_rights(n), Ok(rights::NOTIFICATION), "a new notification's rights");
    let signal_only = sys::handle_derive(n, rights::SIGNAL | rights::TRANSFER).ctx("derive signal-only")?;
    let wait_only = sys::handle_derive(n, rights::WAIT).ctx("derive wait-only")?;
    check_eq!(sys::notify_wait(signal_only), Err(Error::NoRights), "notify_wait on a signal-only handle");
    check_eq!(sys::signal(wait_only, 1), Err(Error::NoRights), "signal on a wait-only handle");
    check_eq!(sys::call(n, [0; 4]), Err(Error::BadHandle), "call on a notification");
    sys::signal(signal_only, 0b100).ctx("signal")?;
    run_child("utest child_signal_only", &[Grant { handle: signal_only, rights: rights::SIGNAL }], 0)?;
    check_eq!(sys::notify_wait(wait_only), Ok(0b110), "the bits, none taken by the child");
    for h in [n, signal_only, wait_only] {
        sys::handle_close(h).ctx("close")?;
    }
    Ok(alloc::string::String::from("signal-only and wait-only handles refused 3 calls"))
}

/// The child of [`rights_notification`]: may signal, may not wait.
pub fn child_signal_only(_args: &str) -> Outcome {
    check_eq!(sys::notify_wait(GIVEN), Err(Error::NoRights), "notify_wait");
    check_eq!(sys::handle_derive(GIVEN, rights::WAIT), Err(Error::NoRights), "derive a wait handle");
    sys::signal(GIVEN, 0b010).ctx("signal")?;
    Ok(alloc::string::String::new())
}

/// A caller never waits for a receiver that cannot come: once the last
/// handle with the right to receive is gone, queued and later senders, and
/// receivers left without a handle, get `PeerGone`.
pub fn dead_endpoint(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    // Closed before anyone sends.
    let e = sys::endpoint_create().ctx("endpoint_create")?;
    let send = sys::handle_derive(e, rights::SEND).ctx("derive send-only")?;
    sys::handle_close(e).ctx("close the receive handle")?;
    check_eq!(sys::call(send, [1; 4]), Err(Error::PeerGone), "call with no receive handle left");
    check_eq!(sys::send(send, [1; 4]), Err(Error::PeerGone), "send with no receive handle left");
    sys::handle_close(send).ctx("close")?;

    // Closed while senders wait (or before they get there: PeerGone either
    // way).
    let e = sys::endpoint_create().ctx("endpoint_create")?;
    let send = sys::handle_derive(e, rights::SEND).ctx("derive send-only")?;
    let caller = spawn_checked(move || {
        check_eq!(sys::call(send, [2; 4]), Err(Error::PeerGone), "a queued call");
        Ok(0)
    })
    .ctx("spawn a caller")?;
    let sender = spawn_checked(move || {
        check_eq!(sys::send(send, [3; 4]), Err(Error::PeerGone), "a queued send");
        Ok(0)
    })
    .ctx("spawn a sender")?;
    sys::sleep_ns(20 * NS_PER_MS).ctx("sleep")?;
    sys::handle_close(e).ctx("close the last receive handle")?;
    join_expect(caller, 0)?;
    join_expect(sender, 0)?;
    sys::handle_close(send).ctx("close")?;

    // A receiver whose handle is closed under it.
    let e = sys::endpoint_create().ctx("endpoint_create")?;
    let receiver = spawn_checked(move || {
        check_eq!(sys::recv(e).map(|_| ()), Err(Error::PeerGone), "recv whose handle was closed");
        Ok(0)
    })
    .ctx("spawn a receiver")?;
    sys::sleep_ns(20 * NS_PER_MS).ctx("sleep")?;
    sys::handle_close(e).ctx("close the handle under the receiver")?;
    join_expect(receiver, 0)?;

    // The only receiver is another process, which ends: the caller still
    // waiting gets PeerGone.
    let e = sys::endpoint_create().ctx("endpoint_create")?;
    let send = sys::handle_derive(e, rights::SEND).ctx("derive send-only")?;
    let child = raw::spawn_grants("utest child_answer_once", &[Grant { handle: e, rights: rights::RECEIVE }])
        .ctx("spawn child_answer_once")?;
    sys::handle_close(e).ctx("close the parent's receive handle")?;
    check_eq!(sys::call(send, [4; 4]), Ok([5; 4]), "the one call answered");
    check_eq!(sys::call(send, [6; 4]), Err(Error::PeerGone), "a call after the receiver ended");
    check_eq!(sys::wait(child), Ok(0), "child_answer_once's exit code");
    sys::handle_close(send).ctx("close")?;
    Ok(alloc::string::String::from("6 waits on endpoints without receivers ended with PeerGone"))
}

/// The child of [`dead_endpoint`]: answers one call and ends (by `exit`
/// from another thread, while this one waits for the next message).
pub fn child_answer_once(_args: &str) -> Outcome {
    let exiter = thread::spawn(|| {
        let _ = sys::sleep_ns(20 * NS_PER_MS);
        sys::exit(0)
    })
    .ctx("spawn the exiting thread")?;
    let (_, msg) = sys::recv(GIVEN).ctx("recv")?;
    check_eq!(msg, [4; 4], "the call");
    // The reply goes out; what follows (a wait, or the parent's next call
    // taken and never answered) is cut short by the exit.
    let _ = sys::reply_recv(GIVEN, [5; 4]);
    let _ = exiter;
    loop {
        let _ = sys::sleep_ns(NS_PER_MS);
    }
}

/// Results that would have read as errors with a sign convention: exit
/// codes and notification words with bit 63 set, `u64::MAX`, `-4`.
pub fn abi_edges(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    const EDGES: [u64; 5] = [u64::MAX, (-4i64) as u64, 1 << 63, (1 << 63) | 5, i64::MAX as u64];
    let n = sys::notification_create().ctx("notification_create")?;
    for bits in EDGES {
        sys::signal(n, bits).ctx("signal")?;
        check_eq!(sys::notify_wait(n), Ok(bits), "notify_wait after signal({bits:#x})");
    }
    for code in EDGES {
        let t = thread::spawn(move || code).ctx("thread::spawn")?;
        check_eq!(t.join(), Ok(code), "a thread's exit code {code:#x}");
        let child = sys::spawn(&format!("hello exit={code}"), &[]).ctx("spawn hello")?;
        check_eq!(sys::wait(child), Ok(code), "a process's exit code {code:#x}");
    }
    sys::handle_close(n).ctx("close")?;
    Ok(format!("{} edge values came back as values", EDGES.len() * 3))
}
