//! Ferrite's boot test harness: boots the real kernel ISO in QEMU under many
//! machine configurations and checks what it prints on the serial console.
//!
//! # Running
//!
//! ```text
//! cargo test -p ferrite-tests                  # every boot test
//! cargo test -p ferrite-tests -- uefi          # only tests whose name has "uefi"
//! make test                                    # checks, unit tests, then these
//! ```
//!
//! The harness needs `make`, `grub-mkrescue`, `qemu-system-x86_64` and OVMF
//! (`make setup` installs them). It runs `make kernel user` itself, once per
//! test binary, and makes one ISO per distinct kernel command line under
//! `build/test-iso/`. At most two QEMUs run at once, however many test
//! threads there are.
//!
//! # Logs
//!
//! Each boot's serial console is saved to `build/test-logs/<test>.log` and
//! QEMU's own messages to `build/test-logs/<test>.stderr`. A failing
//! assertion names the log and quotes its last 40 lines.
//!
//! # Environment
//!
//! - `FERRITE_BOOT_TIMEOUT`: seconds one boot may take before QEMU is killed
//!   and the test fails with [`Status::Timeout`] (default 180).
//! - `ACCEL`: `kvm` boots under KVM; anything else (or nothing) uses TCG.
//!
//! Each test fixes its own firmware, machine, CPU count, memory and CPU
//! model; the same-named variables the Makefile exports (`FIRMWARE`, `SMP`,
//! …) are overridden for every boot.
//!
//! # Writing a test
//!
//! ```no_run
//! use ferrite_tests::{Boot, Firmware, Machine};
//!
//! Boot::new("uefi_q35_256m")
//!     .firmware(Firmware::Uefi)
//!     .machine(Machine::Q35)
//!     .mem("256M")
//!     .cmdline("test=all")
//!     .run()
//!     .assert_all_tests_passed();
//! ```
//!
//! # Talking to the guest
//!
//! [`Boot::converse`] runs a boot through a script of [`Step`]s: wait for
//! a text on serial, type on the serial line or on the keyboard, then
//! wait for the answer (see [`Step`] for how text is matched).
//!
//! ```no_run
//! use ferrite_tests::{Boot, Status, Step};
//!
//! Boot::new("uptime")
//!     .converse(&[
//!         // The prompt on serial: after a line end, not after `[<pid>] `
//!         // as on the console.
//!         Step::expect("\r\nferrite> "),
//!         Step::line("uptime"),
//!         Step::expect("up "),
//!         Step::expect("ferrite> "),
//!         Step::line("poweroff"),
//!     ])
//!     .assert_status(Status::Success);
//! ```

mod artifacts;
mod converse;
mod outcome;
mod screen;
mod smp;
mod supervise;
mod transcript;

pub use artifacts::{build_dir, kernel, root, slug};
pub use converse::{key_names, Step};
pub use outcome::{check_acpi_power_off, check_all_tests_passed, user_line, Outcome, Status, ACPI_OFF_SUCCESS};
pub use smp::{check_cpus_online, cpu_failure_lines, find_smp_report, SmpReport, CPU_FAILURE_MARKERS, SMP_LINE};

use std::fmt::Display;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use screen::Monitor;
use supervise::{supervise, Driver, End, Semaphore};

/// Boot timeout when neither [`Boot::timeout`] nor `FERRITE_BOOT_TIMEOUT`
/// says otherwise: generous for TCG on a small, busy CI machine. A
/// `test=all` boot on 8 CPUs takes 70 s alone on a 2-core host, but beside
/// a 16-CPU boot (two QEMUs run at once) it took more than 180 s: TLB
/// shootdowns wait for virtual CPUs the host is not running. A hang costs
/// this much time; a slow machine must not look like one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(480);

/// QEMUs allowed to run at once (per test process).
const MAX_QEMUS: usize = 2;

/// Which firmware boots the ISO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: GRUB boots from El Torito in legacy mode.
    Bios,
    /// OVMF: GRUB boots as a UEFI application.
    Uefi,
}

/// Which QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// i440FX + PIIX: the old PC.
    Pc,
    /// Q35 + ICH9: PCIe, MCFG, a different ACPI layout.
    Q35,
}

/// One boot of the kernel: a configuration, built with the setters, then
/// [`Boot::run`] or [`Boot::run_until`].
///
/// Defaults: SeaBIOS, q35 (no extra machine options), 1 CPU, 512M, CPU model
/// `max`, empty command line, no extra QEMU arguments, QEMU's debug-exit
/// device present.
#[derive(Debug, Clone)]
pub struct Boot {
    name: String,
    firmware: Firmware,
    machine: Machine,
    machine_opts: Option<String>,
    smp: String,
    mem: String,
    cpu: String,
    cmdline: String,
    qemu_args: Vec<String>,
    serial: String,
    debug_exit: bool,
    read_screen: bool,
    image: artifacts::Image,
    gfxpayload: Option<String>,
    timeout: Option<Duration>,
}

