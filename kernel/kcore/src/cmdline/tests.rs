//! Host tests for the command-line parser and the test selector.

use super::{parse, test_selected, AfterPanic, Console, LogLevel, Options, Problem, ResetMethod};

/// Parses `line` and collects the problems in the order reported.
fn parse_all(line: &str) -> (Options<'_>, Vec<Problem<'_>>) {
    let mut problems = Vec::new();
    let options = parse(line, |p| problems.push(p));
    (options, problems)
}

/// Parses a line that must produce no problems.
fn parse_clean(line: &str) -> Options<'_> {
    let (options, problems) = parse_all(line);
    assert_eq!(problems, [], "unexpected problems for {line:?}");
    options
}

fn messages(line: &str) -> Vec<String> {
    parse_all(line).1.iter().map(ToString::to_string).collect()
}

#[test]
fn defaults() {
    let defaults = Options::default();
    assert_eq!(defaults.log, LogLevel::Info);
    assert_eq!(defaults.test, None);
    assert_eq!(defaults.crash, None);
    assert_eq!(defaults.smp, None);
    assert!(!defaults.nosmp);
    assert_eq!(defaults.cpu_limit(), None);
    assert_eq!(parse_clean(""), defaults);
    assert_eq!(parse_clean(" \t \n  "), defaults);
}

#[test]
fn log_levels() {
    for level in LogLevel::ALL {
        let line = format!("log={}", level.as_str());
        assert_eq!(parse_clean(&line).log, level);
    }
    assert_eq!(parse_clean("log=trace").log, LogLevel::Trace);
    assert_eq!(parse_clean("log=error").log, LogLevel::Error);
}

#[test]
fn log_level_parse_and_order() {
    assert_eq!(LogLevel::parse("warn"), Some(LogLevel::Warn));
    assert_eq!(LogLevel::parse("Warn"), None, "exact spelling only");
    assert_eq!(LogLevel::parse("warning"), None);
    assert_eq!(LogLevel::parse(""), None);
    for level in LogLevel::ALL {
        assert_eq!(LogLevel::parse(level.as_str()), Some(level));
        assert_eq!(level.to_string(), level.as_str());
    }
    assert!(LogLevel::ALL.windows(2).all(|w| w[0] < w[1]), "least verbose first");
    assert!(LogLevel::Error < LogLevel::Trace);
    assert_eq!(LogLevel::default(), LogLevel::Info);
}

#[test]
fn all_options_together() {
    let options = parse_clean(
        "log=debug test=mem,sched::yield crash=page_fault smp=2 nosmp apfault=stuck bench console=ttyS1 reboot=kbd panic=halt",
    );
    assert_eq!(
        options,
        Options {
            log: LogLevel::Debug,
            test: Some("mem,sched::yield"),
            crash: Some("page_fault"),
            apfault: Some("stuck"),
            seed: None,
            smp: Some(2),
            nosmp: true,
            bench: true,
            console: Some(Console::Tty(1)),
            reboot: Some(ResetMethod::Kbd),
            panic: AfterPanic::Halt,
        }
    );
}

#[test]
fn odd_whitespace() {
    let options = parse_clean("\t  log=warn \n\n test=all\t\t crash=x   ");
    assert_eq!(options.log, LogLevel::Warn);
    assert_eq!(options.test, Some("all"));
    assert_eq!(options.crash, Some("x"));
}

#[test]
fn kernel_path_as_first_word_is_skipped() {
    let options = parse_clean("/boot/ferrite.elf log=debug");
    assert_eq!(options.log, LogLevel::Debug);
    // Even after leading whitespace, and even when it is the only word.
    assert_eq!(parse_clean("   /boot/ferrite.elf").log, LogLevel::Info);
    assert_eq!(parse_clean("/").test, None);
    // Only the first word gets this treatment.
    let (options, problems) = parse_all("log=debug /boot/ferrite.elf");
    assert_eq!(options.log, LogLevel::Debug);
    assert_eq!(problems, [Problem::Unknown("/boot/ferrite.elf")]);
    let (_, problems) = parse_all("/boot/ferrite.elf /again");
    assert_eq!(problems, [Problem::Unknown("/again")]);
}

