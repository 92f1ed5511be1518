//! Handles in messages (ferrite_abi, "Handles in messages"): a copy
//! arrives as a new handle of the receiver's, with the same rights and
//! object; the refusals; and every way a handle can fail to arrive — a
//! receiver that did not ask, a full table, a sender killed while its
//! message waits — leaves nothing behind (the kernel's runner checks the
//! whole case for leaks, run twice).

use alloc::format;
use alloc::string::String;

use ferrite_abi::{rights, Error, Grant, Limits};
use ferrite_user::sys::{self, Received};
use ferrite_user::thread;

use crate::harness::{spawn_checked, Ctx, Outcome, Watchdog, NS_PER_MS};

/// Bits a received notification handle is signalled with.
const BITS: u64 = 0x5a;

/// The open handles of this process now.
fn open_handles() -> Result<u64, String> {
    Ok(sys::limits().ctx("limits")?.1.handles)
}

/// `xfer`: everything above, in one process and with children.
pub fn xfer(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    let notification = sys::notification_create().ctx("notification_create")?;

    // A receiver thread gets a new handle to the same notification.
    let receiver = spawn_checked(move || {
        let (_, msg, got) = sys::recv_handle(endpoint).ctx("recv_handle")?;
        check_eq!(msg, [1, 2, 3, 4], "the message with the handle");
        let Received::Handle(h) = got else { return Err(format!("received {got:?}, not a handle")) };
        check!(h != notification, "the copy has the sender's number {h}");
        check_eq!(sys::handle_rights(h), Ok(rights::NOTIFICATION), "the copy's rights");
        sys::signal(h, BITS).ctx("signal through the copy")?;
        sys::handle_close(h).ctx("close the copy")?;
        Ok(0)
    })
    .ctx("spawn the receiver")?;
    sys::send_handle(endpoint, [1, 2, 3, 4], Some(notification)).ctx("send_handle")?;
    check_eq!(sys::notify_wait(notification), Ok(BITS), "the bits signalled through the copy");
    check_eq!(receiver.join(), Ok(0), "the receiver");

    // A reply carries a handle back; a message without one says so. (An
    // endpoint of its own: the server stays on it.)
    let calls = sys::endpoint_create().ctx("endpoint_create")?;
    let server = spawn_checked(move || {
        let endpoint = calls;
        let (_, _, got) = sys::recv_handle(endpoint).ctx("recv_handle")?;
        check_eq!(got, Received::None, "a call that passed no handle");
        let mine = sys::notification_create().ctx("the server's notification")?;
        let (_, _, got) = sys::reply_recv_handle(endpoint, [7, 0, 0, 0], Some(mine)).ctx("reply_recv_handle")?;
        check_eq!(got, Received::None, "the second call passed none");
        // Answered with `reply_recv` so that the caller's next wait ends.
        let _ = sys::reply_recv(endpoint, [8, 0, 0, 0]);
        Ok(0)
    })
    .ctx("spawn the server")?;
    let (reply, got) = sys::call_handle(calls, [0; 4], None).ctx("call_handle")?;
    check_eq!(reply[0], 7, "the reply");
    let Received::Handle(theirs) = got else { return Err(format!("the reply carried {got:?}, not a handle")) };
    check_eq!(sys::handle_rights(theirs), Ok(rights::NOTIFICATION), "the reply's handle's rights");
    sys::handle_close(theirs).ctx("close it")?;
    // A plain call: the reply's words only.
    check_eq!(sys::call(calls, [0; 4]).map(|r| r[0]), Ok(8), "a plain call");
    drop(server);

    // Refusals: nothing is sent.
    let me = thread::spawn(|| 0).ctx("a thread to pass")?;
    let thread_handle = me.handle();
    check_eq!(sys::send_handle(endpoint, [0; 4], Some(thread_handle)), Err(Error::BadHandle), "passing a thread");
    check_eq!(me.join(), Ok(0), "join");
    let no_transfer = sys::handle_derive(notification, rights::SIGNAL).ctx("derive without TRANSFER")?;
    check_eq!(sys::send_handle(endpoint, [0; 4], Some(no_transfer)), Err(Error::NoRights), "without TRANSFER");
    check_eq!(sys::send_handle(endpoint, [0; 4], Some(9999)), Err(Error::BadHandle), "no such handle");
    sys::handle_close(no_transfer).ctx("close")?;

    // A receiver that did not ask for handles: dropped, none added.
    let before = open_handles()?;
    let plain = spawn_checked(move || {
        let (_, msg) = sys::recv(endpoint).ctx("recv")?;
        Ok(msg[0])
    })
    .ctx("spawn the plain receiver")?;
    sys::send_handle(endpoint, [5, 0, 0, 0], Some(notification)).ctx("send_handle to a plain recv")?;
    check_eq!(plain.join(), Ok(5), "the plain receiver's message");
    check_eq!(open_handles()?, before, "open handles after a plain recv of a handle");

    // Across processes: a child gets the notification and signals it.
    let grant = [Grant { handle: endpoint, rights: rights::RECEIVE }];
    let child = sys::spawn_with("utest child_xfer", &grant, None).ctx("spawn child_xfer")?;
    sys::send_handle(endpoint, [0; 4], Some(notification)).ctx("send_handle to the child")?;
    check_eq!(sys::notify_wait(notification), Ok(BITS), "the child's signal");
    check_eq!(sys::wait(child), Ok(0), "child_xfer");

    // A child whose table is full: the message comes, the handle is dropped.
    let (mine, _) = sys::limits().ctx("limits")?;
    let small = Limits { handles: 2, ..mine };
    let full = sys::spawn_with("utest child_xfer_full", &grant, Some(&small)).ctx("spawn child_xfer_full")?;
    sys::send_handle(endpoint, [9, 0, 0, 0], Some(notification)).ctx("send_handle to a full table")?;
    check_eq!(sys::wait(full), Ok(0), "child_xfer_full");

    // A sender killed while its message (and handle) waits: the handle
    // goes with it (the runner's leak check sees it if not).
    let lonely = sys::endpoint_create().ctx("an endpoint nobody receives on")?;
    let sends = [Grant { handle: lonely, rights: rights::SEND }, Grant::same(notification)];
    let stuck = sys::spawn_with("utest child_xfer_stuck", &sends, None).ctx("spawn child_xfer_stuck")?;
    sys::sleep_ns(20 * NS_PER_MS).ctx("let it block")?;
    sys::kill(stuck).ctx("kill it")?;
    check_eq!(sys::wait(stuck), Ok(ferrite_abi::EXIT_KILLED), "child_xfer_stuck");
    sys::handle_close(lonely).ctx("close")?;

    sys::handle_close(endpoint).ctx("close")?;
    sys::handle_close(notification).ctx("close")?;
    Ok(String::from("passed within and across processes and in replies; refusals and drops leave nothing"))
}

/// Receives a notification handle on handle 0 and signals it.
pub fn child_xfer(_args: &str) -> Outcome {
    let (_, _, got) = sys::recv_handle(0).ctx("recv_handle")?;
    let Received::Handle(h) = got else { return Err(format!("received {got:?}, not a handle")) };
    sys::signal(h, BITS).ctx("signal")?;
    Ok(String::new())
}

/// With room for two handles, fills the second and receives one more.
pub fn child_xfer_full(_args: &str) -> Outcome {
    let _filler = sys::notification_create().ctx("the second handle")?;
    check_eq!(sys::notification_create(), Err(Error::NoMemory), "a third handle");
    let (_, msg, got) = sys::recv_handle(0).ctx("recv_handle")?;
    check_eq!((msg[0], got), (9, Received::Dropped), "a message whose handle had no room");
    Ok(String::new())
}

/// Sends handle 1 on handle 0, where nobody receives: blocks until killed.
pub fn child_xfer_stuck(_args: &str) -> Outcome {
    sys::send_handle(0, [0; 4], Some(1)).ctx("send_handle")?;
    fail!("a send nobody received returned")
}
