//! The kernel's SMP bring-up report, as its log shows it.
//!
//! The contract: every boot logs exactly one line containing
//! `smp: <online> of <present> CPUs online in <microseconds> us`, where
//! `present` counts the usable CPUs of the ACPI MADT (whatever `smp=` or
//! `nosmp` say) and `online` those running after bring-up. A CPU that fails
//! to start gets a line of its own containing `not responding` or `stuck`.

use crate::outcome::Outcome;

/// The boot line's shape, for failure messages.
pub const SMP_LINE: &str = "smp: <online> of <present> CPUs online in <microseconds> us";

/// What the kernel logs for a CPU that did not start. ` stuck` has its space
/// so that a word merely ending in "stuck" does not count.
pub const CPU_FAILURE_MARKERS: [&str; 2] = ["not responding", " stuck"];

/// The numbers of the boot line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpReport {
    /// CPUs running after bring-up, the boot CPU included.
    pub online: u32,
    /// Usable CPUs in the MADT.
    pub present: u32,
    /// How long bring-up took, in microseconds.
    pub micros: u64,
}

/// The boot line's numbers, or why there are none: no such line, more than
/// one, or one that names itself (`CPUs online`, or `smp: ` and a digit) but
/// does not parse, as when another CPU's output is spliced into it.
pub fn find_smp_report(log: &str) -> Result<SmpReport, String> {
    let candidates: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).filter(|l| is_candidate(l)).collect();
    match candidates.as_slice() {
        [] => Err(format!("no line containing `{SMP_LINE}` (did SMP bring-up run and finish?)")),
        [line] => parse_smp_line(line).ok_or_else(|| format!("the SMP line is not `{SMP_LINE}`: {line:?}")),
        many => Err(format!("expected one `{SMP_LINE}` line, found {}:\n    {}", many.len(), many.join("\n    "))),
    }
}

/// The log's lines that report a CPU failing to start.
pub fn cpu_failure_lines(log: &str) -> Vec<&str> {
    log.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| CPU_FAILURE_MARKERS.iter().any(|m| l.contains(m)))
        .collect()
}

/// Checks that the log has exactly one boot line, saying `online` of
/// `present`, and no line about a CPU that failed to start. Returns the
/// line's numbers, or every problem found, one per line.
pub fn check_cpus_online(log: &str, online: u32, present: u32) -> Result<SmpReport, String> {
    let mut problems = Vec::new();
    let report = find_smp_report(log);
    match &report {
        Err(e) => problems.push(e.clone()),
        Ok(r) if (r.online, r.present) != (online, present) => problems
            .push(format!("expected {online} of {present} CPUs online, the kernel says {} of {}", r.online, r.present)),
        Ok(_) => {}
    }
    let failures = cpu_failure_lines(log);
    if !failures.is_empty() {
        problems.push(format!("CPUs failed to start:\n    {}", failures.join("\n    ")));
    }
    match report {
        Ok(r) if problems.is_empty() => Ok(r),
        _ => Err(problems.join("\n")),
    }
}

impl Outcome {
    /// Asserts [`check_cpus_online`] on this boot's log (whatever its
    /// status); returns the boot line's numbers.
    #[track_caller]
    pub fn assert_cpus_online(&self, online: u32, present: u32) -> SmpReport {
        check_cpus_online(&self.log, online, present).unwrap_or_else(|e| self.fail(&e))
    }
}

