//! The interactive shell of a normal boot, talked to as a user would:
//! lines typed on the serial terminal (QEMU's stdin) and keys pressed on
//! the PS/2 keyboard (QEMU's monitor), answers read back from serial.
//!
//! Answers to a serial line come back raw (`\r\n` line ends) through the
//! serial driver; answers to a keyboard line, and everything a program the
//! shell starts prints, go to the kernel's console, which marks them as
//! user lines (`[<pid>] `). Every conversation ends with `poweroff`, and
//! QEMU must then exit by itself.
//!
//! The drivers and the shell print side by side, and the kernel's console
//! shares COM1 with the serial driver, so a conversation waits for texts
//! that come from two writers with [`Step::expect_all`], and waits for a
//! command's own echo before its prompt, so that an earlier prompt cannot
//! stand in for it.

use std::time::Duration;

use ferrite_tests::{user_line, Boot, Firmware, Machine, Outcome, Status, Step};

/// The shell's prompt as the serial terminal shows it, after the line
/// before it (on the console it follows `[<pid>] ` instead).
const PROMPT: &str = "\r\nferrite> ";
/// The end of the shell's greeting and its first prompt, on serial.
const GREETING: &str = "for the commands.\r\nferrite> ";
/// What the drivers say once they serve.
const KBD_UP: &str = "kbd: driving the PS/2 keyboard (IRQ 1)";
const SERIAL_UP: &str = "serial: driving COM1 at 0x3f8 (IRQ 4)";
/// A killed process's exit code, as init reports it.
const KILLED: &str = "0xdead0009";
/// What every command in `help` starts with, in order.
const COMMANDS: &[&str] = &[
    "help",
    "ps",
    "kill <pid>",
    "run <prog> [args]",
    "<prog> [args]",
    "cpus",
    "mem",
    "uptime",
    "bench",
    "poweroff",
    "reboot",
];

/// How long one answer may take: generous for TCG with 8 virtual CPUs on
/// a busy 2-core host.
const ANSWER: Duration = Duration::from_secs(60);
/// How long the boot to the prompt may take (OVMF alone takes seconds).
const TO_PROMPT: Duration = Duration::from_secs(150);
/// A whole conversation.
const BOOT: Duration = Duration::from_secs(300);

/// Waits for the drivers and the shell to be up.
fn booted() -> Step {
    Step::expect_all(&[KBD_UP, SERIAL_UP, GREETING]).within(TO_PROMPT)
}

/// Waits for `text` (an answer).
fn expect(text: &str) -> Step {
    Step::expect(text).within(ANSWER)
}

/// Waits for every one of `texts`, in any order.
fn expect_all(texts: &[&str]) -> Step {
    Step::expect_all(texts).within(ANSWER)
}

/// Types `line` on serial and waits for its echo: what follows is its
/// answer.
fn typed(line: &str) -> Vec<Step> {
    vec![Step::line(line), expect(&format!("{line}\r\n"))]
}

/// Types `line` on serial and waits for the prompt after its answer.
fn command(line: &str) -> Vec<Step> {
    let mut steps = typed(line);
    steps.push(expect(PROMPT));
    steps
}

/// Types `line` and checks that its answer (up to the prompt) is exactly
/// `answer`, a line.
fn answered(line: &str, answer: &str) -> Vec<Step> {
    let mut steps = command(line);
    let (line, answer) = (line.to_owned(), format!("{answer}\r\n"));
    steps.push(Step::check(&format!("the answer to {line:?}"), move |seen| {
        let got = last_answer(seen, &line)?;
        if got == answer {
            Ok(())
        } else {
            Err(format!("expected {answer:?}, got {got:?}"))
        }
    }));
    steps
}

/// The last answer to serial line `line` in `seen` (which ends at the
/// prompt after it): the text after the line's echo, without the prompt.
/// The echo follows the prompt, or starts a line if a kernel line came
/// after the prompt.
fn last_answer<'a>(seen: &'a str, line: &str) -> Result<&'a str, String> {
    let rest = &seen[last_echo(seen, line)? + line.len() + "\r\n".len()..];
    Ok(rest.strip_suffix("ferrite> ").unwrap_or(rest))
}

/// Where the last echo of serial line `line` in `seen` starts.
fn last_echo(seen: &str, line: &str) -> Result<usize, String> {
    seen.match_indices(&format!("{line}\r\n"))
        .map(|(at, _)| at)
        .filter(|&at| at == 0 || seen[..at].ends_with("ferrite> ") || seen[..at].ends_with('\n'))
        .last()
        .ok_or_else(|| format!("no echo of {line:?}"))
}