#[test]
fn unknown_words_are_reported_and_skipped() {
    let (options, problems) = parse_all("quiet foo=1 log=trace =x LOG=info");
    assert_eq!(options.log, LogLevel::Trace);
    assert_eq!(
        problems,
        [Problem::Unknown("quiet"), Problem::Unknown("foo=1"), Problem::Unknown("=x"), Problem::Unknown("LOG=info"),]
    );
}

#[test]
fn bad_log_value_keeps_the_previous_level() {
    let (options, problems) = parse_all("log=loud");
    assert_eq!(options.log, LogLevel::Info);
    assert_eq!(problems, [Problem::BadValue { key: "log", value: "loud" }]);

    let (options, problems) = parse_all("log=debug log=loud");
    assert_eq!(options.log, LogLevel::Debug, "a rejected value changes nothing");
    assert_eq!(problems, [Problem::BadValue { key: "log", value: "loud" }], "and is no repeat");
}

#[test]
fn missing_values() {
    let (options, problems) = parse_all("test log crash");
    assert_eq!(options, Options::default());
    assert_eq!(problems, [Problem::MissingValue("test"), Problem::MissingValue("log"), Problem::MissingValue("crash")]);
}

#[test]
fn empty_values_are_missing_values() {
    let (options, problems) = parse_all("log= test= crash=");
    assert_eq!(options, Options::default());
    assert_eq!(problems, [Problem::MissingValue("log"), Problem::MissingValue("test"), Problem::MissingValue("crash")]);
    // An empty value does not wipe out an earlier good one.
    let (options, _) = parse_all("test=all test=");
    assert_eq!(options.test, Some("all"));
}

#[test]
fn values_may_contain_equals_signs() {
    let options = parse_clean("test=a=b crash=x==y");
    assert_eq!(options.test, Some("a=b"));
    assert_eq!(options.crash, Some("x==y"));
    let (options, problems) = parse_all("log=info=x");
    assert_eq!(options.log, LogLevel::Info);
    assert_eq!(problems, [Problem::BadValue { key: "log", value: "info=x" }]);
}

#[test]
fn repeated_options_last_wins_reported_once() {
    let (options, problems) = parse_all("log=debug test=a log=warn test=b log=error");
    assert_eq!(options.log, LogLevel::Error);
    assert_eq!(options.test, Some("b"));
    assert_eq!(problems, [Problem::Repeated("log"), Problem::Repeated("test")]);

    let (options, problems) = parse_all("crash=a crash=b");
    assert_eq!(options.crash, Some("b"));
    assert_eq!(problems, [Problem::Repeated("crash")]);
}

#[test]
fn problems_do_not_stop_parsing() {
    let (options, problems) = parse_all("bogus log log=loud test= test=mem crash=x log=trace");
    assert_eq!(options, Options { log: LogLevel::Trace, test: Some("mem"), crash: Some("x"), ..Options::default() });
    assert_eq!(problems.len(), 4);
}

#[test]
fn problem_messages() {
    assert_eq!(messages("foo=1"), ["unknown option 'foo=1'"]);
    assert_eq!(messages("log=loud"), ["bad value 'loud' for 'log' (expected error, warn, info, debug or trace)"]);
    assert_eq!(messages("test"), ["option 'test' needs a value"]);
    assert_eq!(messages("log="), ["option 'log' needs a value"]);
    assert_eq!(messages("log=info log=info"), ["option 'log' given more than once; the last one wins"]);
    // A bad value for an option without a fixed set of values (none of the
    // current ones can produce it, but the message must still make sense).
    let problem = Problem::BadValue { key: "crash", value: "?" };
    assert_eq!(problem.to_string(), "bad value '?' for 'crash'");
}

