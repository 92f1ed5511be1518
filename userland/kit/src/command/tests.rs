use super::*;

/// The built-ins without arguments and what they parse to.
const BUILTINS: [(&str, Command<'static>); 8] = [
    ("help", Command::Help),
    ("ps", Command::Ps),
    ("cpus", Command::Cpus),
    ("mem", Command::Mem),
    ("uptime", Command::Uptime),
    ("bench", Command::Bench),
    ("poweroff", Command::PowerOff),
    ("reboot", Command::Reboot),
];

/// Parses `line`, which must fail, and returns the message.
fn message(line: &str) -> String {
    parse(line).unwrap_err().to_string()
}

#[test]
fn empty_lines() {
    for line in ["", " ", "\t", "  \t  ", "\r\n", "\n"] {
        assert_eq!(parse(line), Ok(Command::Empty), "{line:?}");
    }
}

#[test]
fn builtins_without_arguments() {
    for (name, command) in BUILTINS {
        assert_eq!(parse(name), Ok(command));
        assert_eq!(parse(&format!("  {name}\t ")), Ok(command));
    }
}

#[test]
fn builtins_reject_arguments() {
    for (name, _) in BUILTINS {
        let line = format!("{name} x");
        assert_eq!(parse(&line), Err(ParseError::UnexpectedArguments { command: name }));
        assert_eq!(message(&line), format!("{name}: takes no arguments"));
        assert!(parse(&format!("\t{name}\t\tx  y\t")).is_err());
    }
    assert_eq!(message("ps -a"), "ps: takes no arguments");
}

#[test]
fn kill() {
    assert_eq!(parse("kill 7"), Ok(Command::Kill { pid: 7 }));
    assert_eq!(parse("kill 0"), Ok(Command::Kill { pid: 0 }));
    assert_eq!(parse("kill 007"), Ok(Command::Kill { pid: 7 }));
    assert_eq!(parse(" \tkill \t 42\t "), Ok(Command::Kill { pid: 42 }));
    assert_eq!(parse("kill 18446744073709551615"), Ok(Command::Kill { pid: u64::MAX }));
}

#[test]
fn kill_errors() {
    assert_eq!(parse("kill"), Err(ParseError::MissingPid));
    assert_eq!(parse("kill  \t"), Err(ParseError::MissingPid));
    assert_eq!(message("kill"), "kill: missing process id");

    assert_eq!(parse("kill x"), Err(ParseError::BadPid { got: "x" }));
    assert_eq!(message("kill x"), "kill: expected a process id, got 'x'");
    for bad in ["-1", "+1", "1x", "0x10", "1.5", "١"] {
        assert_eq!(parse(&format!("kill {bad}")), Err(ParseError::BadPid { got: bad }), "{bad}");
    }

    assert_eq!(parse("kill 18446744073709551616"), Err(ParseError::PidOutOfRange { got: "18446744073709551616" }));
    assert_eq!(message("kill 99999999999999999999999"), "kill: process id '99999999999999999999999' is too large");

    assert_eq!(parse("kill 1 2"), Err(ParseError::TooManyPids));
    assert_eq!(message("kill 1 x"), "kill: takes exactly one process id");
}

#[test]
fn run() {
    assert_eq!(parse("run hello"), Ok(Command::Run { program: "hello", args: "" }));
    assert_eq!(parse("run hello a b"), Ok(Command::Run { program: "hello", args: "a b" }));
    assert_eq!(parse("  run\thello\t a  b \t"), Ok(Command::Run { program: "hello", args: "a  b" }));
    // A built-in's name is still a program name after `run`.
    assert_eq!(parse("run ps x"), Ok(Command::Run { program: "ps", args: "x" }));
}

#[test]
fn run_missing_program() {
    assert_eq!(parse("run"), Err(ParseError::MissingProgram));
    assert_eq!(parse("run \t "), Err(ParseError::MissingProgram));
    assert_eq!(message("run"), "run: missing program name");
}

#[test]
fn bare_word_is_a_program() {
    assert_eq!(parse("hello a b"), Ok(Command::Run { program: "hello", args: "a b" }));
    assert_eq!(parse("hello"), Ok(Command::Run { program: "hello", args: "" }));
    assert_eq!(parse("\thello\t\ta\t"), Ok(Command::Run { program: "hello", args: "a" }));
    // Names are case-sensitive; a prefix of a built-in is not the built-in.
    assert_eq!(parse("PS"), Ok(Command::Run { program: "PS", args: "" }));
    assert_eq!(parse("p"), Ok(Command::Run { program: "p", args: "" }));
    assert_eq!(parse("pss"), Ok(Command::Run { program: "pss", args: "" }));
    assert_eq!(parse("killall 3"), Ok(Command::Run { program: "killall", args: "3" }));
}

#[test]
fn words_splits_args() {
    let Ok(Command::Run { args, .. }) = parse("hello  one\ttwo   three ") else { panic!("not a run") };
    assert_eq!(words(args).collect::<Vec<_>>(), ["one", "two", "three"]);
    assert_eq!(words("").count(), 0);
    assert_eq!(words(" \t ").count(), 0);
}

#[test]
fn line_endings_are_whitespace() {
    assert_eq!(parse("ps\r\n"), Ok(Command::Ps));
    assert_eq!(parse("kill 3\n"), Ok(Command::Kill { pid: 3 }));
}

#[test]
fn very_long_input() {
    let long = "x".repeat(100_000);
    assert_eq!(parse(&long), Ok(Command::Run { program: &long, args: "" }));
    let spaces = " ".repeat(100_000);
    assert_eq!(parse(&spaces), Ok(Command::Empty));
    let line = format!("{spaces}kill{spaces}5{spaces}");
    assert_eq!(parse(&line), Ok(Command::Kill { pid: 5 }));
    let digits = "9".repeat(10_000);
    assert_eq!(parse(&format!("kill {digits}")), Err(ParseError::PidOutOfRange { got: &digits }));
    let args = "a ".repeat(50_000);
    let line = format!("run prog {args}");
    assert_eq!(parse(&line), Ok(Command::Run { program: "prog", args: args.trim_end() }));
    assert!(parse(&format!("ps {args}")).is_err());
}

#[test]
fn non_ascii_input_does_not_panic() {
    assert_eq!(parse("héllo wörld"), Ok(Command::Run { program: "héllo", args: "wörld" }));
    // U+00A0 is not ASCII whitespace: it is part of a word.
    assert_eq!(parse("ps\u{a0}"), Ok(Command::Run { program: "ps\u{a0}", args: "" }));
}

#[test]
fn help_lists_every_command() {
    let firsts: Vec<&str> = HELP.lines().filter_map(|line| line.split_whitespace().next()).collect();
    for name in BUILTINS.iter().map(|(name, _)| *name).chain(["kill", "run"]) {
        assert!(firsts.contains(&name), "{name} is missing from HELP");
    }
    assert!(HELP.ends_with('\n'));
    for line in HELP.lines() {
        assert!(line.len() < 80, "{line:?} is too long for a console");
        let described = line.split_once("  ").map(|(_, d)| d.trim()).unwrap_or("");
        assert!(!described.is_empty(), "{line:?} has no description");
    }
}

#[test]
fn errors_are_one_line() {
    for line in ["ps x", "kill", "kill x", "kill 1 2", "kill 99999999999999999999", "run"] {
        let message = message(line);
        assert!(!message.contains('\n') && !message.is_empty(), "{message:?}");
    }
}