impl Boot {
    /// A boot with the defaults. `name` names the log files, so give each
    /// test its own (conventionally the test function's name).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            firmware: Firmware::Bios,
            machine: Machine::Q35,
            machine_opts: None,
            smp: "1".to_owned(),
            mem: "512M".to_owned(),
            cpu: "max".to_owned(),
            cmdline: String::new(),
            qemu_args: Vec::new(),
            serial: "stdio".to_owned(),
            debug_exit: true,
            read_screen: false,
            image: artifacts::Image::AsBuilt,
            gfxpayload: None,
            timeout: None,
        }
    }

    /// Sets the firmware.
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = firmware;
        self
    }

    /// Sets the QEMU machine type.
    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }

    /// Sets options appended to the machine type in QEMU's `-machine`
    /// argument, verbatim: `machine_opts("acpi=off")` on [`Machine::Pc`]
    /// gives `-machine pc,acpi=off`. Replaces earlier options.
    ///
    /// # Panics
    ///
    /// If `opts` is empty or contains whitespace: QEMU would reject it, and a
    /// typo should fail here rather than as a QEMU error in a boot log.
    pub fn machine_opts(mut self, opts: &str) -> Self {
        assert!(
            !opts.is_empty() && !opts.contains(char::is_whitespace),
            "machine options {opts:?} are empty or contain whitespace"
        );
        self.machine_opts = Some(opts.to_owned());
        self
    }

    /// Sets QEMU's `-smp` value, verbatim: `2`, `"4,maxcpus=8"`,
    /// `"sockets=2,cores=3,threads=2"`.
    pub fn smp(mut self, smp: impl Display) -> Self {
        self.smp = smp.to_string();
        self
    }

    /// Sets the guest memory, as QEMU's `-m` takes it: `"64M"`, `"5G"`.
    pub fn mem(mut self, mem: &str) -> Self {
        self.mem = mem.to_owned();
        self
    }

    /// Sets QEMU's `-cpu` model, e.g. `"qemu64"` (no x2APIC).
    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = cpu.to_owned();
        self
    }

    /// Sets the kernel command line, e.g. `"test=all log=debug"`.
    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.cmdline = cmdline.to_owned();
        self
    }

    /// Appends one extra QEMU argument.
    ///
    /// # Panics
    ///
    /// If `arg` contains whitespace: qemu.sh word-splits `QEMU_ARGS`, so such
    /// an argument could not arrive intact.
    pub fn qemu_arg(mut self, arg: &str) -> Self {
        assert!(
            !arg.is_empty() && !arg.contains(char::is_whitespace),
            "QEMU argument {arg:?} would not survive qemu.sh's word splitting"
        );
        self.qemu_args.push(arg.to_owned());
        self
    }

    /// What COM1, COM2, ... connect to, one QEMU `-serial` value each
    /// (qemu.sh's `SERIAL`; default `stdio`): the harness reads stdout, so
    /// one of them must be `stdio` for it to see the log.
    pub fn serial(mut self, ports: &str) -> Self {
        self.serial = ports.to_owned();
        self
    }

    /// Whether QEMU has the isa-debug-exit device (qemu.sh's `DEBUG_EXIT`;
    /// default yes). Without it the kernel powers off through ACPI S5, as
    /// on a PC, and a power off ends with [`Status::GuestPowerOff`], whose
    /// verdict is only in the log.
    pub fn debug_exit(mut self, present: bool) -> Self {
        self.debug_exit = present;
        self
    }

    /// Boots the kernel with its relocatable header tag asking GRUB to load
    /// it as high as it may (below 1 GiB) instead of at its 2 MiB link
    /// address: what firmware that owns the 2 MiB area makes GRUB do.
    pub fn loaded_high(mut self) -> Self {
        self.image = artifacts::Image::LoadedHigh;
        self
    }

    /// Sets GRUB's `gfxpayload` (e.g. `1024x768x24`, or `text` for no
    /// framebuffer), overriding the mode the kernel's header asks for.
    pub fn gfxpayload(mut self, mode: &str) -> Self {
        self.gfxpayload = Some(mode.to_owned());
        self
    }

    /// Reads the screen back when the guest powers off: QEMU gets a monitor
    /// and `-no-shutdown`, and stops instead of exiting; the harness then
    /// dumps the screen (`build/test-logs/<name>.ppm`), decodes its text
    /// into [`Outcome::screen`] (and `<name>.screen`), and quits QEMU. Only
    /// without the debug-exit device ([`Boot::debug_exit`]), whose write
    /// ends QEMU at once. Works with [`Boot::converse`], keys and all: the
    /// two share the one monitor connection.
    pub fn read_screen(mut self) -> Self {
        self.read_screen = true;
        self
    }

    /// Sets this boot's timeout, overriding `FERRITE_BOOT_TIMEOUT` and
    /// [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Boots until QEMU exits (the kernel powers off, or QEMU dies) or the
    /// timeout passes, and saves the logs.
    ///
    /// # Panics
    ///
    /// If the kernel or the ISO cannot be built, or qemu.sh cannot be run:
    /// those are failures of the setup, not outcomes of a boot.
    pub fn run(&self) -> Outcome {
        self.boot(None, None).0
    }

    /// Like [`Boot::run`], but stops QEMU as soon as a serial line contains
    /// `pattern`, with [`Status::PatternFound`]. For boots that never power
    /// off; if the pattern never appears the status is whatever ended the
    /// boot (often [`Status::Timeout`]).
    pub fn run_until(&self, pattern: &str) -> Outcome {
        self.boot(Some(pattern), None).0
    }

    /// Boots and holds a conversation with the guest: carries out `steps`
    /// in order (see [`Step`]), then waits for QEMU to exit, as [`Boot::run`]
    /// does: the last step should make the guest power off (`poweroff`).
    /// QEMU's serial input is a pipe the steps write to (for other boots it
    /// is `/dev/null`); the boot's timeout bounds the whole conversation.
    ///
    /// # Panics
    ///
    /// If a step fails: with a message naming the step, the output after
    /// the last match, and the end of the log (saved as for every boot).
    /// The status is then the boot's own if QEMU had ended (a kernel panic
    /// gives [`Status::KernelFailure`]), else [`Status::StepFailed`].
    /// Also as [`Boot::run`].
    #[track_caller]
    pub fn converse(&self, steps: &[Step]) -> Outcome {
        match self.boot(None, Some(steps)) {
            (outcome, Some(Err(failure))) => outcome.fail(&failure),
            (outcome, _) => outcome,
        }
    }

    /// One boot; with `steps`, also what the conversation came to.
    fn boot(&self, pattern: Option<&str>, steps: Option<&[Step]>) -> (Outcome, Option<Result<(), String>>) {
        let iso = artifacts::iso_of(self.image, self.gfxpayload.as_deref(), &self.cmdline);
        let timeout = self.timeout.unwrap_or_else(env_timeout);
        let script = root().join("scripts/qemu.sh");
        assert!(!(self.read_screen && self.debug_exit), "read_screen needs debug_exit(false)");
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .env("ISO", &iso)
            .env("SMP", &self.smp)
            .env("MEM", &self.mem)
            .env("MACHINE", self.machine_arg())
            .env("FIRMWARE", self.firmware_name())
            .env("CPU", &self.cpu)
            .env(
                "QEMU_ARGS",
                self.qemu_args
                    .iter()
                    .map(String::as_str)
                    .chain(self.read_screen.then_some("-no-shutdown"))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .env("SERIAL", &self.serial)
            .env("DEBUG_EXIT", if self.debug_exit { "yes" } else { "no" })
            // KVM only when asked for: TCG behaves the same everywhere,
            // KVM needs a working /dev/kvm.
            .env("ACCEL", if std::env::var("ACCEL").as_deref() == Ok("kvm") { "kvm" } else { "tcg" });

        // Held for the whole boot: the timeout should measure the boot, not
        // the wait for a slot.
        static QEMUS: Semaphore = Semaphore::new(MAX_QEMUS);
        let _permit = QEMUS.acquire();
        let started = Instant::now();
        let deadline = started + timeout;
        let keys = steps.is_some_and(|steps| steps.iter().any(Step::uses_monitor));
        let monitor = (self.read_screen || keys).then(|| {
            let socket = screen::socket_path(&slug_name(&self.name));
            let _ = std::fs::remove_file(&socket);
            command.env("MONITOR", &socket);
            Arc::new(Monitor::new(socket, deadline))
        });
        let watcher = monitor.clone().filter(|_| self.read_screen).map(|monitor| {
            let ppm = build_dir().join("test-logs").join(format!("{}.ppm", slug_name(&self.name)));
            let _ = std::fs::create_dir_all(build_dir().join("test-logs"));
            std::thread::spawn(move || screen::watch(&monitor, &ppm, deadline))
        });
        let driver = steps.map(|steps| -> Driver<'_> {
            let monitor = monitor.clone();
            Box::new(move |transcript, input| converse::drive(steps, transcript, input, monitor.as_deref(), deadline))
        });
        let run = supervise(command, pattern, driver, timeout)
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let elapsed = started.elapsed();
        if let Some(monitor) = &monitor {
            monitor.close();
        }
        let screen = watcher.map(|w| w.join().unwrap_or_else(|_| Err("the screen reader panicked".into())));
        if let Some(monitor) = &monitor {
            let _ = std::fs::remove_file(monitor.socket());
        }
        if let Some(text) = &screen {
            let path = build_dir().join("test-logs").join(format!("{}.screen", slug_name(&self.name)));
            let _ =
                std::fs::write(path, text.as_ref().map_or_else(|e| format!("(no screen: {e})\n"), |t| t.join("\n")));
        }

        let status = match run.end {
            End::PatternFound => Status::PatternFound,
            End::TimedOut => Status::Timeout,
            End::DriverFailed => Status::StepFailed,
            End::Exited(exit) => outcome::status_of(exit),
        };
        let (log_path, stderr_path) = self.save_logs(&run.stdout, &run.stderr);
        let mut stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        if status == Status::Timeout {
            // Say it where the failure report will show it.
            stderr.push_str(&format!("harness: killed QEMU after the {timeout:?} timeout\n"));
        }
        let outcome = Outcome {
            name: self.name.clone(),
            status,
            log: String::from_utf8_lossy(&run.stdout).into_owned(),
            stderr,
            log_path,
            stderr_path,
            elapsed,
            screen,
        };
        (outcome, run.driver)
    }

    /// The `-machine` value: the type, then any [`Boot::machine_opts`]
    /// (qemu.sh passes `MACHINE` through verbatim and quoted).
    fn machine_arg(&self) -> String {
        let name = match self.machine {
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
        };
        match &self.machine_opts {
            None => name.to_owned(),
            Some(opts) => format!("{name},{opts}"),
        }
    }

    fn firmware_name(&self) -> &'static str {
        match self.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    /// Writes `build/test-logs/<name>.log` and `.stderr`; returns their
    /// paths. A failure to write is reported but does not fail the boot,
    /// whose outcome is still in memory.
    fn save_logs(&self, stdout: &[u8], stderr: &[u8]) -> (PathBuf, PathBuf) {
        let dir = build_dir().join("test-logs");
        let file = slug_name(&self.name);
        let log_path = dir.join(format!("{file}.log"));
        let stderr_path = dir.join(format!("{file}.stderr"));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&log_path, stdout))
            .and_then(|()| std::fs::write(&stderr_path, stderr));
        if let Err(e) = written {
            eprintln!("warning: cannot save the logs of `{}` in {}: {e}", self.name, dir.display());
        }
        (log_path, stderr_path)
    }
}

