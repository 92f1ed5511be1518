//! The shell's command line parser.
//!
//! A line is split into words at runs of ASCII whitespace (spaces, tabs, and
//! also `\r`, `\n` and form feed), so leading, trailing and repeated
//! whitespace do not matter. The first word names the command; names are
//! case-sensitive. A first word that is not a built-in is a program to run,
//! as with `run`: `hello a b` is `run hello a b`.
//!
//! The parser borrows from the line and allocates nothing: a
//! [`Command::Run`]'s `args` is the rest of the line after the program name,
//! trimmed at both ends but with its inner whitespace as typed (`"a  b"`
//! stays so). Split it with [`words`].

use core::fmt;

#[cfg(test)]
mod tests;

/// What the shell prints for `help`: each command and what it does, one per
/// line, each line ending in `\n`.
pub const HELP: &str = "\
help               list these commands
ps                 list the running processes
kill <pid>         end the process with id <pid>
run <prog> [args]  start the program <prog> with arguments [args]
<prog> [args]      the same as run <prog> [args]
cpus               list the processors
mem                show how much memory is used and free
uptime             show the time since boot
bench              run the benchmarks
poweroff           turn the machine off
reboot             restart the machine
";

/// A parsed shell command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// A line with nothing but whitespace: prompt again.
    Empty,
    /// `help`: print [`HELP`].
    Help,
    /// `ps`: list the processes.
    Ps,
    /// `kill <pid>`: end a process.
    Kill {
        /// The id of the process to end, as typed (in decimal).
        pid: u64,
    },
    /// `run <program> [args...]`, or `<program> [args...]`: start a program.
    Run {
        /// The program's name, one word.
        program: &'a str,
        /// Everything after the program's name, trimmed; empty if nothing.
        args: &'a str,
    },
    /// `cpus`: list the processors.
    Cpus,
    /// `mem`: show memory use.
    Mem,
    /// `uptime`: show the time since boot.
    Uptime,
    /// `bench`: run the benchmarks.
    Bench,
    /// `poweroff`: turn the machine off.
    PowerOff,
    /// `reboot`: restart the machine.
    Reboot,
}

/// Why a line is not a valid command. [`fmt::Display`] gives the one-line
/// message for the user, without a trailing newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// A built-in that takes no arguments was given some, e.g. `ps x`.
    UnexpectedArguments {
        /// The built-in's name.
        command: &'static str,
    },
    /// `kill` without a process id.
    MissingPid,
    /// `kill` with a process id that is not a decimal number, e.g. `kill x`
    /// or `kill -1`.
    BadPid {
        /// The word given as the process id.
        got: &'a str,
    },
    /// `kill` with a decimal number too large for a process id (above
    /// `u64::MAX`).
    PidOutOfRange {
        /// The number given, as typed.
        got: &'a str,
    },
    /// `kill` with more than one word after it.
    TooManyPids,
    /// `run` without a program name.
    MissingProgram,
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnexpectedArguments { command } => write!(f, "{command}: takes no arguments"),
            ParseError::MissingPid => f.write_str("kill: missing process id"),
            ParseError::BadPid { got } => write!(f, "kill: expected a process id, got '{got}'"),
            ParseError::PidOutOfRange { got } => write!(f, "kill: process id '{got}' is too large"),
            ParseError::TooManyPids => f.write_str("kill: takes exactly one process id"),
            ParseError::MissingProgram => f.write_str("run: missing program name"),
        }
    }
}

impl core::error::Error for ParseError<'_> {}

/// The built-ins that take no arguments, by name.
const NO_ARGUMENTS: [(&str, Command<'static>); 8] = [
    ("help", Command::Help),
    ("ps", Command::Ps),
    ("cpus", Command::Cpus),
    ("mem", Command::Mem),
    ("uptime", Command::Uptime),
    ("bench", Command::Bench),
    ("poweroff", Command::PowerOff),
    ("reboot", Command::Reboot),
];

/// Parses one command line (without its line ending, though one is harmless).
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let (name, rest) = split_word(line);
    if let Some(&(command, parsed)) = NO_ARGUMENTS.iter().find(|(command, _)| *command == name) {
        return if rest.is_empty() { Ok(parsed) } else { Err(ParseError::UnexpectedArguments { command }) };
    }
    match name {
        "" => Ok(Command::Empty),
        "kill" => kill(rest),
        "run" => match split_word(rest) {
            ("", _) => Err(ParseError::MissingProgram),
            (program, args) => Ok(Command::Run { program, args }),
        },
        program => Ok(Command::Run { program, args: rest }),
    }
}

/// The words of `text`: its runs of characters other than ASCII whitespace.
/// For splitting a [`Command::Run`]'s `args`.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_ascii_whitespace()).filter(|word| !word.is_empty())
}

/// `kill`'s arguments: exactly one decimal process id.
fn kill(args: &str) -> Result<Command<'_>, ParseError<'_>> {
    let (pid, rest) = split_word(args);
    if pid.is_empty() {
        return Err(ParseError::MissingPid);
    }
    if !rest.is_empty() {
        return Err(ParseError::TooManyPids);
    }
    // Digits only: `u64::from_str` would also take a leading `+`.
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadPid { got: pid });
    }
    pid.bytes()
        .try_fold(0u64, |n, digit| n.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
        .map(|pid| Command::Kill { pid })
        .ok_or(ParseError::PidOutOfRange { got: pid })
}

/// Splits `text` into its first word and the rest, both without leading or
/// trailing whitespace; both empty if `text` is only whitespace.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((word, rest)) => (word, rest.trim_start_matches(|c: char| c.is_ascii_whitespace())),
        None => (text, ""),
    }
}
