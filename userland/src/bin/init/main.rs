//! `init`: the first program, started by the kernel on a normal boot.
//!
//! First init proves that user mode works on every CPU: it runs a ring of
//! IPC between the CPUs and reports it (the boot tests wait for its exact
//! lines). Then it starts the drivers and the shell, and keeps them
//! running ([`services`]).
//!
//! # The ring
//!
//! With `n` CPUs, init makes one endpoint per CPU and two threads pinned to
//! each CPU `i`:
//!
//! - a server, which answers every call on endpoint `i` with the message's
//!   words each plus one (`reply_recv`, the L4-style fast path);
//! - a client, which makes [`CALLS_PER_CPU`] calls to the endpoint of CPU
//!   `(i + 1) % n`, so that every call crosses to the next CPU (with one
//!   CPU, the ring is that CPU alone), and checks every reply.
//!
//! A message names its client's CPU and its sequence number, so a reply that
//! went to the wrong caller, or a stale one, does not match. Servers also
//! check the badge: every caller is init itself, so it must be init's own
//! process ID. Each server counts the calls it answered; each client returns
//! the calls it completed as its exit code. Once every client is joined,
//! init checks that every server answered exactly the calls of its client,
//! prints one line per CPU and a total, and idles, sleeping, forever (the
//! servers stay blocked waiting for calls that never come).
//!
//! Any failure, on any thread, prints `init: FAILED: <why>` and ends the
//! whole process with [`FAILED_EXIT`].
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_user::sys::{self, Handle, Message};
use ferrite_user::thread::{self, JoinHandle};
use ferrite_user::{println, Error};

mod services;

ferrite_user::entry!(main);

/// The calls each CPU's client makes.
const CALLS_PER_CPU: u64 = 1000;
/// How long init sleeps at a time once its work is done.
const IDLE_SLEEP_NS: u64 = 1_000_000_000;
/// The exit code of a failed init.
const FAILED_EXIT: u64 = 1;
/// Mixed into every message so that words a kernel bug left over from
/// another register or message are unlikely to look right.
const MESSAGE_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

fn main(_args: &str) -> u64 {
    let n = sys::cpu_count().or_fail(format_args!("cpu_count"));
    println!("init: running on {n} CPUs");
    if n == 0 {
        fail(format_args!("the kernel reports no CPUs"));
    }
    let pid = sys::pid().or_fail(format_args!("pid"));
    let endpoints: Vec<Handle> =
        (0..n).map(|cpu| sys::endpoint_create().or_fail(format_args!("endpoint for cpu{cpu}"))).collect();
    let answered: Arc<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();

    // Never joined: the servers stay blocked in `reply_recv` while init
    // idles, so their handles and stacks live as long as init.
    let _servers: Vec<JoinHandle> = (0..n)
        .map(|cpu| {
            let endpoint = endpoints[index(cpu)];
            let answered = Arc::clone(&answered);
            thread::spawn(move || serve(cpu, n, pid, endpoint, &answered[index(cpu)]))
                .or_fail(format_args!("spawning the server for cpu{cpu}"))
        })
        .collect();
    let clients: Vec<JoinHandle> = (0..n)
        .map(|cpu| {
            let endpoint = endpoints[index(next(cpu, n))];
            thread::spawn(move || call_next(cpu, n, endpoint)).or_fail(format_args!("spawning the client for cpu{cpu}"))
        })
        .collect();
    let made: Vec<u64> = clients
        .into_iter()
        .zip(0..n)
        .map(|(client, cpu)| client.join().or_fail(format_args!("joining the client of cpu{cpu}")))
        .collect();

    // The kernel orders each server's count before the reply it sends, and
    // every reply before the join of the client that received it.
    let answered: Vec<u64> = answered.iter().map(|count| count.load(Ordering::Relaxed)).collect();
    for cpu in 0..n {
        let caller = previous(cpu, n);
        let (calls, answers) = (made[index(cpu)], answered[index(cpu)]);
        if calls != CALLS_PER_CPU {
            fail(format_args!("cpu{cpu} made {calls} calls, not {CALLS_PER_CPU}"));
        }
        if answers != made[index(caller)] {
            fail(format_args!("cpu{cpu} answered {answers} calls, but cpu{caller} made {}", made[index(caller)]));
        }
    }
    for cpu in 0..n {
        let (calls, answers) = (made[index(cpu)], answered[index(cpu)]);
        println!("init: cpu{cpu} made {calls} calls to cpu{} and answered {answers}", next(cpu, n));
    }
    let total: u64 = made.iter().sum();
    println!("init: {total} IPC round trips across {n} CPUs");
    services::start();
    loop {
        thread::sleep_ns(IDLE_SLEEP_NS);
    }
}

