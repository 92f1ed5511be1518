//! `sh`: the interactive shell.
//!
//! Init starts it with three handles: the input endpoint the drivers send
//! typed bytes to (receive; the badge says which driver,
//! [`SOURCE_SERIAL`] or [`SOURCE_KEYBOARD`]), the serial driver's endpoint
//! (send), and the machine's resource (for `ps`, `kill`, `cpus`, `mem`,
//! `poweroff` and `reboot`).
//!
//! Each source has its own line ([`LineEditor`]), and the answer to a line
//! goes back where it came from: to the serial terminal through the serial
//! driver (`\r\n` line ends, as a terminal in raw mode needs), and for the
//! keyboard to the kernel's console, which shows it on the screen (marked
//! as this process's output, as everything a program writes there is; the
//! console cannot erase, so a Backspace there shows the line again).
//!
//! Commands ([`command::parse`], [`command::HELP`]): `help`, `ps`,
//! `kill <pid>`, `run <program> [args]` or just `<program> [args]` (a boot
//! module; the shell waits for it to end), `cpus`, `mem`, `uptime`,
//! `bench` (runs `ubench`), `poweroff` and `reboot`. A bad command gets a
//! one-line error.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use ferrite_abi::{CpuInfo, Error, ProcessInfo, EXIT_FAULT, EXIT_KILLED, POWER_OFF, POWER_RESET};
use ferrite_ukit::command::{self, Command};
use ferrite_ukit::line::{Edit, LineEditor};
use ferrite_ukit::stream::{pack, unpack, CHUNK, OP_DRAIN, OP_INPUT, OP_WRITE, SOURCE_KEYBOARD, SOURCE_SERIAL};
use ferrite_user::sys::{self, Handle};
use ferrite_user::{io, println, rt};

ferrite_user::entry!(main);

/// The handles init gives, in order.
const INPUT: Handle = 0;
const SERIAL: Handle = 1;
const SYSTEM: Handle = 2;

const PROMPT: &str = "ferrite> ";
const GREETING: &str = "Ferrite shell. Type 'help' for the commands.";
/// The longest line.
const LINE: usize = 256;
const FAILED: u64 = 1;

/// Where a line came from, and where its answer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Serial,
    Keyboard,
}

struct Shell {
    lines: [LineEditor<LINE>; 2],
    /// What is to be written to each source, sent in one go by `flush`.
    pending: [String; 2],
    /// False once the serial driver is gone for good.
    serial_ok: bool,
}

fn main(_args: &str) -> u64 {
    if rt::handles_given() < 3 {
        println!("sh: started with {} handles, not 3", rt::handles_given());
        return FAILED;
    }
    let mut shell = Shell {
        lines: [LineEditor::new(), LineEditor::new()],
        pending: [String::new(), String::new()],
        serial_ok: true,
    };
    // The console first: it and the serial driver share COM1.
    for source in [Source::Keyboard, Source::Serial] {
        shell.out(source, &format!("{GREETING}\n{PROMPT}"));
        shell.flush(source, false);
    }
    loop {
        let (badge, msg) = match sys::recv(INPUT) {
            Ok(got) => got,
            Err(e) => {
                println!("sh: recv: {e:?}");
                return FAILED;
            }
        };
        let (op, bytes, n) = unpack(&msg);
        let source = match badge {
            SOURCE_SERIAL => Source::Serial,
            SOURCE_KEYBOARD => Source::Keyboard,
            _ => continue,
        };
        if op != OP_INPUT {
            continue;
        }
        for &b in &bytes[..n] {
            shell.typed(source, b);
        }
        shell.flush(source, false);
    }
}

impl Shell {
    fn line(&mut self, source: Source) -> &mut LineEditor<LINE> {
        &mut self.lines[source as usize]
    }

