//! What a boot produced, and the assertions tests make about it.
//!
//! Every assertion panics with a message that names the saved log file and
//! quotes the end of the log, so a failure in CI can be diagnosed from the
//! test output alone.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The kernel powered off reporting success through QEMU's debug-exit
    /// device (qemu.sh exit 0).
    Success,
    /// The kernel powered off reporting failure: a panic, a crash diagnostic
    /// or a failed test (qemu.sh exit 1).
    KernelFailure,
    /// QEMU ended without a kernel verdict: a triple fault or reset (QEMU runs
    /// with `-no-reboot`), a QEMU error, or a signal. Holds qemu.sh's exit
    /// code, or 128 + the signal number if a signal killed it.
    QemuEnded(i32),
    /// Without the debug-exit device ([`crate::Boot::debug_exit`]`(false)`),
    /// the guest powered the machine off (ACPI S5) and QEMU exited by
    /// itself (qemu.sh exit 3). The status carries no verdict: only the log
    /// says whether the kernel reported success
    /// ([`Outcome::assert_all_tests_passed_acpi_off`]).
    GuestPowerOff,
    /// No verdict (or, for [`crate::Boot::run_until`], no pattern) before the
    /// timeout; QEMU was killed.
    Timeout,
    /// [`crate::Boot::run_until`] saw its pattern on the serial console and
    /// stopped QEMU.
    PatternFound,
    /// A step of [`crate::Boot::converse`] failed while QEMU ran, and the
    /// harness stopped QEMU.
    StepFailed,
}

/// The result of one boot.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The test's name, which also names the log files.
    pub name: String,
    /// How the boot ended.
    pub status: Status,
    /// The serial console output (lossily decoded: firmware may write bytes
    /// that are not UTF-8).
    pub log: String,
    /// QEMU's and qemu.sh's own messages.
    pub stderr: String,
    /// Where the serial log was saved: `build/test-logs/<name>.log`.
    pub log_path: PathBuf,
    /// Where stderr was saved: `build/test-logs/<name>.stderr`.
    pub stderr_path: PathBuf,
    /// How long QEMU ran.
    pub elapsed: Duration,
    /// The screen's text when the guest powered off, a string a text row
    /// ([`crate::Boot::read_screen`]), or why it could not be read.
    pub screen: Option<Result<Vec<String>, String>>,
}

/// A line of user output, split into the writer's pid and its text; None
/// for a kernel line.
pub fn user_line(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (pid, text) = rest.split_once("] ")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pid.parse().ok()?, text))
}

/// Lines of the log quoted in a failure message.
const TAIL_LINES: usize = 40;

impl Outcome {
    /// Checks that the screen, read back at power off, shows a line
    /// containing each of `needles`; returns its lines.
    ///
    /// # Panics
    ///
    /// If the screen was not read, or a needle is missing: with the screen's
    /// text.
    pub fn assert_screen_shows(&self, needles: &[&str]) -> &[String] {
        let text = match &self.screen {
            None => panic!("{}: the screen was not read (Boot::read_screen)", self.name),
            Some(Err(e)) => panic!("{}", self.report(&format!("the screen could not be read: {e}"))),
            Some(Ok(text)) => text,
        };
        let absent: Vec<&str> = needles.iter().copied().filter(|n| !text.iter().any(|l| l.contains(n))).collect();
        if !absent.is_empty() {
            panic!(
                "{}: the screen does not show {absent:?}; it shows:\n{}\n(serial log: {})",
                self.name,
                text.join("\n"),
                self.log_path.display()
            );
        }
        text
    }