/// The server of CPU `cpu`: answers calls on `endpoint` forever, counting
/// them in `answered`.
fn serve(cpu: u64, n: u64, pid: u64, endpoint: Handle, answered: &AtomicU64) -> ! {
    pin(cpu, "server");
    let caller = previous(cpu, n);
    let (mut badge, mut msg) = sys::recv(endpoint).or_fail(format_args!("cpu{cpu} server: first recv"));
    loop {
        if badge != pid {
            fail(format_args!("cpu{cpu} server: badge {badge} on a call from init, whose pid is {pid}"));
        }
        if msg[0] != caller {
            fail(format_args!("cpu{cpu} server: a call from cpu{}, expected only cpu{caller}", msg[0]));
        }
        // Counted before the reply goes out, so the caller cannot see its
        // reply before the count.
        answered.fetch_add(1, Ordering::Relaxed);
        (badge, msg) = sys::reply_recv(endpoint, answer(msg)).or_fail(format_args!("cpu{cpu} server: reply_recv"));
    }
}

/// The client of CPU `cpu`: calls the server of the next CPU
/// [`CALLS_PER_CPU`] times through `endpoint`, checking every reply;
/// returns the calls that completed.
fn call_next(cpu: u64, n: u64, endpoint: Handle) -> u64 {
    pin(cpu, "client");
    let server = next(cpu, n);
    let mut made = 0;
    for seq in 0..CALLS_PER_CPU {
        let msg: Message = [cpu, seq, seq ^ MESSAGE_SALT, !seq];
        let reply = sys::call(endpoint, msg).or_fail(format_args!("cpu{cpu} client: call {seq} to cpu{server}"));
        let expected = answer(msg);
        if reply != expected {
            fail(format_args!(
                "cpu{cpu} client: call {seq} to cpu{server} got reply {reply:x?}, expected {expected:x?} (hex)"
            ));
        }
        made += 1;
    }
    let now = sys::cpu().or_fail(format_args!("cpu{cpu} client: cpu"));
    if now != cpu {
        fail(format_args!("cpu{cpu} client: moved to cpu{now} while pinned"));
    }
    made
}

/// What a server answers to `msg`.
fn answer(msg: Message) -> Message {
    msg.map(|word| word.wrapping_add(1))
}

/// Pins the calling thread to `cpu` and checks that it runs there.
fn pin(cpu: u64, role: &str) {
    sys::set_affinity(cpu).or_fail(format_args!("cpu{cpu} {role}: set_affinity({cpu})"));
    let now = sys::cpu().or_fail(format_args!("cpu{cpu} {role}: cpu"));
    if now != cpu {
        fail(format_args!("cpu{cpu} {role}: runs on cpu{now} after set_affinity({cpu})"));
    }
}

/// The CPU after `cpu` in the ring of `n`.
fn next(cpu: u64, n: u64) -> u64 {
    (cpu + 1) % n
}

/// The CPU before `cpu` in the ring of `n`.
fn previous(cpu: u64, n: u64) -> u64 {
    (cpu + n - 1) % n
}

/// A CPU number as an index (`usize` is 64 bits wide on x86-64).
fn index(cpu: u64) -> usize {
    cpu as usize
}

/// Reports a failure and ends init, whichever thread calls it.
fn fail(why: fmt::Arguments) -> ! {
    println!("init: FAILED: {why}");
    sys::exit(FAILED_EXIT)
}

/// Ends init with a message on an error.
trait OrFail<T> {
    /// The value, or `init: FAILED: <what>: <error>` and the end of init.
    fn or_fail(self, what: fmt::Arguments) -> T;
}

impl<T> OrFail<T> for Result<T, Error> {
    fn or_fail(self, what: fmt::Arguments) -> T {
        self.unwrap_or_else(|e| fail(format_args!("{what}: {e:?}")))
    }
}
