//! Serial ports beyond COM1: a PC whose only port is COM2, and a console
//! moved by `console=ttyS<n>`. The harness reads QEMU's stdout, which is
//! whichever port `Boot::serial` wires to `stdio`.

use ferrite_tests::Boot;

/// No COM1 at all, COM2 on stdout: the kernel finds COM2 by itself, and
/// the whole log, from its first line, arrives there.
#[test]
fn com2_only() {
    let outcome = Boot::new("serial_com2_only").serial("none stdio").cmdline("test=apic").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&["cmdline: 'test=apic'", "console: serial ports: ttyS1; the console is on ttyS1"]);
}

/// COM1 exists but leads nowhere (`null`), COM2 is on stdout: only a
/// kernel that obeys `console=ttyS1` is heard, from its first line.
#[test]
fn console_on_ttys1() {
    let outcome = Boot::new("serial_console_on_ttys1").serial("null stdio").cmdline("console=ttyS1 test=apic").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&["cmdline: 'console=ttyS1 test=apic'", "the console is on ttyS1"]);
}

/// `console=` naming a port that is not there keeps the one found.
#[test]
fn console_on_a_missing_port() {
    let outcome = Boot::new("serial_console_missing").cmdline("console=ttyS3 test=apic").run();
    outcome.assert_all_tests_passed();
    outcome.assert_contains_all(&["console: ttyS3 (named by console=) does not answer", "the console is on ttyS0"]);
}
