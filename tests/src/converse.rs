//! Conversations with the guest: a boot driven by a script of [`Step`]s
//! ([`crate::Boot::converse`]).
//!
//! A step either waits for text in the serial output ([`Step::expect`],
//! [`Step::expect_all`]),
//! or types: bytes into QEMU's serial input, which qemu.sh connects to its
//! stdin ([`Step::send`], [`Step::line`]), or keys on the PS/2 keyboard
//! through QEMU's monitor ([`Step::keys`], [`Step::type_keys`]). What to
//! send may be computed from the output so far ([`Step::send_with`]), and
//! the output may be checked mid-way ([`Step::check`]).
//!
//! # Matching
//!
//! The conversation keeps a cursor in the serial output: where the last
//! expected text ended (the start, at first). An expect step waits for its
//! text after the cursor, on bytes as they arrive (a prompt ends in no
//! newline), then moves the cursor past it. So `expect("ferrite> ")` twice
//! needs two prompts, and text that came before the previous match, or a
//! command's echo matched already, cannot satisfy a later step. Closures
//! see the output up to the cursor, which does not depend on how fast
//! later bytes happen to come.
//!
//! # Failing
//!
//! A step fails when its text does not come within its time
//! ([`Step::within`]; by default the boot's timeout bounds it), when the
//! output ends (QEMU exited) before it, when a closure says so, or when
//! input cannot be delivered. The failure names the step and quotes the
//! output after the cursor.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::screen::Monitor;
use crate::transcript::{Transcript, Wait};

/// A closure computing input from the output up to the cursor.
type Compute = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;
/// A closure checking the output up to the cursor.
type Verify = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// One step of a conversation. Steps are cheap to clone (closures are
/// shared), so a test can build a script from pieces with `concat`.
#[derive(Clone)]
pub struct Step {
    action: Action,
    within: Option<Duration>,
}

#[derive(Clone)]
enum Action {
    /// Texts to wait for, in any order (one, for [`Step::expect`]).
    Expect(Vec<String>),
    Send(Vec<u8>),
    Keys(Vec<String>),
    SendWith(Compute),
    Check(String, Verify),
}

/// Lines of output quoted with a failed step.
const QUOTED_LINES: usize = 20;

impl Step {
    /// Waits until `text` appears in the serial output after the previous
    /// match, and moves the cursor past it.
    pub fn expect(text: &str) -> Self {
        Self::expect_all(&[text])
    }

    /// Waits until every one of `texts` has appeared after the previous
    /// match, in any order (what programs running side by side print), and
    /// moves the cursor past the last of them.
    ///
    /// # Panics
    ///
    /// If there is no text, or one is empty (it would always match).
    pub fn expect_all(texts: &[&str]) -> Self {
        assert!(!texts.is_empty() && texts.iter().all(|t| !t.is_empty()), "an empty text would always match");
        Self::new(Action::Expect(texts.iter().map(|&t| t.to_owned()).collect()))
    }

    /// Sends `bytes` to QEMU's serial input (COM1), as typed on a terminal.
    pub fn send(bytes: impl AsRef<[u8]>) -> Self {
        Self::new(Action::Send(bytes.as_ref().to_vec()))
    }

    /// Sends `text` and a `\r`, what a terminal sends for Enter.
    pub fn line(text: &str) -> Self {
        Self::send(format!("{text}\r"))
    }

    /// Presses keys on the PS/2 keyboard, one monitor `sendkey` each, by
    /// QEMU's names: `u`, `ret`, `backspace`, `spc`, `shift-a`.
    ///
    /// # Panics
    ///
    /// If a name is empty or has whitespace (the monitor would split it).
    pub fn keys(names: &[&str]) -> Self {
        for name in names {
            assert!(!name.is_empty() && !name.contains(char::is_whitespace), "bad key name {name:?}");
        }
        Self::new(Action::Keys(names.iter().map(|&n| n.to_owned()).collect()))
    }