    /// The serial log's lines, without line terminators (QEMU's serial may
    /// deliver `\r\n`).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.log.lines().map(|l| l.trim_end_matches('\r'))
    }

    /// Lines user programs wrote, as `(pid, text)`: the kernel marks every
    /// line of a program's output with `[pid] ` (console.rs), so nothing a
    /// program writes can pass for a kernel line.
    pub fn user_lines(&self) -> impl Iterator<Item = (u64, &str)> {
        self.lines().filter_map(user_line)
    }

    /// Asserts that a `test=…` boot powered off with success after every
    /// test passed; returns how many passed.
    ///
    /// That is: the status is [`Status::Success`]; the last non-empty line
    /// is `<N> passed, 0 failed` with N > 0; every line starting with
    /// `test ` ends in `... ok` (so none says `... FAILED`); and there are
    /// exactly N such lines, so no result was lost or garbled on the way.
    #[track_caller]
    pub fn assert_all_tests_passed(&self) -> usize {
        let checked = check_all_tests_passed(&self.log);
        if self.status != Status::Success {
            let why = match checked {
                Err(e) => format!("expected status Success, got {:?}; also: {e}", self.status),
                Ok(_) => format!("expected status Success, got {:?}", self.status),
            };
            self.fail(&why);
        }
        checked.unwrap_or_else(|e| self.fail(&e))
    }

    /// Asserts that a `test=…` boot without the debug-exit device powered
    /// off through ACPI after every test passed; returns how many passed.
    ///
    /// That is: the status is [`Status::GuestPowerOff`] (QEMU exited by
    /// itself through a guest power off, not a reset or a timeout); the
    /// last non-empty line is [`ACPI_OFF_SUCCESS`], the verdict the kernel
    /// says before entering S5; and the lines before it pass
    /// [`check_all_tests_passed`].
    #[track_caller]
    pub fn assert_all_tests_passed_acpi_off(&self) -> usize {
        let checked = check_acpi_power_off(&self.log);
        if self.status != Status::GuestPowerOff {
            let also = checked.as_ref().err().map(|e| format!("; also: {e}")).unwrap_or_default();
            self.fail(&format!("expected status GuestPowerOff, got {:?}{also}", self.status));
        }
        checked.unwrap_or_else(|e| self.fail(&e))
    }

    /// Asserts that the kernel reported a crash: status
    /// [`Status::KernelFailure`] (a reboot or triple fault, i.e.
    /// [`Status::QemuEnded`], fails this) and every one of `needles` occurs
    /// in the log.
    #[track_caller]
    pub fn assert_crashed_with(&self, needles: &[&str]) {
        if self.status != Status::KernelFailure {
            self.fail(&format!(
                "expected the kernel to power off reporting failure (KernelFailure), got {:?}",
                self.status
            ));
        }
        self.assert_contains_all(needles);
    }

    /// Asserts that the boot ended with `status`.
    #[track_caller]
    pub fn assert_status(&self, status: Status) {
        if self.status != status {
            self.fail(&format!("expected status {status:?}, got {:?}", self.status));
        }
    }

    /// Asserts that every one of `needles` occurs in the log.
    #[track_caller]
    pub fn assert_contains_all(&self, needles: &[&str]) {
        let missing = missing(&self.log, needles);
        if !missing.is_empty() {
            self.fail(&format!("the log lacks {missing:?}"));
        }
    }

    /// Asserts that `needle` occurs nowhere in the log, quoting the first
    /// line that has it.
    #[track_caller]
    pub fn assert_lacks(&self, needle: &str) {
        if let Some(line) = self.lines().find(|l| l.contains(needle)) {
            self.fail(&format!("the log contains {needle:?}: {line:?}"));
        }
    }

    /// Panics with `why`, the status, the log paths, the end of stderr and
    /// the last 40 lines of the serial log.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        panic!("{}", self.report(why))
    }

    /// The failure message [`Outcome::fail`] panics with.
    pub fn report(&self, why: &str) -> String {
        let mut text = format!("boot `{}` failed: {why}\n", self.name);
        let _ = writeln!(text, "  status:     {:?} after {:.1?}", self.status, self.elapsed);
        let _ = writeln!(text, "  serial log: {}", self.log_path.display());
        let _ = writeln!(text, "  stderr:     {}", self.stderr_path.display());
        let stderr = tail(&self.stderr, 10);
        if !stderr.is_empty() {
            let _ = writeln!(text, "--- end of stderr ---");
            stderr.iter().for_each(|l| _ = writeln!(text, "| {l}"));
        }
        let log = tail(&self.log, TAIL_LINES);
        let _ = writeln!(text, "--- last {} lines of the serial log ---", log.len());
        log.iter().for_each(|l| _ = writeln!(text, "| {l}"));
        text
    }
}

/// Maps qemu.sh's exit to a [`Status`] (its contract: 0 success, 1 kernel
/// failure, 3 a guest power off without the debug-exit device, anything
/// else QEMU ended without a verdict).
pub(crate) fn status_of(exit: std::process::ExitStatus) -> Status {
    use std::os::unix::process::ExitStatusExt;
    match (exit.code(), exit.signal()) {
        (Some(0), _) => Status::Success,
        (Some(1), _) => Status::KernelFailure,
        (Some(3), _) => Status::GuestPowerOff,
        (Some(code), _) => Status::QemuEnded(code),
        (None, Some(signal)) => Status::QemuEnded(128 + signal),
        (None, None) => Status::QemuEnded(-1),
    }
}

