//! The drivers and the shell: what init starts once its report is out, with
//! the device rights each needs and no more, and starts again when one dies.
//!
//! Init holds the root resources (ferrite_abi::root) and two endpoints it
//! makes: `input`, which the drivers send typed bytes to (each through a
//! handle minted with its own badge) and the shell receives from; and
//! `serial`, which the serial driver serves and the shell calls to write.
//! Init keeps its own handles to both, so that a driver or a shell that is
//! started again finds the same endpoints, and a caller waits for it
//! rather than failing.
//!
//! | program | handles, in order |
//! |---|---|
//! | `serial` | COM1's ports 0x3f8-0x3ff, ISA IRQ 4, `serial` (receive), `input` (send, badge SOURCE_SERIAL), `ready` (signal) |
//! | `kbd` | port 0x60, port 0x64, ISA IRQ 1, `input` (send, badge SOURCE_KEYBOARD), `ready` (signal) |
//! | `sh` | `input` (receive), `serial` (send), the machine |
//!
//! Each runs under a supervisor thread that waits for it. One that exits
//! with 0 has nothing to do (no such device) and is left alone; one that
//! fails, faults or is killed is started again, with a log line, after a
//! pause; five quick deaths in a row and it is given up on. When init
//! stops running the serial driver, for either reason, it closes its own
//! receive handle to `serial`: no one can receive there any more, so the
//! shell's calls fail (and it answers on the console) instead of waiting
//! for a driver that will not come.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ferrite_abi::{rights, root, Error, Grant};
use ferrite_ukit::stream::{READY_KEYBOARD, READY_SERIAL, SOURCE_KEYBOARD, SOURCE_SERIAL};
use ferrite_user::sys::{self, Handle};
use ferrite_user::{println, thread};

/// The pause before a program is started again.
const RESTART_PAUSE_NS: u64 = 200_000_000;
/// A life shorter than this counts as a quick death.
const QUICK_NS: u64 = 2_000_000_000;
/// Quick deaths in a row before init gives up on a program.
const QUICK_DEATHS: u32 = 5;

/// Starts the drivers and then the shell, each under its supervisor. A
/// program that is not among the boot modules is skipped, with a line.
///
/// The shell starts once both drivers serve (or have ended, or
/// [`READY_WAIT_NS`] has passed): a shell before its drivers is of no use,
/// and the drivers' first lines, on the console, are then out before the
/// serial driver starts to send the shell's (both share COM1).
pub fn start() {
    let (drivers, shell, ready) = match grants() {
        Ok(all) => all,
        Err(why) => return println!("init: cannot start the drivers and the shell: {why}"),
    };
    println!("init: starting serial, kbd, then sh");
    let mut expected = 0;
    for program in drivers {
        expected |= program.ready;
        run(program, Some(ready));
    }
    // Never joined: it rings once, late, if a driver never says it serves.
    let timer = thread::spawn(move || {
        thread::sleep_ns(READY_WAIT_NS);
        let _ = sys::signal(ready, READY_TIMEOUT);
        0
    });
    let mut seen = 0;
    while timer.is_ok() && seen & expected != expected && seen & READY_TIMEOUT == 0 {
        match sys::notify_wait(ready) {
            Ok(bits) => seen |= bits,
            Err(_) => break,
        }
    }
    drop(timer);
    run(shell, None);
}

/// How long the shell waits for the drivers at most.
const READY_WAIT_NS: u64 = 3_000_000_000;
/// The ready bit of the timeout.
const READY_TIMEOUT: u64 = 1 << 63;

/// A program to run: its name, the grants it starts with, the endpoint it
/// serves (closed once it is not run any more), and the ready bit to
/// signal then (0 for none).
struct Program {
    name: &'static str,
    grants: Vec<Grant>,
    serves: Option<Handle>,
    ready: u64,
}

