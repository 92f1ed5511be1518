//! `serial`: the driver of COM1's 16550 UART, in user mode.
//!
//! Init starts it with five handles: COM1's eight ports (0x3f8-0x3ff),
//! its interrupt line (ISA IRQ 4), the endpoint it serves (receive), the
//! shell's input endpoint (send, with the badge
//! [`ferrite_ukit::stream::SOURCE_SERIAL`]), and a notification it signals
//! with [`READY_SERIAL`] once it serves (optional).
//!
//! - **Input** is interrupt-driven: the UART interrupts when bytes arrive,
//!   the interrupt thread reads them all and hands them to a
//!   [`Forwarder`], which sends them to the shell.
//! - **Output** is buffered: a call with [`OP_WRITE`] puts its bytes in a
//!   ring and returns; the UART's transmitter-empty interrupt takes them
//!   out, a FIFO (16 bytes) at a time. A call with [`OP_DRAIN`] returns
//!   once they are all out (the shell's output before a program's own).
//!
//! The interrupt line is edge-triggered, and the UART holds it up while any
//! cause is pending, so the interrupt thread serves every cause the
//! interrupt identification register shows until it shows none: only then
//! can the line fall, and the next cause make a new edge.
//!
//! The kernel writes its own log to the same UART by polling; the driver
//! leaves the baud rate and line settings as the kernel set them. No UART
//! (its scratch register does not keep a value): it says so and exits with
//! 0, which tells init not to start it again.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use ferrite_ukit::stream::{unpack, OP_DRAIN, OP_WRITE, READY_SERIAL};
use ferrite_user::port::{inb, outb};
use ferrite_user::service::Forwarder;
use ferrite_user::sys::{self, Handle};
use ferrite_user::{println, rt, thread};
use spin::Mutex;

ferrite_user::entry!(main);

/// The handles init gives, in order.
const PORTS: Handle = 0;
const IRQ: Handle = 1;
const SERVICE: Handle = 2;
const INPUT: Handle = 3;
const READY: Handle = 4;

/// COM1 and its registers.
const BASE: u16 = 0x3f8;
const DATA: u16 = BASE;
const IER: u16 = BASE + 1;
const IIR: u16 = BASE + 2;
const MCR: u16 = BASE + 4;
const LSR: u16 = BASE + 5;
const MSR: u16 = BASE + 6;
const SCRATCH: u16 = BASE + 7;
/// IER: received data, transmitter empty.
const IER_RX: u8 = 1 << 0;
const IER_TX: u8 = 1 << 1;
/// MCR: DTR, RTS, and OUT2, which on a PC lets the interrupt reach the
/// interrupt controller.
const MCR_ON: u8 = 0x0b;
/// LSR: data ready; transmitter holding register empty; transmitter
/// empty (the shift register too).
const LSR_DR: u8 = 1 << 0;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;
/// How long a drain waits at most (a wedged UART must not hold the shell).
const DRAIN_LIMIT_NS: u64 = 1_000_000_000;
/// Bytes the transmit FIFO takes at once.
const FIFO: usize = 16;
/// Bytes of output the ring holds at most; a writer waits for room.
const OUT_RING: usize = 4096;
/// The exit code when the handles are missing or wrong.
const FAILED: u64 = 1;

/// Output waiting for the transmitter, and the interrupt-enable bits (both
/// threads change IER, under this lock).
struct Output {
    ring: VecDeque<u8>,
    ier: u8,
}