    /// Types `text` on the PS/2 keyboard ([`key_names`]): `"uptime\n"`
    /// presses u, p, t, i, m, e and Enter; `\x08` is Backspace.
    ///
    /// # Panics
    ///
    /// If `text` has a character with no key ([`key_names`]).
    pub fn type_keys(text: &str) -> Self {
        let names = key_names(text).unwrap_or_else(|c| panic!("no key types {c:?} (in {text:?})"));
        Self::new(Action::Keys(names))
    }

    /// Sends what `compute` makes of the serial output up to the cursor
    /// (e.g. `kill <pid>` with a pid read from `ps`); an error fails the
    /// step with it.
    pub fn send_with(compute: impl Fn(&str) -> Result<String, String> + Send + Sync + 'static) -> Self {
        Self::new(Action::SendWith(Arc::new(compute)))
    }

    /// Checks the serial output up to the cursor with `verify`; an error
    /// fails the step with it. `what` names the check in the failure.
    pub fn check(what: &str, verify: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self::new(Action::Check(what.to_owned(), Arc::new(verify)))
    }

    /// Bounds how long an expect step waits (without this, only the boot's
    /// timeout does).
    ///
    /// # Panics
    ///
    /// On a step that does not wait for text.
    pub fn within(mut self, limit: Duration) -> Self {
        assert!(matches!(self.action, Action::Expect(_)), "only an expect step waits: {}", self.describe());
        self.within = Some(limit);
        self
    }

    fn new(action: Action) -> Self {
        Self { action, within: None }
    }

    /// Whether the step needs QEMU's monitor.
    pub(crate) fn uses_monitor(&self) -> bool {
        matches!(self.action, Action::Keys(_))
    }

    /// The step, as a failure names it.
    fn describe(&self) -> String {
        match &self.action {
            Action::Expect(texts) => {
                let texts = match texts.as_slice() {
                    [text] => format!("{text:?}"),
                    texts => format!("all of {texts:?}"),
                };
                match self.within {
                    Some(limit) => format!("expect {texts} within {limit:?}"),
                    None => format!("expect {texts}"),
                }
            }
            Action::Send(bytes) => format!("send {:?}", String::from_utf8_lossy(bytes)),
            Action::Keys(names) => format!("keys {}", names.join(" ")),
            Action::SendWith(_) => "send a computed input".to_owned(),
            Action::Check(what, _) => format!("check {what}"),
        }
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// QEMU's key names for typing `text` on a US keyboard: letters, digits,
/// space, `\n` or `\r` (Enter), `\x08` (Backspace), `\t` and the usual
/// punctuation (shifted ones as `shift-<key>`). Err: a character with no key.
pub fn key_names(text: &str) -> Result<Vec<String>, char> {
    const PLAIN: &[(char, &str)] = &[
        (' ', "spc"),
        ('\n', "ret"),
        ('\r', "ret"),
        ('\x08', "backspace"),
        ('\t', "tab"),
        ('-', "minus"),
        ('=', "equal"),
        ('[', "bracket_left"),
        (']', "bracket_right"),
        ('\\', "backslash"),
        (';', "semicolon"),
        ('\'', "apostrophe"),
        ('`', "grave_accent"),
        (',', "comma"),
        ('.', "dot"),
        ('/', "slash"),
    ];
    // Each shifted character over the key that types it.
    const SHIFTED: (&str, &str) = (")!@#$%^&*(_+{}|:\"~<>?", "0123456789-=[]\\;'`,./");
    let plain = |c: char| -> Option<String> {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            return Some(c.to_string());
        }
        PLAIN.iter().find(|(p, _)| *p == c).map(|(_, name)| (*name).to_owned())
    };
    text.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                return Ok(format!("shift-{}", c.to_ascii_lowercase()));
            }
            if let Some(i) = SHIFTED.0.chars().position(|s| s == c) {
                let base = SHIFTED.1.chars().nth(i).expect("as long");
                return Ok(format!("shift-{}", plain(base).expect("a plain key")));
            }
            plain(c).ok_or(c)
        })
        .collect()
}