/// Runs `program` under a supervisor thread; when it is not run any more,
/// closes what it serves and rings its ready bit on `ready` (so that no
/// one waits for it).
fn run(program: Program, ready: Option<Handle>) {
    let name = program.name;
    let supervised = thread::spawn(move || {
        let code = supervise(program.name, &program.grants);
        if let Some(endpoint) = program.serves {
            let _ = sys::handle_close(endpoint);
        }
        if let Some(ready) = ready {
            let _ = sys::signal(ready, program.ready);
        }
        code
    });
    if let Err(e) = supervised {
        println!("init: cannot supervise {name}: {e:?}");
    }
}

/// The drivers, the shell, and the notification the drivers say they
/// serve on.
fn grants() -> Result<(Vec<Program>, Program, Handle), String> {
    let ctx = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
    let input = sys::endpoint_create().map_err(ctx("the input endpoint"))?;
    let serial = sys::endpoint_create().map_err(ctx("the serial endpoint"))?;
    let ready = sys::notification_create().map_err(ctx("the ready notification"))?;
    let minted = |badge| sys::handle_mint(input, rights::SEND | rights::TRANSFER, badge).map_err(ctx("handle_mint"));
    let ports = |base, len| sys::resource_narrow(root::PORTS, base, len).map_err(ctx("ports"));
    let irq = |line| sys::resource_narrow(root::IRQ, line, 1).map_err(ctx("an interrupt line"));
    let serial_grants = [ports(0x3f8, 8)?, irq(4)?, serial, minted(SOURCE_SERIAL)?, ready];
    let kbd_grants = [ports(0x60, 1)?, ports(0x64, 1)?, irq(1)?, minted(SOURCE_KEYBOARD)?, ready];
    let same = |handles: &[Handle]| handles.iter().map(|&h| Grant::same(h)).collect::<Vec<Grant>>();
    let mut serial_list = same(&serial_grants);
    serial_list[2].rights = rights::RECEIVE;
    serial_list[3].rights = rights::SEND;
    serial_list[4].rights = rights::SIGNAL;
    let mut kbd_list = same(&kbd_grants);
    kbd_list[3].rights = rights::SEND;
    kbd_list[4].rights = rights::SIGNAL;
    // The shell's copy of `serial` is a handle of its own, which stays
    // when `serial` itself is closed.
    let serial_send = sys::handle_derive(serial, rights::SEND | rights::TRANSFER).map_err(ctx("handle_derive"))?;
    let sh_list = alloc::vec![
        Grant { handle: input, rights: rights::RECEIVE },
        Grant { handle: serial_send, rights: rights::SEND },
        Grant { handle: root::SYSTEM, rights: rights::USE },
    ];
    let drivers = alloc::vec![
        Program { name: "serial", grants: serial_list, serves: Some(serial), ready: READY_SERIAL },
        Program { name: "kbd", grants: kbd_list, serves: None, ready: READY_KEYBOARD },
    ];
    Ok((drivers, Program { name: "sh", grants: sh_list, serves: None, ready: 0 }, ready))
}

/// Runs `name` with `grants` until it ends with 0 or dies too often.
fn supervise(name: &'static str, grants: &[Grant]) -> u64 {
    let mut quick = 0;
    loop {
        let started = sys::time_ns().unwrap_or(0);
        let child = match sys::spawn_with(name, grants, None) {
            Ok(child) => child,
            Err(Error::NotFound) => {
                println!("init: no program '{name}' among the boot modules; not started");
                return 0;
            }
            Err(e) => {
                println!("init: cannot start {name}: {e:?}");
                return 1;
            }
        };
        let code = match sys::wait(child) {
            Ok(code) => code,
            Err(e) => {
                println!("init: waiting for {name}: {e:?}");
                return 1;
            }
        };
        if code == 0 {
            return 0;
        }
        let lived = sys::time_ns().unwrap_or(0).saturating_sub(started);
        quick = if lived < QUICK_NS { quick + 1 } else { 0 };
        if quick >= QUICK_DEATHS {
            println!(
                "init: {name} ended with {code:#x}, {QUICK_DEATHS} times in a row within seconds; giving up on it"
            );
            return 1;
        }
        println!("init: {name} ended with {code:#x}; starting it again");
        thread::sleep_ns(RESTART_PAUSE_NS);
    }
}
