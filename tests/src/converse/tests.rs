use super::*;
use crate::supervise::{supervise, Driver, End};
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// A transcript that has already received `text`, and has ended.
fn ended(text: &str) -> Transcript {
    let transcript = Transcript::new();
    transcript.push(text.as_bytes());
    transcript.close();
    transcript
}

#[test]
fn keys_are_named_as_qemu_names_them() {
    let names = key_names("Up 1.5 s\n\x08-_:").unwrap();
    let expected = [
        "shift-u",
        "p",
        "spc",
        "1",
        "dot",
        "5",
        "spc",
        "s",
        "ret",
        "backspace",
        "minus",
        "shift-minus",
        "shift-semicolon",
    ];
    assert_eq!(names, expected);
    assert_eq!(key_names("a!?"), Ok(vec!["a".into(), "shift-1".into(), "shift-slash".into()]));
    assert_eq!(key_names("é"), Err('é'));
    assert_eq!(key_names("\x1b"), Err('\x1b'));
}

#[test]
#[should_panic(expected = "no key types")]
fn untypable_text_is_refused() {
    let _ = Step::type_keys("caf\u{e9}");
}

#[test]
#[should_panic(expected = "only an expect step waits")]
fn only_expect_steps_have_a_limit() {
    let _ = Step::line("ps").within(Duration::from_secs(1));
}

#[test]
fn steps_follow_the_cursor() {
    let transcript = ended("ferrite> ps\r\n    2      1 kbd\r\nferrite> ");
    let mut input = Vec::new();
    let steps = [
        Step::expect("ferrite> "),
        Step::line("ps"),
        Step::expect(" kbd"),
        // Sees the output up to the end of " kbd", not the prompt after it.
        Step::send_with(|seen| {
            assert!(seen.ends_with(" kbd"), "{seen:?}");
            let pid = seen.lines().last().and_then(|l| l.split_whitespace().next()).ok_or("no pid")?;
            Ok(format!("kill {pid}\r"))
        }),
        Step::check("the listing", |seen| if seen.contains("ps\r\n") { Ok(()) } else { Err("no ps".into()) }),
        Step::expect("ferrite> "),
    ];
    drive(&steps, &transcript, &mut input, None, soon()).unwrap();
    assert_eq!(input, b"ps\rkill 2\r");
}

#[test]
fn a_text_matched_once_does_not_match_again() {
    let transcript = ended("ferrite> help\r\n");
    let steps = [Step::expect("ferrite> "), Step::line("help"), Step::expect("ferrite> ")];
    let e = drive(&steps, &transcript, &mut Vec::new(), None, soon()).unwrap_err();
    assert!(e.starts_with("conversation step 3 of 3 (expect \"ferrite> \") failed: the output ended"), "{e}");
    assert!(e.contains("after step 1's match (expect \"ferrite> \")"), "{e}");
    assert!(e.contains("| help"), "the output after the cursor is quoted: {e}");
}

#[test]
fn expect_all_takes_any_order() {
    let transcript = ended("[2] kbd: up\r\n[3] serial: up\r\nferrite> ps\r\n");
    let steps = [
        Step::expect_all(&["serial: up", "kbd: up"]),
        Step::check("cursor", |seen| {
            if seen.ends_with("serial: up") {
                Ok(())
            } else {
                Err(format!("cursor at the end of {seen:?}"))
            }
        }),
    ];
    drive(&steps, &transcript, &mut Vec::new(), None, soon()).unwrap();
    // Each must come after the cursor, wherever the others are.
    let steps = [Step::expect("serial: up"), Step::expect_all(&["ferrite> ", "kbd: up"])];
    let e = drive(&steps, &transcript, &mut Vec::new(), None, soon()).unwrap_err();
    assert!(e.contains("(expect all of [\"ferrite> \", \"kbd: up\"]) failed: \"kbd: up\": the output ended"), "{e}");
}

