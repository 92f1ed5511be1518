//! The kernel command line.
//!
//! GRUB passes the line from its `multiboot2` command through the multiboot2
//! boot information. It is a list of whitespace-separated words, each either
//! `key=value` or a bare flag:
//!
//! | option            | meaning                                                |
//! |-------------------|--------------------------------------------------------|
//! | `log=<level>`     | `error`, `warn`, `info` (default), `debug`, `trace`    |
//! | `test=<selector>` | run in-kernel tests; see [`test_selected`]             |
//! | `crash=<kind>`    | provoke a fault on purpose, for the test harness       |
//! | `smp=<n>`         | use at most `n` CPUs (`n` >= 1), the boot CPU included |
//! | `nosmp`           | bare flag: use the boot CPU only, whatever `smp=` says |
//! | `apfault=<kind>[@n]` | make one AP (the last, or number n) fail to start, for the harness |
//! | `seed=<n>`        | seed of the stress tests' random choices (decimal)     |
//! | `console=<where>` | `serial`, `screen`, `both`, or `ttyS0`-`ttyS3` (one port) |
//! | `bench`           | bare flag: run the benchmarks, print them, power off   |
//! | `reboot=<how>`    | reset once booted, by `acpi`, `cf9`, `kbd` or `triple` only (for the harness) |
//! | `panic=<what>`    | after a panic's report: power off after `<n>` seconds (default 0), or `halt` |
//!
//! Design choices:
//!
//! - **Parsing never fails.** A typo on the boot line must not make a machine
//!   unbootable, so every problem is handed to a callback (the kernel logs
//!   it) and parsing carries on with the rest of the line; whatever could
//!   not be understood keeps its default.
//! - **No allocation.** The result borrows from the line (`&'a str`), and
//!   problems are reported one at a time rather than collected, because this
//!   runs before the kernel has a heap.
//! - **Only syntax here.** Values whose meaning belongs to the kernel (the
//!   `crash` and `apfault` kinds, test names) are passed through as strings; `log` (a
//!   closed set of values) and `smp` (a number) are checked here. What the
//!   CPU limit means for the machine at hand (more CPUs asked for than
//!   exist, say) is the kernel's business: see [`Options::cpu_limit`].
//! - Every option takes a value except `nosmp` and `bench`, bare flags;
//!   giving one a value (`nosmp=1`) is a [`Problem::BadValue`] and leaves it
//!   unset.
//! - Repeated options: the last valid value wins, and the repetition is
//!   reported once per option, as it is usually a mistake in a GRUB entry
//!   edited by hand. A repeated `nosmp` is harmless and not reported.
//! - `smp=<n>` is plain decimal digits only (no sign, no `0x`), must fit a
//!   `u32` and must be at least 1: `smp=0` would mean "no CPU at all", so it
//!   is rejected as a bad value rather than guessed to mean `nosmp`.

#[cfg(test)]
mod tests;

use core::fmt;

/// How much the kernel logs, from least to most verbose.
///
/// Ordered so that `level <= max` means "enabled when the maximum is `max`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default: normal progress messages.
    #[default]
    Info,
    /// Detail useful when debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Every level, least verbose first.
    pub const ALL: [LogLevel; 5] = [Self::Error, Self::Warn, Self::Info, Self::Debug, Self::Trace];

    /// Parses a level as written on the command line (lower case, exact).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == s)
    }

    /// The command-line spelling of the level.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The options the kernel understands, borrowed from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options<'a> {
    /// Log verbosity (`log=`); [`LogLevel::Info`] by default.
    pub log: LogLevel,
    /// In-kernel tests to run (`test=`), a selector for [`test_selected`];
    /// `None` means a normal boot.
    pub test: Option<&'a str>,
    /// Fault to provoke on purpose (`crash=`), validated by the kernel.
    pub crash: Option<&'a str>,
    /// AP start-up failure to simulate (`apfault=`), validated by the kernel.
    pub apfault: Option<&'a str>,
    /// Seed for the stress tests (`seed=`), to replay a run.
    pub seed: Option<u64>,
    /// Use at most this many CPUs, the boot CPU included (`smp=`); always
    /// at least 1. `None` means no limit. See [`cpu_limit`](Self::cpu_limit)
    /// for the limit with `nosmp` taken into account.
    pub smp: Option<u32>,
    /// Run on the boot CPU only (`nosmp`), whatever `smp=` says.
    pub nosmp: bool,
    /// Run the benchmark suite instead of init (`bench`).
    pub bench: bool,
    /// Where the console goes (`console=`); `None` is the default (both
    /// the screen and the serial port the kernel picks).
    pub console: Option<Console>,
    /// Reset the machine once booted, by this method alone (`reboot=`).
    pub reboot: Option<ResetMethod>,
    /// What the kernel does once it has reported a panic (`panic=`).
    pub panic: AfterPanic,
}