/// Carries out `steps`: waits in `transcript`, writes serial input to
/// `input`, presses keys through `monitor`; `deadline` is the boot's.
/// Err: the failed step, described for the test's failure message.
pub(crate) fn drive(
    steps: &[Step],
    transcript: &Transcript,
    input: &mut dyn Write,
    monitor: Option<&Monitor>,
    deadline: Instant,
) -> Result<(), String> {
    // Where the last match ended, and the step that made it.
    let mut cursor = 0;
    let mut matched_by = None;
    for (i, step) in steps.iter().enumerate() {
        let done = match &step.action {
            Action::Expect(texts) => {
                let until = step.within.map_or(deadline, |limit| deadline.min(Instant::now() + limit));
                // Each is searched for from the same cursor.
                let waits = texts.iter().map(|text| (text, transcript.wait_for(text.as_bytes(), cursor, until)));
                let mut end = cursor;
                let mut missing = None;
                for (text, wait) in waits {
                    match wait {
                        Wait::Found(at) => end = end.max(at.end),
                        Wait::Ended => missing = Some((text, "the output ended (QEMU exited) before it appeared")),
                        Wait::TimedOut if until == deadline => {
                            missing = Some((text, "not seen before the boot's timeout"))
                        }
                        Wait::TimedOut => missing = Some((text, "not seen in time")),
                    }
                    if missing.is_some() {
                        break;
                    }
                }
                match missing {
                    None => {
                        cursor = end;
                        matched_by = Some(i);
                        Ok(())
                    }
                    Some((_, why)) if texts.len() == 1 => Err(why.to_owned()),
                    Some((text, why)) => Err(format!("{text:?}: {why}")),
                }
            }
            Action::Send(bytes) => write(input, bytes),
            Action::SendWith(compute) => compute(&transcript.text(0..cursor)).and_then(|s| write(input, s.as_bytes())),
            Action::Check(_, verify) => verify(&transcript.text(0..cursor)),
            Action::Keys(names) => match monitor {
                None => Err("keys need QEMU's monitor, which this boot does not have".to_owned()),
                Some(monitor) => names.iter().try_for_each(|name| press(monitor, name)),
            },
        };
        if let Err(why) = done {
            return Err(failure(steps, i, &why, transcript, cursor, matched_by));
        }
    }
    Ok(())
}

fn write(input: &mut dyn Write, bytes: &[u8]) -> Result<(), String> {
    input.write_all(bytes).and_then(|()| input.flush()).map_err(|e| format!("cannot write to QEMU's serial input: {e}"))
}

/// One `sendkey`; the monitor says nothing unless the key is wrong.
fn press(monitor: &Monitor, name: &str) -> Result<(), String> {
    let answer = monitor.command(&format!("sendkey {name}"))?;
    match answer.trim() {
        "" => Ok(()),
        complaint => Err(format!("`sendkey {name}`: the monitor says {complaint:?}")),
    }
}

/// The message for step `i` failing with `why`.
fn failure(
    steps: &[Step],
    i: usize,
    why: &str,
    transcript: &Transcript,
    cursor: usize,
    matched_by: Option<usize>,
) -> String {
    let mut text = format!("conversation step {} of {} ({}) failed: {why}\n", i + 1, steps.len(), steps[i].describe());
    let after = transcript.text(cursor..transcript.len());
    let lines: Vec<&str> = after.lines().map(|l| l.trim_end_matches('\r')).collect();
    let shown = &lines[lines.len().saturating_sub(QUOTED_LINES)..];
    let since = match matched_by {
        Some(m) => format!("step {}'s match ({})", m + 1, steps[m].describe()),
        None => "the start".to_owned(),
    };
    if shown.is_empty() {
        let _ = write!(text, "  (no output after {since})");
    } else {
        let _ = write!(text, "--- the output after {since}: {} bytes, last {} lines ---", after.len(), shown.len());
        shown.iter().for_each(|l| _ = write!(text, "\n| {l}"));
    }
    text
}

#[cfg(test)]
mod tests;