    /// One byte typed at `source`.
    fn typed(&mut self, source: Source, byte: u8) {
        match self.line(source).feed_byte(byte) {
            Edit::Nothing => {}
            Edit::Echo(c) => {
                let mut buf = [0u8; 4];
                self.out(source, c.encode_utf8(&mut buf));
            }
            Edit::Erase => match source {
                Source::Serial => self.out(source, "\x08 \x08"),
                Source::Keyboard => {
                    let again = format!("\n{PROMPT}{}", self.line(source).line());
                    self.out(source, &again);
                }
            },
            Edit::Cancel => self.out(source, &format!("^C\n{PROMPT}")),
            Edit::Line => {
                self.out(source, "\n");
                let line = String::from(self.line(source).line());
                self.line(source).clear();
                // What was typed and echoed is out before the command's
                // own output (a program writes to the kernel's console).
                self.flush(source, true);
                let answer = self.run(&line);
                self.out(source, &answer);
                self.out(source, PROMPT);
            }
        }
    }

    /// Queues `text` for where `source`'s answers go.
    fn out(&mut self, source: Source, text: &str) {
        self.pending[source as usize].push_str(text);
    }

    /// Writes what is queued for `source`; with `drain`, returns once it
    /// has left the serial port too.
    fn flush(&mut self, source: Source, drain: bool) {
        let text = core::mem::take(&mut self.pending[source as usize]);
        match source {
            Source::Keyboard => io::write_all(text.as_bytes()),
            Source::Serial => {
                if !self.serial_ok {
                    return;
                }
                let raw = text.replace('\n', "\r\n");
                let mut calls = raw.as_bytes().chunks(CHUNK).map(|chunk| pack(OP_WRITE, chunk).0).collect::<Vec<_>>();
                if drain {
                    calls.push(pack(OP_DRAIN, &[]).0);
                }
                for msg in calls {
                    // A driver that ends with the call (killed, or a fault)
                    // fails it with PeerGone; init starts another on the
                    // same endpoint, which takes the call again (the
                    // dead one's unsent output is lost, this piece may come
                    // twice). A second failure means the endpoint is
                    // closed: no driver will come.
                    let sent = sys::call(SERIAL, msg).or_else(|e| match e {
                        Error::PeerGone => sys::call(SERIAL, msg),
                        e => Err(e),
                    });
                    if let Err(e) = sent {
                        self.serial_ok = false;
                        println!("sh: the serial driver is gone ({e:?}); answering on the console only");
                        return;
                    }
                }
            }
        }
    }

    /// Runs one command line; returns what to print (each line ending in
    /// a newline).
    fn run(&mut self, line: &str) -> String {
        let mut out = String::new();
        match command::parse(line) {
            Err(e) => {
                let _ = writeln!(out, "{e}");
            }
            Ok(cmd) => {
                if let Err(e) = execute(cmd, &mut out) {
                    let _ = writeln!(out, "{e}");
                }
            }
        }
        out
    }
}

/// Carries out `cmd`, writing its answer to `out`; an error is a line.
fn execute(cmd: Command, out: &mut String) -> Result<(), String> {
    match cmd {
        Command::Empty => {}
        Command::Help => out.push_str(command::HELP),
        Command::Ps => ps(out)?,
        Command::Kill { pid } => {
            let process = sys::process_open(SYSTEM, pid).map_err(|e| match e {
                Error::NotFound => format!("kill: no process {pid}"),
                e => format!("kill: {e:?}"),
            })?;
            let killed = sys::kill(process);
            let _ = sys::handle_close(process);
            killed.map_err(|e| format!("kill: {e:?}"))?;
            let _ = writeln!(out, "killed {pid}");
        }
        Command::Run { program, args } => run_program(program, args, out)?,
        Command::Cpus => cpus(out)?,
        Command::Mem => {
            let (info, _) = sys::system_info(SYSTEM, &mut []).map_err(|e| format!("mem: {e:?}"))?;
            let mib = |b: u64| b / (1024 * 1024);
            let _ = writeln!(
                out,
                "memory: {} MiB, {} MiB free; kernel heap {} KiB in use; {} processes, {} threads",
                mib(info.memory_total),
                mib(info.memory_free),
                info.heap_used / 1024,
                info.processes,
                info.threads
            );
        }
        Command::Uptime => {
            let ns = sys::time_ns().map_err(|e| format!("uptime: {e:?}"))?;
            let _ = writeln!(out, "up {}.{:03} s", ns / 1_000_000_000, ns / 1_000_000 % 1000);
        }
        Command::Bench => run_program("ubench", "", out)?,
        Command::PowerOff => sys::power(SYSTEM, POWER_OFF).map_err(|e| format!("poweroff: {e:?}"))?,
        Command::Reboot => sys::power(SYSTEM, POWER_RESET).map_err(|e| format!("reboot: {e:?}"))?,
    }
    Ok(())
}