/// The timeout from `FERRITE_BOOT_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
///
/// # Panics
///
/// If the variable is set but is not a positive whole number of seconds: a
/// typo should not silently fall back to the default.
fn env_timeout() -> Duration {
    match std::env::var("FERRITE_BOOT_TIMEOUT") {
        Err(_) => DEFAULT_TIMEOUT,
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => panic!("FERRITE_BOOT_TIMEOUT={text:?} is not a positive number of seconds"),
        },
    }
}

/// A test name made safe as a file name. Test names are Rust identifiers
/// already; this only guards against a stray `/` or space.
fn slug_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_settings() {
        let boot = Boot::new("x").smp("4,maxcpus=8").mem("5G").cpu("qemu64").qemu_arg("-s");
        assert_eq!((boot.smp.as_str(), boot.mem.as_str()), ("4,maxcpus=8", "5G"));
        assert_eq!(Boot::new("x").smp(2).smp, "2");
        assert_eq!(boot.qemu_args, ["-s"]);
        assert_eq!(boot.machine_arg(), "q35");
        assert!(boot.debug_exit && !boot.clone().debug_exit(false).debug_exit);
        let boot = Boot::new("x").machine(Machine::Pc).machine_opts("acpi=off");
        assert_eq!(boot.machine_arg(), "pc,acpi=off");
    }

    #[test]
    #[should_panic(expected = "whitespace")]
    fn machine_opts_with_spaces_are_refused() {
        let _ = Boot::new("x").machine_opts("acpi=off, smm=off");
    }

    #[test]
    #[should_panic(expected = "word splitting")]
    fn qemu_args_with_spaces_are_refused() {
        let _ = Boot::new("x").qemu_arg("-name a b");
    }

    #[test]
    fn log_names_are_safe() {
        assert_eq!(slug_name("bios_pc_64m"), "bios_pc_64m");
        assert_eq!(slug_name("a/b c"), "a_b_c");
    }
}
