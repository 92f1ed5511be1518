//! Running one child process (in practice `scripts/qemu.sh`) under a
//! deadline, optionally stopping it early once a line appears on its stdout,
//! optionally talking to it while it runs (a [`Driver`]), and never leaving
//! a QEMU behind.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::transcript::{LineWatch, Transcript};

/// How a supervised run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The process exited on its own with this status.
    Exited(ExitStatus),
    /// A stdout line contained the pattern; the process group was killed.
    PatternFound,
    /// The deadline passed first; the process group was killed.
    TimedOut,
    /// The driver failed while the process ran; the group was killed.
    DriverFailed,
}

/// Everything a supervised run produced.
#[derive(Debug)]
pub struct Supervised {
    /// Why it stopped.
    pub end: End,
    /// Its complete stdout (the serial console), as raw bytes.
    pub stdout: Vec<u8>,
    /// Its complete stderr.
    pub stderr: Vec<u8>,
    /// What the driver returned, if there was one.
    pub driver: Option<Result<(), String>>,
}

/// Talks to the child while it runs, on a thread of its own: it waits for
/// text in the child's stdout (the transcript) and writes to its stdin.
/// An error stops the child at once, unless its stdout has already ended
/// (the child is exiting, and its own status says more).
pub type Driver<'a> = Box<dyn FnOnce(&Transcript, &mut dyn Write) -> Result<(), String> + Send + 'a>;

/// How often to check whether the child has exited. Short against boots of
/// seconds, long enough to cost nothing.
const POLL: Duration = Duration::from_millis(20);

/// Runs `command` in a process group of its own until it exits, until a line
/// of its stdout contains `pattern` (if given), or until `timeout` passes.
/// In the last two cases the whole group is killed with SIGKILL: qemu.sh runs
/// QEMU as its child, and killing only the shell would orphan QEMU.
///
/// Without a `driver`, stdin is `/dev/null`, because QEMU with `-serial
/// stdio` would otherwise put the terminal of whoever runs `cargo test`
/// into raw mode. With one, stdin is a pipe the driver writes to (and that
/// stays open until the child has exited, so that an end of input is never
/// what stops it). The driver runs until it returns; if it fails, the child
/// is stopped ([`End::DriverFailed`]).
pub fn supervise(
    mut command: Command,
    pattern: Option<&str>,
    driver: Option<Driver<'_>>,
    timeout: Duration,
) -> std::io::Result<Supervised> {
    use std::os::unix::process::CommandExt;

    let stdin = if driver.is_some() { Stdio::piped() } else { Stdio::null() };
    command.process_group(0).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let deadline = Instant::now() + timeout;
    let mut input = child.stdin.take();
    let transcript = Transcript::new();

    thread::scope(|scope| {
        let (found_tx, found_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let transcript = &transcript;
        // Reading on threads keeps a chatty child from blocking on a full
        // pipe while this thread waits for it.
        scope.spawn(move || read_into(stdout, transcript, LineWatch::new(pattern), &found_tx));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_reader = scope.spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            bytes
        });
        let (driven_tx, driven_rx) = mpsc::channel();
        let driving = match (driver, input.as_mut()) {
            (Some(driver), Some(input)) => {
                scope.spawn(move || {
                    let _ = driven_tx.send(driver(transcript, input));
                });
                true
            }
            _ => false,
        };
        let mut driven = None;

        let end = loop {
            // Checking the exit first means a child that exits right after
            // printing the pattern reports its real exit status.
            let exited = child.try_wait().inspect_err(|_| kill_group(&mut child))?;
            if let Some(status) = exited {
                // Anything the child left running in its group would hold
                // the pipes open and hang the readers below. The group id
                // cannot have been reused while such a member lives; with no
                // member left the kill just fails.
                kill_group_id(child.id());
                break End::Exited(status);
            }
            let now = Instant::now();
            if now >= deadline {
                kill_group(&mut child);
                break End::TimedOut;
            }
            if driving && driven.is_none() {
                if let Ok(result) = driven_rx.try_recv() {
                    let failed = result.is_err();
                    driven = Some(result);
                    // A failure may come with the child's end (its stdout
                    // ended, or its stdin broke as it exited): then its own
                    // status says more than a kill, and comes in a moment.
                    if failed && !transcript.closed() {
                        if let Some(status) = exit_within(&mut child, EXIT_GRACE)? {
                            kill_group_id(child.id());
                            break End::Exited(status);
                        }
                        kill_group(&mut child);
                        break End::DriverFailed;
                    }
                }
            }
            match found_rx.recv_timeout(POLL.min(deadline - now)) {
                Ok(()) => {
                    kill_group(&mut child);
                    break End::PatternFound;
                }
                // Disconnected: stdout closed, which happens as the child
                // exits; keep polling for its status, sleeping so as not to
                // spin.
                Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(POLL),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };

        // Once the group is dead the pipes close, the readers finish, and a
        // driver still waiting for text sees the end.
        let stderr = stderr_reader.join().unwrap_or_default();
        let driver = driving
            .then(|| driven.or_else(|| driven_rx.recv().ok()).unwrap_or_else(|| Err("the driver panicked".to_owned())));
        Ok(Supervised { end, stdout: Vec::new(), stderr, driver })
    })
    .map(|run| Supervised { stdout: transcript.take(), ..run })
}