/// Starts boot module `program` with `args` and waits for it.
fn run_program(program: &str, args: &str, out: &mut String) -> Result<(), String> {
    let command = if args.is_empty() { String::from(program) } else { format!("{program} {args}") };
    let child = sys::spawn(&command, &[]).map_err(|e| match e {
        Error::NotFound => format!("{program}: no such program"),
        Error::BadProgram => format!("{program}: not a program"),
        e => format!("{program}: cannot start it: {e:?}"),
    })?;
    match sys::wait(child) {
        Ok(0) => {}
        Ok(EXIT_FAULT) => {
            let _ = writeln!(out, "{program}: killed by a fault");
        }
        Ok(EXIT_KILLED) => {
            let _ = writeln!(out, "{program}: killed");
        }
        Ok(code) => {
            let _ = writeln!(out, "{program}: exited with {code}");
        }
        Err(e) => return Err(format!("{program}: wait: {e:?}")),
    }
    Ok(())
}

fn ps(out: &mut String) -> Result<(), String> {
    let empty = ProcessInfo { pid: 0, parent: 0, threads: 0, memory: 0, cpu_ns: 0, ended: 0, name: [0; 32] };
    let mut list: Vec<ProcessInfo> = alloc::vec![empty; ferrite_abi::PROCESS_LIST_MAX as usize];
    let (n, total) = sys::process_list(SYSTEM, &mut list).map_err(|e| format!("ps: {e:?}"))?;
    let _ = writeln!(out, "  PID PARENT THREADS   MEMORY      CPU NAME");
    for p in &list[..n] {
        let _ = writeln!(
            out,
            "{:5} {:6} {:7} {:6} KiB {:5} ms {}{}",
            p.pid,
            p.parent,
            p.threads,
            p.memory / 1024,
            p.cpu_ns / 1_000_000,
            p.name(),
            if p.ended != 0 { " (ended)" } else { "" }
        );
    }
    if total > n as u64 {
        let _ = writeln!(out, "({} more not shown)", total - n as u64);
    }
    Ok(())
}

fn cpus(out: &mut String) -> Result<(), String> {
    let mut cpus = [CpuInfo::default(); 64];
    let (info, online) = sys::system_info(SYSTEM, &mut cpus).map_err(|e| format!("cpus: {e:?}"))?;
    let _ = writeln!(out, "{online} CPUs online");
    for c in cpus.iter().take(online.min(64) as usize) {
        let idle = (c.idle_ns.min(info.uptime_ns) * 100).checked_div(info.uptime_ns).unwrap_or(0);
        let _ = writeln!(
            out,
            "cpu{}: APIC ID {}, {} switches, {} timer ticks, {} IPIs, {} queued, idle {}%",
            c.cpu, c.apic_id, c.switches, c.timer_ticks, c.ipis, c.queued, idle
        );
    }
    if online > 64 {
        let _ = writeln!(out, "({} more not shown)", online - 64);
    }
    Ok(())
}