fn main(_args: &str) -> u64 {
    if rt::handles_given() < 4 {
        println!("serial: started with {} handles, not 4", rt::handles_given());
        return FAILED;
    }
    if let Err(e) = sys::ioport_enable(PORTS) {
        println!("serial: ioport_enable: {e:?}");
        return FAILED;
    }
    outb(SCRATCH, 0x5a);
    if inb(SCRATCH) != 0x5a {
        println!("serial: no UART at {BASE:#x}; nothing to drive");
        return 0;
    }
    let interrupts = match sys::notification_create().and_then(|n| Ok((n, sys::irq_bind(IRQ, n, 1)?))) {
        Ok(pair) => pair,
        Err(e) => {
            println!("serial: binding IRQ 4: {e:?}");
            return FAILED;
        }
    };
    let forwarder = match Forwarder::start(INPUT) {
        Ok(f) => f,
        Err(e) => {
            println!("serial: starting the forwarder: {e:?}");
            return FAILED;
        }
    };
    let output = Arc::new(Mutex::new(Output { ring: VecDeque::new(), ier: IER_RX }));
    // Status causes left from before are cleared (bytes already received
    // stay: enabling input interrupts then raises one for them).
    outb(IER, 0);
    let _ = (inb(LSR), inb(IIR), inb(MSR));
    outb(MCR, MCR_ON);
    outb(IER, IER_RX);
    let irq_output = output.clone();
    if let Err(e) = thread::spawn(move || interrupt_thread(interrupts, &irq_output, &forwarder)) {
        println!("serial: starting the interrupt thread: {e:?}");
        return FAILED;
    }
    println!("serial: driving COM1 at {BASE:#x} (IRQ 4)");
    if rt::handles_given() > READY {
        let _ = sys::signal(READY, READY_SERIAL);
    }
    serve(&output)
}

/// Answers [`OP_WRITE`] calls: the bytes go into the ring, the transmitter
/// interrupt is turned on, and the reply says how many were taken.
fn serve(output: &Mutex<Output>) -> u64 {
    let mut reply = [0u64; 4];
    loop {
        let msg = match sys::reply_recv(SERVICE, reply) {
            Ok((_, msg)) => msg,
            Err(e) => {
                println!("serial: reply_recv: {e:?}");
                return FAILED;
            }
        };
        let (op, bytes, n) = unpack(&msg);
        reply = [0; 4];
        if op == OP_DRAIN {
            let start = sys::time_ns().unwrap_or(0);
            while !(output.lock().ring.is_empty() && inb(LSR) & LSR_TEMT != 0)
                && sys::time_ns().unwrap_or(u64::MAX).saturating_sub(start) < DRAIN_LIMIT_NS
            {
                thread::yield_now();
            }
            continue;
        }
        if op != OP_WRITE {
            continue;
        }
        let mut taken = 0;
        while taken < n {
            {
                let mut out = output.lock();
                let room = OUT_RING.saturating_sub(out.ring.len()).min(n - taken);
                out.ring.extend(&bytes[taken..taken + room]);
                taken += room;
                if out.ier & IER_TX == 0 {
                    out.ier |= IER_TX;
                    // Interrupts at once if the transmitter is empty.
                    outb(IER, out.ier);
                }
            }
            if taken < n {
                thread::yield_now();
            }
        }
        reply[0] = n as u64;
    }
}

/// Waits for the UART's interrupts and serves every pending cause.
fn interrupt_thread((notification, irq): (Handle, Handle), output: &Mutex<Output>, forwarder: &Forwarder) -> u64 {
    let mut input = Vec::new();
    loop {
        if sys::notify_wait(notification).is_err() {
            return FAILED;
        }
        loop {
            let iir = inb(IIR);
            if iir & 1 != 0 {
                break;
            }
            match (iir >> 1) & 0b111 {
                // Received data, or a character timeout: read it all.
                0b010 | 0b110 => {
                    while inb(LSR) & LSR_DR != 0 {
                        input.push(inb(DATA));
                    }
                }
                // Transmitter empty: the next FIFO's worth, or no more
                // transmitter interrupts.
                0b001 => {
                    let mut out = output.lock();
                    if out.ring.is_empty() {
                        out.ier &= !IER_TX;
                        outb(IER, out.ier);
                    } else if inb(LSR) & LSR_THRE != 0 {
                        let n = out.ring.len().min(FIFO);
                        for b in out.ring.drain(..n) {
                            outb(DATA, b);
                        }
                    }
                }
                // Line status: reading LSR clears it.
                0b011 => {
                    let _ = inb(LSR);
                }
                // Modem status: reading MSR clears it.
                _ => {
                    let _ = inb(MSR);
                }
            }
        }
        let _ = sys::irq_ack(irq);
        forwarder.push(&input);
        input.clear();
    }
}