/// The rows of a `ps` listing of processes that have not ended: pid and
/// name.
fn ps_rows(answer: &str) -> Vec<(u64, &str)> {
    answer
        .lines()
        .filter_map(|line| {
            // `  PID PARENT THREADS   MEMORY      CPU NAME`: pid, parent,
            // threads, KiB, "KiB", ms, "ms", name, and `(ended)` for a
            // process that has ended but is still waited for.
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [pid, _, _, _, "KiB", _, "ms", name] => Some((pid.parse().ok()?, *name)),
                _ => None,
            }
        })
        .collect()
}

/// The pid of `name` in `ps` listing `answer`.
fn pid_in(answer: &str, name: &str) -> Result<u64, String> {
    let rows = ps_rows(answer);
    rows.iter().find(|(_, n)| *n == name).map(|&(pid, _)| pid).ok_or_else(|| format!("no {name} in {answer:?}"))
}

/// The pid of `name` in the last `ps` listing in `seen`.
fn pid_of(seen: &str, name: &str) -> Result<u64, String> {
    pid_in(last_answer(seen, "ps")?, name)
}

/// Kills `name` by its pid in the last `ps` listing, waits for init to
/// start it again and for the new one to say `up`, then lists the
/// processes again and checks that a new `name` runs under another pid.
fn kill_and_restart(name: &'static str, up: &str) -> Vec<Step> {
    let mut steps = vec![
        Step::send_with(move |seen| Ok(format!("kill {}\r", pid_of(seen, name)?))),
        expect("kill "),
        expect_all(&[&format!("init: {name} ended with {KILLED}; starting it again"), up]),
    ];
    steps.extend(ps());
    steps.push(Step::check(&format!("{name} was killed and runs again"), move |seen| {
        // Where the last listing starts: the one before it is older.
        let before = last_echo(seen, "ps")?;
        let (old, new) = (pid_of(&seen[..before], name)?, pid_of(seen, name)?);
        if old == new {
            return Err(format!("{name} still has pid {old}"));
        }
        // The answer to the kill: on serial, or (the serial driver itself
        // killed) once its successor serves.
        match seen[..before].contains(&format!("killed {old}\r\n")) {
            true => Ok(()),
            false => Err(format!("no `killed {old}` answer")),
        }
    }));
    steps
}

/// `ps`, checking that init, the drivers and the shell are listed.
fn ps() -> Vec<Step> {
    let mut steps = command("ps");
    steps.push(Step::check("ps lists init, serial, kbd and sh", |seen| {
        let answer = last_answer(seen, "ps")?;
        let rows = ps_rows(answer);
        match ["init", "serial", "kbd", "sh"].iter().find(|&&name| !rows.iter().any(|(_, n)| *n == name)) {
            Some(name) => Err(format!("no {name} in {answer:?}")),
            None if !answer.starts_with("  PID PARENT THREADS   MEMORY      CPU NAME\r\n") => {
                Err(format!("no header in {answer:?}"))
            }
            None => Ok(()),
        }
    }));
    steps
}

/// `help`, checking that it lists every command, one a line, in order.
fn help() -> Vec<Step> {
    let mut steps = command("help");
    steps.push(Step::check("help lists every command", |seen| {
        let answer = last_answer(seen, "help")?;
        let lines: Vec<&str> = answer.lines().collect();
        if lines.len() != COMMANDS.len() {
            return Err(format!("{} lines, not {}: {answer:?}", lines.len(), COMMANDS.len()));
        }
        match lines.iter().zip(COMMANDS).find(|(line, command)| !line.starts_with(&format!("{command}  "))) {
            Some((line, command)) => Err(format!("{line:?} does not start with {command:?}")),
            None => Ok(()),
        }
    }));
    steps
}

/// `uptime`, checking the form of its answer.
fn uptime() -> Vec<Step> {
    let mut steps = command("uptime");
    steps.push(Step::check("uptime", |seen| match last_answer(seen, "uptime")? {
        answer if is_uptime(answer.trim_end()) => Ok(()),
        answer => Err(format!("expected `up <s>.<ms> s`: {answer:?}")),
    }));
    steps
}

/// `up <seconds>.<milliseconds> s`.
fn is_uptime(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    text.strip_prefix("up ")
        .and_then(|t| t.strip_suffix(" s"))
        .and_then(|t| t.split_once('.'))
        .is_some_and(|(s, ms)| digits(s) && ms.len() == 3 && digits(ms))
}

/// An unknown program, and `kill` with a bad argument.
fn bad_commands() -> Vec<Step> {
    [answered("bogus", "bogus: no such program"), answered("kill x", "kill: expected a process id, got 'x'")].concat()
}

/// `poweroff`: the last step.
fn poweroff() -> Vec<Step> {
    typed("poweroff")
}