#[test]
fn smp_values() {
    assert_eq!(parse_clean("smp=1").smp, Some(1));
    assert_eq!(parse_clean("smp=4").smp, Some(4));
    assert_eq!(parse_clean("smp=007").smp, Some(7), "leading zeros are still decimal");
    assert_eq!(parse_clean("smp=4294967295").smp, Some(u32::MAX));
    assert_eq!(parse_clean("smp=4").cpu_limit(), Some(4));
    assert!(!parse_clean("smp=4").nosmp);
}

#[test]
fn bad_smp_values_are_rejected() {
    for value in ["0", "00", "-1", "+4", "four", "4x", "0x4", "4294967296", "99999999999999999999", "1.5"] {
        let line = format!("smp={value}");
        let (options, problems) = parse_all(&line);
        assert_eq!(options.smp, None, "{line:?}");
        assert_eq!(problems, [Problem::BadValue { key: "smp", value: line.strip_prefix("smp=").unwrap() }]);
    }
    // A bare or empty `smp` is a missing value, like every other option.
    let (options, problems) = parse_all("smp smp=");
    assert_eq!(options.smp, None);
    assert_eq!(problems, [Problem::MissingValue("smp"), Problem::MissingValue("smp")]);
}

#[test]
fn repeated_smp_last_valid_wins() {
    let (options, problems) = parse_all("smp=2 smp=8");
    assert_eq!(options.smp, Some(8));
    assert_eq!(problems, [Problem::Repeated("smp")]);

    // A rejected value changes nothing and is no repeat.
    let (options, problems) = parse_all("smp=2 smp=0");
    assert_eq!(options.smp, Some(2));
    assert_eq!(problems, [Problem::BadValue { key: "smp", value: "0" }]);

    let (options, problems) = parse_all("smp=2 smp=x smp=3 smp=4");
    assert_eq!(options.smp, Some(4));
    assert_eq!(problems, [Problem::BadValue { key: "smp", value: "x" }, Problem::Repeated("smp")]);
}

#[test]
fn nosmp_flag() {
    let options = parse_clean("nosmp");
    assert!(options.nosmp);
    assert_eq!(options.smp, None);
    assert_eq!(options.cpu_limit(), Some(1));
    // Repeating a flag is harmless: nothing to report.
    assert!(parse_clean("nosmp log=debug nosmp nosmp").nosmp);
}

#[test]
fn nosmp_with_a_value_is_a_bad_value() {
    for (line, value) in [("nosmp=1", "1"), ("nosmp=", ""), ("nosmp=yes", "yes"), ("nosmp==", "=")] {
        let (options, problems) = parse_all(line);
        assert!(!options.nosmp, "{line:?}");
        assert_eq!(problems, [Problem::BadValue { key: "nosmp", value }], "{line:?}");
    }
    // It does not undo an earlier bare `nosmp` either.
    let (options, problems) = parse_all("nosmp nosmp=0");
    assert!(options.nosmp);
    assert_eq!(problems, [Problem::BadValue { key: "nosmp", value: "0" }]);
    // Case and spelling matter, as for every option.
    let (options, problems) = parse_all("NOSMP no-smp");
    assert!(!options.nosmp);
    assert_eq!(problems, [Problem::Unknown("NOSMP"), Problem::Unknown("no-smp")]);
}

#[test]
fn nosmp_beats_smp_in_either_order() {
    for line in ["smp=8 nosmp", "nosmp smp=8"] {
        let options = parse_clean(line);
        assert_eq!(options.smp, Some(8), "{line:?}: smp= is still recorded");
        assert!(options.nosmp);
        assert_eq!(options.cpu_limit(), Some(1), "{line:?}");
    }
}