#[test]
fn a_step_that_waits_too_long_fails_in_time() {
    let transcript = Transcript::new();
    transcript.push(b"booting\n");
    let steps = [Step::expect("ferrite> ").within(Duration::from_millis(100))];
    let started = Instant::now();
    let e = drive(&steps, &transcript, &mut Vec::new(), None, Instant::now() + Duration::from_secs(60)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(e.contains("step 1 of 1 (expect \"ferrite> \" within 100ms) failed: not seen in time"), "{e}");
    assert!(e.contains("after the start") && e.contains("| booting"), "{e}");
    // Without a limit of its own, the boot's deadline bounds it.
    let e = drive(&[Step::expect("x")], &transcript, &mut Vec::new(), None, Instant::now()).unwrap_err();
    assert!(e.contains("not seen before the boot's timeout"), "{e}");
}

#[test]
fn closures_can_fail_a_step() {
    let transcript = ended("ferrite> ");
    let steps = [Step::expect("> "), Step::send_with(|_| Err("no kbd in the listing".into()))];
    let e = drive(&steps, &transcript, &mut Vec::new(), None, soon()).unwrap_err();
    assert!(e.contains("step 2 of 2 (send a computed input) failed: no kbd in the listing"), "{e}");
    assert!(e.contains("(no output after step 1's match"), "{e}");
    let steps = [Step::check("ps", |_| Err("no init".into()))];
    let e = drive(&steps, &transcript, &mut Vec::new(), None, soon()).unwrap_err();
    assert!(e.contains("(check ps) failed: no init"), "{e}");
    let e = drive(&[Step::keys(&["a"])], &transcript, &mut Vec::new(), None, soon()).unwrap_err();
    assert!(e.contains("keys need QEMU's monitor"), "{e}");
}

/// A child that talks like the shell: a prompt without a newline, an
/// answer per line, and an exit of its own after the last one.
#[test]
fn a_conversation_with_a_real_child() {
    let mut command = Command::new("bash");
    command.args(["-c", "printf 'sh> '; read -r a; echo \"you said $a\"; printf 'sh> '; read -r b; exit 7"]);
    let steps = [
        Step::expect("sh> "),
        Step::send("hello\n"),
        Step::expect("you said hello"),
        Step::expect("sh> "),
        Step::send("bye\n"),
    ];
    let driver: Driver =
        Box::new(|transcript, input| drive(&steps, transcript, input, None, Instant::now() + Duration::from_secs(60)));
    let run = supervise(command, None, Some(driver), Duration::from_secs(60)).unwrap();
    assert!(matches!(run.end, End::Exited(s) if s.code() == Some(7)), "{:?}", run.end);
    assert_eq!(run.driver, Some(Ok(())));
    assert_eq!(run.stdout, b"sh> you said hello\nsh> ");
}

/// A failed step stops a child that would otherwise run on.
#[test]
fn a_failed_step_stops_the_child() {
    let mut command = Command::new("bash");
    command.args(["-c", "sleep 600 & printf 'sh> '; sleep 600"]);
    let steps = [Step::expect("sh> "), Step::expect("never").within(Duration::from_millis(200))];
    let driver: Driver =
        Box::new(|transcript, input| drive(&steps, transcript, input, None, Instant::now() + Duration::from_secs(60)));
    let started = Instant::now();
    let run = supervise(command, None, Some(driver), Duration::from_secs(60)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run.end, End::DriverFailed);
    assert!(run.driver.unwrap().unwrap_err().contains("step 2 of 2"));
}

/// A child that ends mid-conversation keeps its own exit status.
#[test]
fn a_child_that_dies_reports_its_status() {
    let mut command = Command::new("bash");
    command.args(["-c", "printf 'PANIC\\n'; exit 1"]);
    let steps = [Step::expect("sh> ")];
    let driver: Driver =
        Box::new(|transcript, input| drive(&steps, transcript, input, None, Instant::now() + Duration::from_secs(60)));
    let run = supervise(command, None, Some(driver), Duration::from_secs(60)).unwrap();
    assert!(matches!(run.end, End::Exited(s) if s.code() == Some(1)), "{:?}", run.end);
    assert!(run.driver.unwrap().unwrap_err().contains("the output ended"));
}

/// A stand-in for QEMU's human monitor: a banner, then for each command
/// its echo and a prompt; `sendkey nosuchkey` gets a complaint. Returns
/// the socket and the commands it received.
fn fake_monitor(name: &str) -> (std::path::PathBuf, Arc<Mutex<Vec<String>>>) {
    let socket = std::env::temp_dir().join(format!("ferrite-{}-{name}.mon", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"QEMU 10.0.2 monitor - type 'help' for more information\r\n(qemu) ").unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let command = line.trim_end().to_owned();
            let answer = if command == "sendkey nosuchkey" { "invalid parameter value: nosuchkey\r\n" } else { "" };
            // QEMU echoes with line-editing escapes.
            write!(stream, "{command}\x1b[K\r\n{answer}(qemu) ").unwrap();
            log.lock().unwrap().push(command);
            line.clear();
        }
    });
    (socket, received)
}

#[test]
fn keys_go_to_the_monitor_one_by_one() {
    let (socket, received) = fake_monitor("keys");
    let monitor = Monitor::new(socket.clone(), soon());
    let transcript = ended("ferrite> ");
    let steps = [Step::expect("ferrite> "), Step::type_keys("Ps\n"), Step::keys(&["backspace"])];
    drive(&steps, &transcript, &mut Vec::new(), Some(&monitor), soon()).unwrap();
    assert_eq!(*received.lock().unwrap(), ["sendkey shift-p", "sendkey s", "sendkey ret", "sendkey backspace"]);
    let e = drive(&[Step::keys(&["nosuchkey"])], &transcript, &mut Vec::new(), Some(&monitor), soon()).unwrap_err();
    assert!(e.contains("`sendkey nosuchkey`: the monitor says \"invalid parameter value: nosuchkey\""), "{e}");
    let _ = std::fs::remove_file(socket);
}
