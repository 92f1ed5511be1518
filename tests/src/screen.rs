//! Reading the guest's screen back: QEMU's human monitor on a Unix socket,
//! `screendump` once the guest has powered off (QEMU runs with
//! `-no-shutdown`, so it stops instead of exiting), and the dump decoded
//! with the kernel's own font (ferrite_screen::decode).
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// How often the monitor is asked whether the guest has stopped.
const POLL: Duration = Duration::from_millis(250);

/// Talks to the monitor at `socket` until the guest has powered off (or
/// `deadline` is near), then dumps the screen to `ppm` and quits QEMU.
/// Returns the screen's text, or why there is none.
pub fn watch(socket: &Path, ppm: &Path, deadline: Instant) -> Result<Vec<String>, String> {
    let mut monitor = connect(socket, deadline)?;
    // Leave time to dump before the harness kills QEMU.
    let last_look = deadline.checked_sub(Duration::from_secs(10)).unwrap_or(deadline);
    loop {
        let status = command(&mut monitor, "info status")?;
        if status.contains("shutdown") || Instant::now() >= last_look {
            break;
        }
        thread::sleep(POLL);
    }
    let _ = std::fs::remove_file(ppm);
    command(&mut monitor, &format!("screendump {}", ppm.display()))?;
    let text = read_ppm(ppm).map(|(w, h, rgb)| {
        ferrite_screen::decode(w, h, |x, y| {
            let p = &rgb[(y * w + x) * 3..][..3];
            p[0].max(p[1]).max(p[2])
        })
    });
    let _ = monitor.write_all(b"quit\n");
    text
}

fn connect(socket: &Path, deadline: Instant) -> Result<UnixStream, String> {
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
                let mut s = s;
                banner(&mut s)?;
                return Ok(s);
            }
            Err(e) if Instant::now() >= deadline => return Err(format!("no monitor at {}: {e}", socket.display())),
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Sends `line` and returns what the monitor printed: the echo of the
/// line (ended by a newline), the output, up to the next prompt.
fn command(monitor: &mut UnixStream, line: &str) -> Result<String, String> {
    monitor.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("monitor: {e}"))?;
    read_until(monitor, |out| out.contains(&b'\n') && out.ends_with(PROMPT)).map_err(|e| format!("`{line}`: {e}"))
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