/// What a panic ends with, once reported (`panic=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPanic {
    /// Power off (QEMU's debug exit, else ACPI) after this many seconds:
    /// `panic=<n>`, 0 by default, so that a QEMU run without the debug-exit
    /// device still ends by itself.
    PowerOff {
        /// Seconds to wait first.
        after_s: u32,
    },
    /// Stay on, halted, with the report on the screen (`panic=halt`): for
    /// a PC whose screen is the only place to read it.
    Halt,
}

impl Default for AfterPanic {
    fn default() -> Self {
        Self::PowerOff { after_s: 0 }
    }
}

impl AfterPanic {
    /// The longest wait `panic=<n>` takes: an hour.
    pub const MAX_WAIT_S: u32 = 3600;

    /// Parses a `panic=` value: `halt`, or seconds in plain decimal up to
    /// [`MAX_WAIT_S`](Self::MAX_WAIT_S).
    pub fn parse(value: &str) -> Option<Self> {
        if value == "halt" {
            return Some(Self::Halt);
        }
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        value.parse().ok().filter(|&s| s <= Self::MAX_WAIT_S).map(|after_s| Self::PowerOff { after_s })
    }
}

/// A way to reset a PC, in the order the kernel tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMethod {
    /// The FADT's reset register (ACPI 2.0 and later, where the firmware
    /// says it is supported).
    Acpi,
    /// The chipset's reset control register, I/O port 0xCF9.
    Cf9,
    /// The keyboard controller's reset line (command 0xFE to port 0x64).
    Kbd,
    /// A triple fault: an empty IDT and an exception.
    Triple,
}

impl ResetMethod {
    /// Every method, in the order the kernel tries them.
    pub const ALL: [ResetMethod; 4] = [Self::Acpi, Self::Cf9, Self::Kbd, Self::Triple];

    /// Parses a `reboot=` value.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// The command-line spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Acpi => "acpi",
            Self::Cf9 => "cf9",
            Self::Kbd => "kbd",
            Self::Triple => "triple",
        }
    }
}

/// A `console=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// The serial port the kernel picks (the ACPI SPCR's, else the first
    /// that exists) and no screen.
    Serial,
    /// The screen only.
    Screen,
    /// Both.
    Both,
    /// This serial port only (`ttyS0` is COM1 ... `ttyS3` COM4).
    Tty(u8),
}

impl Console {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "serial" => Some(Self::Serial),
            "screen" => Some(Self::Screen),
            "both" => Some(Self::Both),
            _ => match value.strip_prefix("ttyS")?.as_bytes() {
                [n @ b'0'..=b'3'] => Some(Self::Tty(n - b'0')),
                _ => None,
            },
        }
    }
}

impl Options<'_> {
    /// The most CPUs the kernel may use, the boot CPU included: `Some(1)`
    /// with `nosmp`, otherwise the `smp=` value, and `None` (no limit) if
    /// neither was given. Never `Some(0)`.
    pub fn cpu_limit(&self) -> Option<u32> {
        if self.nosmp {
            Some(1)
        } else {
            self.smp
        }
    }
}