/// Whether a line claims to be the boot line, parsable or not.
fn is_candidate(line: &str) -> bool {
    line.contains("CPUs online")
        || line.match_indices("smp: ").any(|(i, m)| line[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The numbers of a line containing `smp: <n> of <n> CPUs online in <n> us`
/// (the phrase must end there or at a non-alphanumeric character).
fn parse_smp_line(line: &str) -> Option<SmpReport> {
    line.match_indices("smp: ").find_map(|(i, m)| {
        let rest = &line[i + m.len()..];
        let (online, rest) = number(rest)?;
        let rest = rest.strip_prefix(" of ")?;
        let (present, rest) = number(rest)?;
        let rest = rest.strip_prefix(" CPUs online in ")?;
        let (micros, rest) = number(rest)?;
        let rest = rest.strip_prefix(" us")?;
        if rest.starts_with(|c: char| c.is_alphanumeric()) {
            return None;
        }
        Some(SmpReport { online: u32::try_from(online).ok()?, present: u32::try_from(present).ok()?, micros })
    })
}

/// A leading decimal number and the text after it.
fn number(text: &str) -> Option<(u64, &str)> {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    Some((text[..end].parse().ok()?, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT_LINE: &str = "[    0.123456] cpu0 INFO  smp: 4 of 4 CPUs online in 5321 us";

    #[test]
    fn parses_the_contract_line() {
        let log = format!("[    0.000100] cpu0 INFO  boot: x\r\n{BOOT_LINE}\r\ntest smp::ipi ... ok\r\n");
        assert_eq!(find_smp_report(&log), Ok(SmpReport { online: 4, present: 4, micros: 5321 }));
        assert_eq!(check_cpus_online(&log, 4, 4).map(|r| r.micros), Ok(5321));
        let limited = "[    1.0] cpu0 INFO  smp: 2 of 12 CPUs online in 0 us (smp=2)";
        assert_eq!(parse_smp_line(limited), Some(SmpReport { online: 2, present: 12, micros: 0 }));
    }

    #[test]
    fn a_missing_line_is_named() {
        let e = find_smp_report("[ 0.1] cpu0 INFO  boot: done\ntest smp::ipi ... ok\n").unwrap_err();
        assert!(e.starts_with("no line containing `smp: <online>"), "{e}");
    }

    #[test]
    fn two_lines_are_one_too_many() {
        let log = format!("{BOOT_LINE}\n{BOOT_LINE}\n");
        let e = find_smp_report(&log).unwrap_err();
        assert!(e.contains("found 2"), "{e}");
    }

    #[test]
    fn malformed_lines_are_quoted() {
        for line in [
            "[ 0.1] cpu0 INFO  smp: 4 of [ 0.1] cpu2 INFO x 4 CPUs online in 5 us",
            "[ 0.1] cpu0 INFO  smp: 4 of 4 CPUs online in 5 ms",
            "[ 0.1] cpu0 INFO  smp: 4 of 4 CPUs online in us",
            "[ 0.1] cpu0 INFO  smp: 4 of 4 CPUs online in 5 usec",
            "[ 0.1] cpu0 INFO  smp: 4/4 CPUs online",
            "[ 0.1] cpu0 INFO  smp: 99999999999 of 4 CPUs online in 5 us",
        ] {
            let e = find_smp_report(line).unwrap_err();
            assert!(e.contains("is not `smp:") && e.contains(line), "{line}: {e}");
        }
    }

    #[test]
    fn other_smp_lines_are_not_the_boot_line() {
        let log = format!("[ 0.1] cpu0 INFO  smp: starting CPU 1\ntest smp::counter ... ok\n{BOOT_LINE}\n");
        assert_eq!(find_smp_report(&log).map(|r| r.online), Ok(4));
    }

    #[test]
    fn wrong_counts_and_dead_cpus_are_reported_together() {
        let log = format!("[ 0.1] cpu0 ERROR smp: CPU with APIC ID 3 not responding\n{BOOT_LINE}\n");
        let e = check_cpus_online(&log, 4, 4).unwrap_err();
        assert!(e.contains("APIC ID 3 not responding") && !e.contains("expected 4"), "{e}");
        let e = check_cpus_online(&log, 2, 4).unwrap_err();
        assert!(e.contains("expected 2 of 4 CPUs online, the kernel says 4 of 4"), "{e}");
        assert!(e.contains("APIC ID 3 not responding"), "{e}");
        assert_eq!(cpu_failure_lines("cpu2 stuck in real mode\nunstuck\n"), ["cpu2 stuck in real mode"]);
    }
}