/// The log half of [`Outcome::assert_all_tests_passed`]: Ok(N) for a log
/// that ends in `N passed, 0 failed` with N > 0 after exactly N `test … ok`
/// lines, else a description of what is wrong.
pub fn check_all_tests_passed(log: &str) -> Result<usize, String> {
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    let results: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("test ")).collect();
    let failed: Vec<&str> = results.iter().copied().filter(|l| l.contains("... FAILED")).collect();
    if !failed.is_empty() {
        return Err(format!("{} test(s) failed:\n  {}", failed.len(), failed.join("\n  ")));
    }
    if let Some(odd) = results.iter().find(|l| !l.trim_end().ends_with("... ok")) {
        return Err(format!("a test result line does not end in `... ok`: {odd:?}"));
    }
    let last = lines.iter().rev().map(|l| l.trim()).find(|l| !l.is_empty());
    let Some(last) = last else {
        return Err("the serial log is empty".to_owned());
    };
    let Some(passed) = parse_summary(last) else {
        return Err(format!(
            "the last line is not a `<N> passed, 0 failed` summary: {last:?} (did the run stop early?)"
        ));
    };
    if passed == 0 {
        return Err("the summary says no test ran: does the test= filter match anything?".to_owned());
    }
    if passed != results.len() {
        return Err(format!("the summary says {passed} passed but the log has {} `test ` lines", results.len()));
    }
    Ok(passed)
}

/// What the kernel says, as its last line, before it powers off through
/// ACPI S5 reporting success (kernel/src/arch/x86_64/power.rs).
pub const ACPI_OFF_SUCCESS: &str = "power: powering off through ACPI S5 (success)";

/// The log half of [`Outcome::assert_all_tests_passed_acpi_off`]: Ok(N)
/// for a log whose last non-empty line is [`ACPI_OFF_SUCCESS`] and whose
/// lines before it pass [`check_all_tests_passed`].
pub fn check_acpi_power_off(log: &str) -> Result<usize, String> {
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    let Some(last) = lines.iter().rposition(|l| !l.trim().is_empty()) else {
        return Err("the serial log is empty".to_owned());
    };
    if lines[last].trim() != ACPI_OFF_SUCCESS {
        return Err(format!("the last line is not {ACPI_OFF_SUCCESS:?}: {:?}", lines[last]));
    }
    check_all_tests_passed(&lines[..last].join("\n"))
}

/// N from a line that is exactly `<N> passed, 0 failed`.
fn parse_summary(line: &str) -> Option<usize> {
    let count = line.strip_suffix(" passed, 0 failed")?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    count.parse().ok()
}

/// The `needles` that do not occur in `log`.
pub fn missing<'a>(log: &str, needles: &[&'a str]) -> Vec<&'a str> {
    needles.iter().copied().filter(|n| !log.contains(n)).collect()
}