/// Something wrong with the command line. Each is reported and skipped;
/// the [`Display`](fmt::Display) text is meant for the kernel log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem<'a> {
    /// A word that names no option (the whole word, value included).
    Unknown(&'a str),
    /// A known option with a value it does not accept.
    BadValue {
        /// The option.
        key: &'a str,
        /// The value given.
        value: &'a str,
    },
    /// An option given without a value, bare (`log`) or empty (`log=`).
    MissingValue(&'a str),
    /// An option given more than once; the last valid value is used.
    Repeated(&'a str),
}

impl fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unknown(word) => write!(f, "unknown option '{word}'"),
            Self::BadValue { key, value } => {
                write!(f, "bad value '{value}' for '{key}'")?;
                match Key::parse(key) {
                    Some(Key::Log) => {
                        f.write_str(" (expected ")?;
                        write_alternatives(f, &LogLevel::ALL.map(LogLevel::as_str))?;
                        f.write_str(")")
                    }
                    Some(Key::Smp) => f.write_str(" (expected a number of CPUs, at least 1)"),
                    Some(Key::Console) => f.write_str(" (expected serial, screen, both or ttyS0-ttyS3)"),
                    Some(Key::Reboot) => {
                        f.write_str(" (expected ")?;
                        write_alternatives(f, &ResetMethod::ALL.map(ResetMethod::as_str))?;
                        f.write_str(")")
                    }
                    Some(Key::Panic) => f.write_str(" (expected halt, or seconds before power off, at most 3600)"),
                    Some(Key::Nosmp | Key::Bench) => f.write_str(" (it is a flag and takes no value)"),
                    _ => Ok(()),
                }
            }
            Self::MissingValue(key) => write!(f, "option '{key}' needs a value"),
            Self::Repeated(key) => {
                write!(f, "option '{key}' given more than once; the last one wins")
            }
        }
    }
}

/// Writes `a, b, c or d`.
fn write_alternatives(f: &mut fmt::Formatter<'_>, words: &[&str]) -> fmt::Result {
    for (i, word) in words.iter().enumerate() {
        let separator = match i {
            0 => "",
            _ if i + 1 == words.len() => " or ",
            _ => ", ",
        };
        write!(f, "{separator}{word}")?;
    }
    Ok(())
}

/// The options this parser knows, as an index into per-option bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Log,
    Test,
    Crash,
    Smp,
    Nosmp,
    Apfault,
    Seed,
    Bench,
    Console,
    Reboot,
    Panic,
}

impl Key {
    const COUNT: usize = 11;

    fn parse(name: &str) -> Option<Self> {
        match name {
            "log" => Some(Self::Log),
            "test" => Some(Self::Test),
            "crash" => Some(Self::Crash),
            "smp" => Some(Self::Smp),
            "nosmp" => Some(Self::Nosmp),
            "apfault" => Some(Self::Apfault),
            "seed" => Some(Self::Seed),
            "bench" => Some(Self::Bench),
            "console" => Some(Self::Console),
            "reboot" => Some(Self::Reboot),
            "panic" => Some(Self::Panic),
            _ => None,
        }
    }
}