/// How long a child whose driver failed may take to show that it is
/// exiting anyway, before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// The child's exit status if it exits within `grace`.
fn exit_within(child: &mut Child, grace: Duration) -> std::io::Result<Option<ExitStatus>> {
    let give_up = Instant::now() + grace;
    loop {
        match child.try_wait().inspect_err(|_| kill_group(child))? {
            Some(status) => return Ok(Some(status)),
            None if Instant::now() >= give_up => return Ok(None),
            None => thread::sleep(POLL),
        }
    }
}

/// Reads `pipe` to its end into `transcript`, and sends one message on
/// `found` the first time a line has `watch`'s pattern.
fn read_into(mut pipe: impl Read, transcript: &Transcript, mut watch: LineWatch, found: &mpsc::Sender<()>) {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                transcript.push(&buf[..n]);
                if watch.feed(&buf[..n]) {
                    let _ = found.send(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if watch.finish() {
        let _ = found.send(());
    }
    transcript.close();
}

/// Kills the child's whole process group, then reaps the child.
///
/// The child is known not to have been reaped yet (`try_wait` said it was
/// running), so its pid, and with it the group id, cannot have been reused.
fn kill_group(child: &mut Child) {
    if !kill_group_id(child.id()) {
        // Last resort: at least the direct child dies (QEMU may linger).
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Sends SIGKILL to process group `group`; true if kill(1) succeeded.
fn kill_group_id(group: u32) -> bool {
    // std has no killpg; the kill(1) command keeps this crate free of libc
    // and of unsafe code.
    Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A counting semaphore limiting how many QEMUs run at once, whatever
/// `--test-threads` says: more TCG guests than host cores only makes every
/// boot slower and pushes them toward their timeouts.
pub struct Semaphore {
    free: Mutex<usize>,
    released: Condvar,
}

/// A held slot of a [`Semaphore`], given back on drop.
pub struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    /// A semaphore with `slots` slots.
    pub const fn new(slots: usize) -> Self {
        Self { free: Mutex::new(slots), released: Condvar::new() }
    }

    /// Waits for a free slot and takes it.
    pub fn acquire(&self) -> Permit<'_> {
        // A panicking test cannot leave the count inconsistent (it is only
        // changed under the lock, by non-panicking code), so poisoning is
        // ignored rather than failing every later test.
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("bash");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn exit_status_and_output_are_kept() {
        let run = supervise(sh("echo out; echo err >&2; exit 3"), None, None, Duration::from_secs(30)).unwrap();
        assert!(matches!(run.end, End::Exited(s) if s.code() == Some(3)), "{:?}", run.end);
        assert_eq!(run.stdout, b"out\n");
        assert_eq!(run.stderr, b"err\n");
    }

    #[test]
    fn stdin_is_dev_null_without_a_driver() {
        let run = supervise(sh("readlink /proc/self/fd/0"), None, None, Duration::from_secs(30)).unwrap();
        assert_eq!(run.stdout, b"/dev/null\n");
        assert_eq!(run.driver, None);
    }

    #[test]
    fn pattern_stops_the_whole_group() {
        // The backgrounded sleep stands in for QEMU under qemu.sh: if only
        // the shell were killed it would hold stdout open and this would hang.
        let started = Instant::now();
        let run = supervise(
            sh("sleep 600 & echo booting; echo 'x boot: done y'; sleep 600"),
            Some("boot: done"),
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(run.end, End::PatternFound);
        assert!(String::from_utf8_lossy(&run.stdout).contains("boot: done"));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn timeout_stops_the_whole_group() {
        let started = Instant::now();
        let run = supervise(sh("sleep 600 & echo hi; sleep 600"), Some("never"), None, Duration::from_secs(1)).unwrap();
        assert_eq!(run.end, End::TimedOut);
        assert_eq!(run.stdout, b"hi\n");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn semaphore_bounds_concurrency() {
        let semaphore = Arc::new(Semaphore::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (semaphore, running, peak) = (semaphore.clone(), running.clone(), peak.clone());
                thread::spawn(move || {
                    let _permit = semaphore.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