/// The last `n` lines of `text`, without terminators.
fn tail(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    #[test]
    fn exit_codes_follow_the_qemu_sh_contract() {
        // A wait status holds the exit code in bits 8..16, a signal in 0..7.
        assert_eq!(status_of(ExitStatus::from_raw(0)), Status::Success);
        assert_eq!(status_of(ExitStatus::from_raw(1 << 8)), Status::KernelFailure);
        assert_eq!(status_of(ExitStatus::from_raw(2 << 8)), Status::QemuEnded(2));
        assert_eq!(status_of(ExitStatus::from_raw(3 << 8)), Status::GuestPowerOff);
        assert_eq!(status_of(ExitStatus::from_raw(9)), Status::QemuEnded(137));
    }

    const GOOD: &str = "\
[    0.001000] cpu0 INFO  boot: ferrite\r
test mem::frames ... ok\r
[    0.002000] cpu1 DEBUG smp: hello\r
test sched::yield ... ok\r
2 passed, 0 failed\r
\r
";

    #[test]
    fn a_clean_run_passes() {
        assert_eq!(check_all_tests_passed(GOOD), Ok(2));
    }

    #[test]
    fn acpi_power_off_needs_the_verdict_last() {
        let log = format!("{GOOD}{ACPI_OFF_SUCCESS}\r\n");
        assert_eq!(check_acpi_power_off(&log), Ok(2));
        // No power-off line, a failure verdict, or a line after it.
        assert!(check_acpi_power_off(GOOD).unwrap_err().contains("last line"));
        let failure = format!("{GOOD}power: powering off through ACPI S5 (failure)\n");
        assert!(check_acpi_power_off(&failure).is_err());
        let after = format!("{GOOD}{ACPI_OFF_SUCCESS}\npower: ACPI S5 did not power off the machine; halting\n");
        assert!(check_acpi_power_off(&after).is_err());
        // The tests before it must have passed.
        let failed = format!("test a ... FAILED\n0 passed, 1 failed\n{ACPI_OFF_SUCCESS}\n");
        assert!(check_acpi_power_off(&failed).unwrap_err().contains("failed"));
        // The status must say QEMU exited through a power off.
        outcome(Status::GuestPowerOff, &log).assert_all_tests_passed_acpi_off();
        for status in [Status::Success, Status::QemuEnded(2), Status::Timeout] {
            let result = std::panic::catch_unwind(|| outcome(status, &log).assert_all_tests_passed_acpi_off());
            assert!(result.is_err(), "{status:?}");
        }
    }

    #[test]
    fn a_failed_test_is_reported_by_name() {
        let log = "test a ... ok\ntest b ... FAILED: 1 != 2\n1 passed, 1 failed\n";
        let e = check_all_tests_passed(log).unwrap_err();
        assert!(e.contains("test b ... FAILED: 1 != 2"), "{e}");
    }

    #[test]
    fn the_summary_must_be_last() {
        let log = "test a ... ok\n1 passed, 0 failed\n[ 1.0] cpu0 PANIC later\n";
        assert!(check_all_tests_passed(log).unwrap_err().contains("PANIC later"));
        let log = "test a ... ok\n";
        assert!(check_all_tests_passed(log).is_err());
        assert!(check_all_tests_passed("").is_err());
    }

    #[test]
    fn the_summary_must_be_exact() {
        for last in ["0 passed, 0 failed", "x1 passed, 0 failed", " passed, 0 failed", "1 passed, 0 failed!"] {
            let log = format!("test a ... ok\n{last}\n");
            assert!(check_all_tests_passed(&log).is_err(), "{last}");
        }
        assert_eq!(parse_summary("12 passed, 0 failed"), Some(12));
        assert_eq!(parse_summary("+1 passed, 0 failed"), None);
    }

    #[test]
    fn garbled_or_lost_results_fail() {
        // Another CPU's output spliced into a result line.
        let log = "test a ... [ 0.1] cpu1 INFO x\nok\n1 passed, 0 failed\n";
        assert!(check_all_tests_passed(log).unwrap_err().contains("does not end"));
        // One result line missing.
        let log = "test a ... ok\n2 passed, 0 failed\n";
        assert!(check_all_tests_passed(log).unwrap_err().contains("2 passed"));
    }

    #[test]
    fn needles_and_tails() {
        assert_eq!(missing("page fault cr2=0x0", &["page fault", "double fault"]), ["double fault"]);
        assert_eq!(tail("a\nb\r\nc\n", 2), ["b", "c"]);
        assert_eq!(tail("a\n", 5), ["a"]);
    }

    fn outcome(status: Status, log: &str) -> Outcome {
        Outcome {
            name: "canned".to_owned(),
            status,
            log: log.to_owned(),
            stderr: "qemu.sh: the kernel reported failure\n".to_owned(),
            log_path: PathBuf::from("/nonexistent/canned.log"),
            stderr_path: PathBuf::from("/nonexistent/canned.stderr"),
            elapsed: Duration::from_secs(3),
            screen: None,
        }
    }

    #[test]
    fn report_points_at_the_log() {
        let log: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let report = outcome(Status::Timeout, &log).report("no verdict");
        assert!(report.contains("/nonexistent/canned.log"), "{report}");
        assert!(report.contains("| line 99") && report.contains("| line 60"), "{report}");
        assert!(!report.contains("| line 59\n"), "{report}");
        assert!(report.contains("kernel reported failure"), "{report}");
    }

    #[test]
    fn crash_assertion_rejects_reboots() {
        let log = "double fault: kernel stack overflow\n";
        outcome(Status::KernelFailure, log).assert_crashed_with(&["double fault"]);
        let result = std::panic::catch_unwind(|| {
            outcome(Status::QemuEnded(2), log).assert_crashed_with(&["double fault"]);
        });
        assert!(result.is_err());
        let result = std::panic::catch_unwind(|| {
            outcome(Status::KernelFailure, log).assert_crashed_with(&["page fault"]);
        });
        assert!(result.is_err());
    }

    #[test]
    fn success_status_is_required() {
        outcome(Status::Success, GOOD).assert_all_tests_passed();
        let result = std::panic::catch_unwind(|| outcome(Status::KernelFailure, GOOD).assert_all_tests_passed());
        assert!(result.is_err());
    }
}