#[test]
fn cpu_limit() {
    let limit = |smp, nosmp| Options { smp, nosmp, ..Options::default() }.cpu_limit();
    assert_eq!(limit(None, false), None);
    assert_eq!(limit(Some(3), false), Some(3));
    assert_eq!(limit(None, true), Some(1));
    assert_eq!(limit(Some(3), true), Some(1));
}

#[test]
fn smp_problem_messages() {
    assert_eq!(messages("smp=0"), ["bad value '0' for 'smp' (expected a number of CPUs, at least 1)"]);
    assert_eq!(messages("smp"), ["option 'smp' needs a value"]);
    assert_eq!(messages("smp=1 smp=2"), ["option 'smp' given more than once; the last one wins"]);
    assert_eq!(messages("nosmp=1"), ["bad value '1' for 'nosmp' (it is a flag and takes no value)"]);
}

#[test]
fn selector_all() {
    assert!(test_selected("all", "mem::frame_reuse"));
    assert!(test_selected("all", "x"));
    assert!(test_selected("sched,all", "mem::frame_reuse"));
}

#[test]
fn selector_exact_name() {
    assert!(test_selected("mem::frame_reuse", "mem::frame_reuse"));
    assert!(!test_selected("mem::frame_reuse", "mem::frame_reuse_again"));
    assert!(!test_selected("mem::frame_reuse", "mem::frame"));
    assert!(!test_selected("Mem::frame_reuse", "mem::frame_reuse"), "case matters");
}

#[test]
fn selector_suite_prefix_ends_at_a_boundary() {
    assert!(test_selected("mem", "mem::frames"));
    assert!(test_selected("mem", "mem::heap::grow"), "nested suites");
    assert!(test_selected("mem::heap", "mem::heap::grow"));
    assert!(!test_selected("mem", "memory::x"));
    assert!(!test_selected("mem::fr", "mem::frames"));
    assert!(test_selected("mem::fr", "mem::fr"));
    assert!(!test_selected("mem", "sched::mem"), "prefix, not substring");
    assert!(!test_selected("mem", "mem:frames"), "single colon is no boundary");
    assert!(test_selected("mem", "mem"), "a test may share its suite's name");
}

#[test]
fn selector_trailing_colons() {
    assert!(test_selected("mem::", "mem::frames"));
    assert!(!test_selected("mem::", "memory::x"));
    assert!(!test_selected("::", "mem::frames"));
}

#[test]
fn selector_lists() {
    let selector = "sched,mem::frame_reuse,ipc";
    assert!(test_selected(selector, "sched::yield"));
    assert!(test_selected(selector, "mem::frame_reuse"));
    assert!(test_selected(selector, "ipc::ping"));
    assert!(!test_selected(selector, "mem::heap"));
    assert!(!test_selected(selector, "smp::boot"));
}

#[test]
fn selector_empty_items_are_ignored() {
    assert!(!test_selected("", "mem::frames"));
    assert!(!test_selected(",,", "mem::frames"));
    assert!(!test_selected(",", ""), "an empty item does not even match an empty name");
    assert!(test_selected(",mem,,sched,", "mem::frames"));
    assert!(test_selected(" mem , sched", "sched::yield"), "spaces around items");
}

#[test]
fn selector_from_a_parsed_line() {
    let options = parse_clean("test=mem,smp::ipi log=debug");
    let selector = options.test.unwrap();
    assert!(test_selected(selector, "mem::frame_reuse"));
    assert!(test_selected(selector, "smp::ipi"));
    assert!(!test_selected(selector, "smp::boot"));
}

#[test]
fn apfault_needs_a_value_and_repeats_are_reported() {
    let (options, problems) = parse_all("apfault apfault=silent apfault=stuck");
    assert_eq!(options.apfault, Some("stuck"));
    assert_eq!(problems, [Problem::MissingValue("apfault"), Problem::Repeated("apfault")]);
}

