//! `kbd`: the PS/2 keyboard driver (the i8042 controller), in user mode.
//!
//! Init starts it with five handles: the controller's data port (0x60),
//! its status and command port (0x64), the keyboard's interrupt line (ISA
//! IRQ 1), the shell's input endpoint (send, with the badge
//! [`ferrite_ukit::stream::SOURCE_KEYBOARD`]), and a notification it
//! signals with [`READY_KEYBOARD`] once it serves (optional).
//!
//! At start it sets the controller's configuration byte: keyboard
//! interrupt on, keyboard clock on, and translation to scan code set 1 on
//! (firmware usually leaves it so, but need not). Then each interrupt it
//! reads every byte the controller holds (dropping mouse bytes), decodes
//! keys ([`Decoder`]), turns them into the bytes a terminal would send
//! ([`key_bytes`]) and hands them to a [`Forwarder`] for the shell. No
//! controller (the status port reads 0xff): it says so and exits with 0,
//! which tells init not to start it again.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use ferrite_ukit::scancode::Decoder;
use ferrite_ukit::stream::{key_bytes, READY_KEYBOARD};
use ferrite_user::port::{inb, outb};
use ferrite_user::service::Forwarder;
use ferrite_user::sys::{self, Handle};
use ferrite_user::{println, rt};

ferrite_user::entry!(main);

/// The handles init gives, in order.
const DATA_PORT: Handle = 0;
const STATUS_PORT: Handle = 1;
const IRQ: Handle = 2;
const INPUT: Handle = 3;
const READY: Handle = 4;

const DATA: u16 = 0x60;
const STATUS: u16 = 0x64;
/// Status: output buffer full (a byte to read); input buffer full (the
/// controller has not taken the last command yet); the byte is the mouse's.
const OUT_FULL: u8 = 1 << 0;
const IN_FULL: u8 = 1 << 1;
const AUX: u8 = 1 << 5;
/// Controller commands: read and write the configuration byte.
const READ_CONFIG: u8 = 0x20;
const WRITE_CONFIG: u8 = 0x60;
/// Configuration: keyboard interrupt; keyboard clock off; translation.
const CONFIG_IRQ: u8 = 1 << 0;
const CONFIG_NO_CLOCK: u8 = 1 << 4;
const CONFIG_TRANSLATE: u8 = 1 << 6;
/// Polls of the status port before the controller counts as stuck.
const POLLS: u32 = 100_000;
/// Bytes read in one interrupt at most (the controller holds one at a time).
const BURST: usize = 64;
const FAILED: u64 = 1;

fn main(_args: &str) -> u64 {
    if rt::handles_given() < 4 {
        println!("kbd: started with {} handles, not 4", rt::handles_given());
        return FAILED;
    }
    if let Err(e) = sys::ioport_enable(DATA_PORT).and_then(|()| sys::ioport_enable(STATUS_PORT)) {
        println!("kbd: ioport_enable: {e:?}");
        return FAILED;
    }
    if inb(STATUS) == 0xff {
        println!("kbd: no PS/2 controller; nothing to drive");
        return 0;
    }
    // What firmware left behind is read and dropped.
    drain();
    if let Err(why) = configure() {
        println!("kbd: the PS/2 controller {why}; nothing to drive");
        return 0;
    }
    drain();
    let (notification, irq) = match sys::notification_create().and_then(|n| Ok((n, sys::irq_bind(IRQ, n, 1)?))) {
        Ok(pair) => pair,
        Err(e) => {
            println!("kbd: binding IRQ 1: {e:?}");
            return FAILED;
        }
    };
    let forwarder = match Forwarder::start(INPUT) {
        Ok(f) => f,
        Err(e) => {
            println!("kbd: starting the forwarder: {e:?}");
            return FAILED;
        }
    };
    println!("kbd: driving the PS/2 keyboard (IRQ 1)");
    if rt::handles_given() > READY {
        let _ = sys::signal(READY, READY_KEYBOARD);
    }
    let mut decoder = Decoder::new();
    let mut typed = Vec::new();
    loop {
        if sys::notify_wait(notification).is_err() {
            return FAILED;
        }
        for _ in 0..BURST {
            let status = inb(STATUS);
            if status & OUT_FULL == 0 {
                break;
            }
            let byte = inb(DATA);
            if status & AUX != 0 {
                continue;
            }
            if let Some(key) = decoder.feed(byte) {
                let mut bytes = [0u8; 4];
                let n = key_bytes(key, &mut bytes);
                typed.extend_from_slice(&bytes[..n]);
            }
        }
        let _ = sys::irq_ack(irq);
        forwarder.push(&typed);
        typed.clear();
    }
}

/// Reads and drops whatever the controller holds.
fn drain() {
    for _ in 0..BURST {
        if inb(STATUS) & OUT_FULL == 0 {
            break;
        }
        let _ = inb(DATA);
    }
}

/// Waits until the controller takes a byte.
fn wait_writable() -> Result<(), &'static str> {
    (0..POLLS).find(|_| inb(STATUS) & IN_FULL == 0).map(|_| ()).ok_or("does not take commands")
}

/// Waits until the controller has a byte.
fn wait_readable() -> Result<(), &'static str> {
    (0..POLLS).find(|_| inb(STATUS) & OUT_FULL != 0).map(|_| ()).ok_or("does not answer")
}

/// Keyboard interrupt, clock and translation on.
fn configure() -> Result<(), &'static str> {
    wait_writable()?;
    outb(STATUS, READ_CONFIG);
    wait_readable()?;
    let config = (inb(DATA) | CONFIG_IRQ | CONFIG_TRANSLATE) & !CONFIG_NO_CLOCK;
    wait_writable()?;
    outb(STATUS, WRITE_CONFIG);
    wait_writable()?;
    outb(DATA, config);
    Ok(())
}