/// Checks that the boot ended through the debug-exit device, as a power
/// off from the shell does, and that nothing went wrong on the way.
fn assert_powered_off(outcome: &Outcome) {
    outcome.assert_status(Status::Success);
    outcome.assert_contains_all(&["asks to power off"]);
    for bad in ["FAILED", "killed:", "PANIC", "giving up"] {
        outcome.assert_lacks(bad);
    }
}

/// The short conversation: help, ps, bad commands, poweroff.
fn short_conversation(name: &str, firmware: Firmware, machine: Machine, cpus: u32) {
    let steps = [vec![booted()], help(), ps(), bad_commands(), poweroff()].concat();
    let outcome = Boot::new(name).firmware(firmware).machine(machine).smp(cpus).timeout(BOOT).converse(&steps);
    assert_powered_off(&outcome);
    outcome.assert_contains_all(&[&format!("smp: {cpus} of {cpus} CPUs online")]);
}

/// Every command but bench and reboot, on serial, and init starting the
/// keyboard driver again after `kill`.
#[test]
fn shell_serial_bios_pc() {
    let steps = [
        vec![booted()],
        help(),
        ps(),
        command("hello from the harness"),
        vec![Step::check("hello's line", |seen| {
            let answer = last_answer(seen, "hello from the harness")?;
            match answer.lines().filter_map(user_line).any(|(_, text)| text == "hello: from the harness") {
                true => Ok(()),
                false => Err(format!("no `[<pid>] hello: from the harness` in {answer:?}")),
            }
        })],
        command("cpus"),
        vec![Step::check("one line per CPU", |seen| {
            let answer = last_answer(seen, "cpus")?;
            let cpus: Vec<&str> = answer.lines().filter(|l| l.starts_with("cpu")).collect();
            match (answer.starts_with("1 CPUs online\r\n"), cpus.as_slice()) {
                (true, [cpu0]) if cpu0.starts_with("cpu0: APIC ID ") => Ok(()),
                _ => Err(format!("expected `1 CPUs online` and one `cpu0: APIC ID` line: {answer:?}")),
            }
        })],
        command("mem"),
        vec![Step::check("memory", |seen| match last_answer(seen, "mem")? {
            answer if answer.starts_with("memory: ") && answer.lines().count() == 1 => Ok(()),
            answer => Err(format!("expected one `memory: ` line: {answer:?}")),
        })],
        uptime(),
        bad_commands(),
        answered("kill 99999", "kill: no process 99999"),
        ps(),
        kill_and_restart("kbd", KBD_UP),
        poweroff(),
    ]
    .concat();
    let outcome = Boot::new("shell_serial_bios_pc").machine(Machine::Pc).smp(1).timeout(BOOT).converse(&steps);
    assert_powered_off(&outcome);
}

#[test]
fn shell_uefi_q35_4_cpus() {
    short_conversation("shell_uefi_q35_4_cpus", Firmware::Uefi, Machine::Q35, 4);
}

#[test]
fn shell_bios_q35_8_cpus() {
    short_conversation("shell_bios_q35_8_cpus", Firmware::Bios, Machine::Q35, 8);
}

/// Lines typed on the PS/2 keyboard (QEMU's `sendkey`), one with a
/// Backspace: the answers go to the kernel's console, so they show on
/// serial as the shell's user lines, and on the screen, which is read back
/// when the machine is off (through the same monitor the keys went to).
#[test]
fn shell_keyboard() {
    let steps = [
        vec![booted()],
        vec![Step::type_keys("uptime\n"), expect("] up "), expect("] ferrite> ")],
        // `hellp`, Backspace, `o`: runs hello.
        vec![Step::type_keys("hellp\x08o\n"), expect("] hello:"), expect("] ferrite> ")],
        poweroff(),
    ]
    .concat();
    let outcome = Boot::new("shell_keyboard")
        .machine(Machine::Pc)
        .smp(2)
        .debug_exit(false)
        .read_screen()
        .timeout(BOOT)
        .converse(&steps);
    // Without the debug-exit device the shell's power off is ACPI's.
    outcome.assert_status(Status::GuestPowerOff);
    let sh = shell_pid(&outcome);
    if !outcome.user_lines().any(|(pid, text)| pid == sh && is_uptime(text)) {
        outcome.fail(&format!("no `[{sh}] up <s>.<ms> s` line: the answer to a keyboard line"));
    }
    if !outcome.user_lines().any(|(pid, text)| pid != sh && text.trim_end() == "hello:") {
        outcome.fail("no `hello:` line from a program other than the shell");
    }
    outcome.assert_lacks("no such program");
    outcome.assert_screen_shows(&["] up ", "] hello:"]);
}