/// Parses a kernel command line, reporting every problem through `report`
/// and carrying on. Never fails: an empty or blank line, or one made only of
/// mistakes, gives [`Options::default`].
///
/// If the first word starts with `/` it is taken to be the kernel's own path
/// (some bootloaders put it there) and skipped.
///
/// ```
/// use ferrite_kcore::cmdline::{parse, LogLevel};
///
/// let mut problems = 0;
/// let options = parse("/boot/ferrite.elf log=debug test=mem verbose", |problem| {
///     assert_eq!(problem.to_string(), "unknown option 'verbose'");
///     problems += 1;
/// });
/// assert_eq!(options.log, LogLevel::Debug);
/// assert_eq!(options.test, Some("mem"));
/// assert_eq!(problems, 1);
/// ```
pub fn parse<'a>(line: &'a str, mut report: impl FnMut(Problem<'a>)) -> Options<'a> {
    let mut options = Options::default();
    // How often each option has been set, so a repeat is reported only once.
    let mut times_set = [0u8; Key::COUNT];

    let mut words = line.split_ascii_whitespace().peekable();
    // Only the first word can be the kernel path; a later `/...` is unknown.
    let _kernel_path = words.next_if(|word| word.starts_with('/'));

    for word in words {
        // Split at the first `=` only: the value may contain more.
        let (name, value) = match word.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (word, None),
        };
        let Some(key) = Key::parse(name) else {
            report(Problem::Unknown(word));
            continue;
        };
        if let Some(flag) = match key {
            Key::Nosmp => Some(&mut options.nosmp),
            Key::Bench => Some(&mut options.bench),
            _ => None,
        } {
            // A bare flag: any value, even an empty one, is a mistake worth
            // reporting rather than guessing at (`nosmp=0`?).
            match value {
                Some(value) => report(Problem::BadValue { key: name, value }),
                None => *flag = true,
            }
            continue;
        }
        // Every other option takes a value, and an empty one is as good as
        // none: `test=` selecting nothing would silently run no tests.
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            report(Problem::MissingValue(name));
            continue;
        };
        match key {
            Key::Log => match LogLevel::parse(value) {
                Some(level) => options.log = level,
                None => {
                    report(Problem::BadValue { key: name, value });
                    // A rejected value does not count as setting the option.
                    continue;
                }
            },
            Key::Smp => match parse_cpu_count(value) {
                Some(n) => options.smp = Some(n),
                None => {
                    report(Problem::BadValue { key: name, value });
                    continue;
                }
            },
            Key::Test => options.test = Some(value),
            Key::Crash => options.crash = Some(value),
            Key::Apfault => options.apfault = Some(value),
            Key::Console => match Console::parse(value) {
                Some(console) => options.console = Some(console),
                None => {
                    report(Problem::BadValue { key: name, value });
                    continue;
                }
            },
            Key::Reboot => match ResetMethod::parse(value) {
                Some(method) => options.reboot = Some(method),
                None => {
                    report(Problem::BadValue { key: name, value });
                    continue;
                }
            },
            Key::Panic => match AfterPanic::parse(value) {
                Some(after) => options.panic = after,
                None => {
                    report(Problem::BadValue { key: name, value });
                    continue;
                }
            },
            Key::Seed => match value.bytes().all(|b| b.is_ascii_digit()).then(|| value.parse().ok()).flatten() {
                Some(seed) => options.seed = Some(seed),
                None => {
                    report(Problem::BadValue { key: name, value });
                    continue;
                }
            },
            // Handled above, before the value check.
            Key::Nosmp | Key::Bench => continue,
        }
        let count = &mut times_set[key as usize];
        *count = count.saturating_add(1);
        if *count == 2 {
            report(Problem::Repeated(name));
        }
    }
    options
}

/// Parses the value of `smp=`: decimal digits only, fitting a `u32`, and at
/// least 1. (`u32::from_str` alone would also take a leading `+`.)
fn parse_cpu_count(value: &str) -> Option<u32> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|&n| n >= 1)
}

/// True if the test called `name` is picked by `selector`, the value of
/// `test=`.
///
/// The selector is a comma-separated list; a test is picked if any item
///
/// - is `all`,
/// - equals `name`, or
/// - is a suite prefix of `name` ending at a `::` boundary: `mem` picks
///   `mem::frames` and `mem::heap::grow`, but not `memory::x`; `mem::fr`
///   picks nothing but a test called exactly `mem::fr`. A trailing `::`
///   (`mem::`) means the same as without it.
///
/// Empty items (`a,,b`, a trailing comma) and surrounding spaces are ignored.
pub fn test_selected(selector: &str, name: &str) -> bool {
    selector.split(',').map(str::trim).filter(|item| !item.is_empty()).any(|item| item_selects(item, name))
}

fn item_selects(item: &str, name: &str) -> bool {
    if item == "all" || item == name {
        return true;
    }
    let suite = item.strip_suffix("::").unwrap_or(item);
    !suite.is_empty() && name.strip_prefix(suite).is_some_and(|rest| rest.starts_with("::"))
}