#[test]
fn seed_is_a_decimal_u64() {
    assert_eq!(parse_clean("seed=18446744073709551615").seed, Some(u64::MAX));
    let (options, problems) = parse_all("seed=0x10 seed=-1 seed=12");
    assert_eq!(options.seed, Some(12));
    assert_eq!(
        problems,
        [Problem::BadValue { key: "seed", value: "0x10" }, Problem::BadValue { key: "seed", value: "-1" }]
    );
}

#[test]
fn bench_flag() {
    let mut problems = Vec::new();
    let options = parse("bench", |p| problems.push(p.to_string()));
    assert!(options.bench);
    assert!(problems.is_empty());
    let options = parse("bench=1", |p| problems.push(p.to_string()));
    assert!(!options.bench);
    assert_eq!(problems, ["bad value '1' for 'bench' (it is a flag and takes no value)"]);
    assert!(!parse("", |_| {}).bench);
}

#[test]
fn console_where() {
    assert_eq!(parse_clean("console=serial").console, Some(Console::Serial));
    assert_eq!(parse_clean("console=screen").console, Some(Console::Screen));
    assert_eq!(parse_clean("console=both").console, Some(Console::Both));
    assert_eq!(parse_clean("console=ttyS0").console, Some(Console::Tty(0)));
    assert_eq!(parse_clean("console=ttyS3").console, Some(Console::Tty(3)));
    assert_eq!(parse_clean("").console, None);
    for bad in ["ttyS4", "ttyS", "ttyS01", "COM1", "tty0"] {
        let line = format!("console={bad}");
        let (options, problems) = parse_all(&line);
        assert_eq!(options.console, None, "{bad}");
        assert_eq!(problems, [Problem::BadValue { key: "console", value: bad }]);
    }
    let mut text = Vec::new();
    parse("console=lpt1", |p| text.push(p.to_string()));
    assert_eq!(text, ["bad value 'lpt1' for 'console' (expected serial, screen, both or ttyS0-ttyS3)"]);
}

#[test]
fn reboot_methods() {
    for m in ResetMethod::ALL {
        assert_eq!(parse_clean(&format!("reboot={}", m.as_str())).reboot, Some(m));
    }
    assert_eq!(parse_clean("").reboot, None);
    let (options, problems) = parse_all("reboot=bios");
    assert_eq!(options.reboot, None);
    assert_eq!(problems, [Problem::BadValue { key: "reboot", value: "bios" }]);
    assert_eq!(messages("reboot=warm"), ["bad value 'warm' for 'reboot' (expected acpi, cf9, kbd or triple)"]);
    assert_eq!(messages("reboot="), ["option 'reboot' needs a value"]);
}

#[test]
fn after_panic() {
    assert_eq!(parse_clean("").panic, AfterPanic::PowerOff { after_s: 0 });
    assert_eq!(parse_clean("panic=halt").panic, AfterPanic::Halt);
    assert_eq!(parse_clean("panic=0").panic, AfterPanic::PowerOff { after_s: 0 });
    assert_eq!(parse_clean("panic=30").panic, AfterPanic::PowerOff { after_s: 30 });
    assert_eq!(parse_clean("panic=3600").panic, AfterPanic::PowerOff { after_s: 3600 });
    for bad in ["3601", "-1", "+5", "1.5", "0x10", "reboot", "99999999999"] {
        let (options, problems) = parse_all_owned(&format!("panic=30 panic={bad}"));
        assert_eq!(options, AfterPanic::PowerOff { after_s: 30 }, "panic={bad} keeps the last good value");
        assert_eq!(problems, 1, "panic={bad} is reported");
    }
    assert_eq!(
        messages("panic=forever"),
        ["bad value 'forever' for 'panic' (expected halt, or seconds before power off, at most 3600)"]
    );
    assert_eq!(messages("panic="), ["option 'panic' needs a value"]);
}

/// The `panic=` option and how many problems `line` had.
fn parse_all_owned(line: &str) -> (AfterPanic, usize) {
    let (options, problems) = parse_all(line);
    (options.panic, problems.len())
}