/// The shell's pid, from its greeting on the console.
fn shell_pid(outcome: &Outcome) -> u64 {
    let greeting = outcome.user_lines().find(|(_, text)| text.starts_with("Ferrite shell."));
    greeting.map(|(pid, _)| pid).unwrap_or_else(|| outcome.fail("no greeting from the shell on the console"))
}

/// The serial driver killed from the serial line it serves: init starts
/// it again, the answer to the kill comes through the new one, and so do
/// the answers to the lines typed after.
#[test]
fn shell_serial_driver_restart() {
    let steps = [vec![booted()], ps(), kill_and_restart("serial", SERIAL_UP), uptime(), poweroff()].concat();
    let outcome = Boot::new("shell_serial_driver_restart").smp(2).timeout(BOOT).converse(&steps);
    assert_powered_off(&outcome);
}

/// `bench` runs ubench to its end: its figures, `bench <name> <value>
/// <unit>`, are well formed, and the prompt comes back.
#[test]
fn shell_bench() {
    let steps = [
        vec![booted()],
        typed("bench"),
        vec![Step::expect(PROMPT).within(BENCH)],
        vec![Step::check("bench's answer", |seen| {
            // ubench's lines are its own (through the console); the shell
            // adds nothing unless ubench failed.
            let answer = last_answer(seen, "bench")?;
            match answer.lines().find(|l| !l.is_empty() && user_line(l).is_none() && !l.starts_with("[ ")) {
                Some(line) => Err(format!("the shell says {line:?}")),
                None => Ok(()),
            }
        })],
        poweroff(),
    ]
    .concat();
    let outcome = Boot::new("shell_bench").smp(1).timeout(BENCH + BOOT).converse(&steps);
    assert_powered_off(&outcome);
    let sh = shell_pid(&outcome);
    let figures: Vec<(u64, &str)> =
        outcome.user_lines().filter(|&(pid, text)| pid != sh && text.starts_with("bench ")).collect();
    let malformed: Vec<&str> = figures.iter().map(|&(_, l)| l).filter(|l| figure(l).is_none()).collect();
    if !malformed.is_empty() {
        outcome.fail(&format!("malformed figures: {malformed:?}"));
    }
    let measured = figures.iter().filter(|(_, l)| figure(l).is_some_and(|(_, value, _)| value != "n/a")).count();
    if measured < 5 {
        outcome.fail(&format!("only {measured} figures with a value, of {}", figures.len()));
    }
    if figures.iter().any(|&(pid, _)| pid != figures[0].0) {
        outcome.fail("the figures come from more than one process");
    }
}

/// How long ubench may take on one CPU under TCG.
const BENCH: Duration = Duration::from_secs(240);

/// `bench <name> <value> <unit>`, split, if the value is a whole number,
/// one with one decimal, or `n/a` (a figure that needs a second CPU).
fn figure(line: &str) -> Option<(&str, &str, &str)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let number = |v: &str| match v.split_once('.') {
        None => digits(v),
        Some((whole, tenths)) => digits(whole) && tenths.len() == 1 && digits(tenths),
    };
    match line.split(' ').collect::<Vec<_>>().as_slice() {
        ["bench", name, value, unit] if !name.is_empty() && !unit.is_empty() && (*value == "n/a" || number(value)) => {
            Some((name, value, unit))
        }
        _ => None,
    }
}

#[test]
fn helpers_read_the_shell() {
    let seen = "ferrite> ps\r\n  PID PARENT THREADS   MEMORY      CPU NAME\r\n    1      0       6   1770 KiB    35 ms init\r\n    2      1       2    340 KiB     6 ms kbd (ended)\r\n   12      1       2    340 KiB     6 ms kbd\r\nferrite> ";
    assert_eq!(pid_of(seen, "init"), Ok(1));
    assert_eq!(pid_of(seen, "kbd"), Ok(12), "the ended one is not it");
    assert_eq!(ps_rows(last_answer(seen, "ps").unwrap()).len(), 2);
    let seen = "ferrite> [1] init: kbd ended\r\nps\r\n    6      1       2    340 KiB     4 ms kbd\r\nferrite> ";
    assert_eq!(pid_of(seen, "kbd"), Ok(6), "an echo after a kernel line");
    assert!(pid_of(seen, "sh").is_err());
    assert!(last_answer(seen, "help").is_err());
    assert!(is_uptime("up 12.034 s") && !is_uptime("up 12.34 s") && !is_uptime("up .034 s"));
    assert_eq!(figure("bench null_syscall 101.5 ns"), Some(("null_syscall", "101.5", "ns")));
    assert!(figure("bench ipc_cross_cpu n/a ns").is_some());
    for bad in ["bench x 1.23 ns", "bench x ns", "bench x 1 ns extra", "bench x -1 ns", "ubench: x 1 ns"] {
        assert_eq!(figure(bad), None, "{bad:?}");
    }
}
