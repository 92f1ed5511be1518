//! QEMU's human monitor on a Unix socket ([`Monitor`]), and what the
//! harness does with it: reading the guest's screen back (`screendump`
//! once the guest has powered off: QEMU runs with `-no-shutdown`, so it
//! stops instead of exiting; the dump is decoded with the kernel's own
//! font, ferrite_screen::decode), and typing keys (`sendkey`, converse.rs).
//!
//! QEMU's monitor socket takes one client at a time, so a boot has one
//! [`Monitor`], shared by whoever needs it: each command holds it only
//! for its own exchange.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How often the monitor is asked whether the guest has stopped, and how
/// often a connection is tried while QEMU starts.
const POLL: Duration = Duration::from_millis(250);

/// One boot's monitor: connected on first use, then kept.
pub struct Monitor {
    socket: PathBuf,
    /// Until when a connection is tried.
    deadline: Instant,
    /// Set once QEMU has ended: no connection is tried any more.
    gone: AtomicBool,
    link: Mutex<Option<UnixStream>>,
}

impl Monitor {
    /// The monitor QEMU will listen on at `socket` (qemu.sh's `MONITOR`).
    pub fn new(socket: PathBuf, deadline: Instant) -> Self {
        Self { socket, deadline, gone: AtomicBool::new(false), link: Mutex::new(None) }
    }

    /// Where QEMU listens.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Says that QEMU has ended, so that a wait to connect stops.
    pub fn close(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }

    /// Sends `line` and returns what the monitor printed for it: the
    /// output between the echo of the line and the next prompt.
    pub fn command(&self, line: &str) -> Result<String, String> {
        let mut link = self.link()?;
        let stream = link.as_mut().expect("connected");
        let answer = exchange(stream, line);
        if answer.is_err() {
            // A broken exchange leaves the stream out of step.
            *link = None;
        }
        answer
    }

    /// Sends `line` without waiting for an answer (`quit`, which ends
    /// QEMU and the connection).
    pub fn send(&self, line: &str) -> Result<(), String> {
        let mut link = self.link()?;
        let stream = link.as_mut().expect("connected");
        stream.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("monitor: {e}"))
    }

    /// The connection, made if need be.
    fn link(&self) -> Result<MutexGuard<'_, Option<UnixStream>>, String> {
        // A thread that panicked holding the lock left at worst a stream
        // out of step, which the next exchange reports.
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        if link.is_none() {
            *link = Some(self.connect()?);
        }
        Ok(link)
    }

    fn connect(&self) -> Result<UnixStream, String> {
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
                    banner(&mut s)?;
                    return Ok(s);
                }
                Err(e) if Instant::now() >= self.deadline || self.gone.load(Ordering::Relaxed) => {
                    return Err(format!("no monitor at {}: {e}", self.socket.display()))
                }
                Err(_) => thread::sleep(POLL),
            }
        }
    }
}

/// Talks to `monitor` until the guest has powered off (or `deadline` is
/// near), then dumps the screen to `ppm` and quits QEMU. Returns the
/// screen's text, or why there is none.
pub fn watch(monitor: &Monitor, ppm: &Path, deadline: Instant) -> Result<Vec<String>, String> {
    // Leave time to dump before the harness kills QEMU.
    let last_look = deadline.checked_sub(Duration::from_secs(10)).unwrap_or(deadline);
    loop {
        let status = monitor.command("info status")?;
        if status.contains("shutdown") || Instant::now() >= last_look {
            break;
        }
        thread::sleep(POLL);
    }
    let _ = std::fs::remove_file(ppm);
    monitor.command(&format!("screendump {}", ppm.display()))?;
    let text = read_ppm(ppm).map(|(w, h, rgb)| {
        ferrite_screen::decode(w, h, |x, y| {
            let p = &rgb[(y * w + x) * 3..][..3];
            p[0].max(p[1]).max(p[2])
        })
    });
    let _ = monitor.send("quit");
    text
}

/// Sends `line` and returns the output after its echo (ended by a
/// newline), up to the next prompt.
fn exchange(monitor: &mut UnixStream, line: &str) -> Result<String, String> {
    monitor.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("monitor: {e}"))?;
    let out = read_until(monitor, |out| out.contains(&b'\n') && out.ends_with(PROMPT))
        .map_err(|e| format!("`{line}`: {e}"))?;
    Ok(answer_of(&out).to_owned())
}

/// The output in what the monitor sent for one command: between the first
/// line (the command's echo) and the prompt.
fn answer_of(out: &str) -> &str {
    let out = out.strip_suffix(std::str::from_utf8(PROMPT).expect("ASCII")).unwrap_or(out);
    out.split_once('\n').map_or("", |(_, rest)| rest)
}

const PROMPT: &[u8] = b"(qemu) ";

/// Reads the banner, up to the first prompt.
fn banner(monitor: &mut UnixStream) -> Result<(), String> {
    read_until(monitor, |out| out.ends_with(PROMPT)).map(drop)
}

/// Reads from the monitor until `done` holds for what came (at most 20 s).
fn read_until(monitor: &mut UnixStream, done: impl Fn(&[u8]) -> bool) -> Result<String, String> {
    let mut out = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !done(&out) {
        match monitor.read(&mut buf) {
            Ok(0) => return Err("the monitor closed".into()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("monitor: {e}")),
        }
        if Instant::now() > give_up {
            return Err("the monitor did not answer".into());
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A binary PPM (P6, 8 bits a channel): width, height, RGB bytes.
pub fn read_ppm(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_ppm(&bytes).ok_or_else(|| format!("{}: not a P6 PPM of 8-bit channels", path.display()))
}

fn parse_ppm(bytes: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    // Four whitespace-separated fields, then one whitespace byte.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..i]).ok()?);
    }
    let (w, h): (usize, usize) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
    if fields[0] != "P6" || fields[3] != "255" {
        return None;
    }
    let pixels = bytes.get(i + 1..i + 1 + w.checked_mul(h)?.checked_mul(3)?)?;
    Some((w, h, pixels.to_vec()))
}

/// Where a boot's monitor socket goes: short, because Unix socket paths
/// are limited to about 100 bytes.
pub fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ferrite-{}-{name:.40}.mon", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_is_parsed() {
        let mut ppm = b"P6\n2 1\n255\n".to_vec();
        ppm.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_ppm(&ppm), Some((2, 1, vec![1, 2, 3, 4, 5, 6])));
        assert_eq!(parse_ppm(b"P6\n2 1\n255\n\x01"), None, "short");
        assert_eq!(parse_ppm(b"P5\n1 1\n255\n\x01"), None, "grey");
    }
}
