//! Device rights: resources, I/O ports, interrupt lines, power and kill.
//!
//! Cases named `dev_*` start, as init does, with the root resources
//! (`ferrite_abi::root`); every other case starts without them, so that
//! `fault_ioport` shows that a process without a port handle cannot touch
//! a port. The device they use is the CMOS real-time clock: its index and
//! data ports (0x70, 0x71) and its interrupt (ISA IRQ 8, edge-triggered),
//! which every PC and QEMU machine has and which the kernel leaves alone
//! once it is booted.

use alloc::format;
use alloc::string::String;

use ferrite_abi::{resource, rights, root, CpuInfo, Error, ProcessInfo, EXIT_KILLED, POWER_OFF};
use ferrite_user::port::{inb, inw, outb, outw};
use ferrite_user::sys;

use crate::harness::{spawn_checked, Ctx, Outcome, Watchdog};

/// The RTC's index and data ports.
const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;
/// Its status registers: A (rate), B (interrupt enables), C (what fired;
/// reading it lets the line rise again).
const STATUS_A: u8 = 0x0a;
const STATUS_B: u8 = 0x0b;
const STATUS_C: u8 = 0x0c;
/// Status B: periodic interrupt enable.
const PERIODIC: u8 = 1 << 6;
/// The RTC's interrupt line.
const RTC_IRQ: u64 = 8;
/// Interrupts the interrupt case waits for.
const RTC_INTERRUPTS: u64 = 5;

fn cmos_read(reg: u8) -> u8 {
    outb(CMOS_INDEX, reg);
    inb(CMOS_DATA)
}

fn cmos_write(reg: u8, value: u8) {
    outb(CMOS_INDEX, reg);
    outb(CMOS_DATA, value);
}

/// The RTC's two ports, enabled for this process.
fn enable_cmos() -> Result<(), String> {
    let ports = sys::resource_narrow(root::PORTS, u64::from(CMOS_INDEX), 2).ctx("narrow to the RTC's ports")?;
    sys::ioport_enable(ports).ctx("ioport_enable")?;
    sys::handle_close(ports).ctx("close the port handle")
}

/// The root resources: their kinds and ranges, narrowing inside and only
/// inside them, and the rights each call checks.
pub fn dev_resources(_args: &str) -> Outcome {
    let expected = [
        (root::IRQ, [resource::IRQ, 0, 16]),
        (root::PORTS, [resource::PORTS, 0, 65536]),
        (root::DEVICE_MEMORY, [resource::DEVICE_MEMORY, 0, 1 << 52]),
        (root::SYSTEM, [resource::SYSTEM, 0, 0]),
    ];
    for (handle, info) in expected {
        check_eq!(sys::resource_info(handle), Ok(info), "resource_info({handle})");
        check_eq!(sys::handle_rights(handle), Ok(rights::RESOURCE), "the rights of root handle {handle}");
    }
    let ports = sys::resource_narrow(root::PORTS, 0x3f8, 8).ctx("narrow to COM1's ports")?;
    check_eq!(sys::resource_info(ports), Ok([resource::PORTS, 0x3f8, 8]), "the narrowed range");
    check_eq!(sys::handle_rights(ports), Ok(rights::RESOURCE), "the narrowed handle's rights");
    for (base, len) in [(0x3f0, 8), (0x3f8, 9), (0x3f9, 8), (0x3f8, 0), (u64::MAX, 2), (0x3fa, u64::MAX)] {
        check_eq!(sys::resource_narrow(ports, base, len), Err(Error::BadArgument), "narrow({base:#x}, {len:#x})");
    }
    check_eq!(sys::resource_narrow(root::PORTS, 65535, 2), Err(Error::BadArgument), "ports past 65535");
    check_eq!(sys::resource_narrow(root::IRQ, 16, 1), Err(Error::BadArgument), "IRQ 16");
    check_eq!(sys::resource_narrow(root::SYSTEM, 0, 1), Err(Error::BadArgument), "a range of the machine");
    let system = sys::resource_narrow(root::SYSTEM, 0, 0).ctx("narrow the machine to itself")?;
    check_eq!(sys::resource_info(system), Ok([resource::SYSTEM, 0, 0]), "the machine's copy");
    // The wrong kind of handle, or of resource, or a handle without USE.
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    check_eq!(sys::resource_info(endpoint), Err(Error::BadHandle), "resource_info(endpoint)");
    check_eq!(sys::resource_narrow(endpoint, 0, 1), Err(Error::BadHandle), "resource_narrow(endpoint)");
    // Ports the kernel drives itself: the PICs, the PIT, the debug exit
    // (whose write would end a test run with a verdict of the caller's),
    // and all of them at once.
    for (base, len) in [(0x20, 2), (0xa1, 1), (0x43, 1), (0xf4, 1), (0x3e, 4)] {
        let kernels = sys::resource_narrow(root::PORTS, base, len).ctx("narrow")?;
        check_eq!(sys::ioport_enable(kernels), Err(Error::Busy), "ioport_enable({base:#x}, {len})");
        sys::handle_close(kernels).ctx("close")?;
    }
    check_eq!(sys::ioport_enable(root::PORTS), Err(Error::Busy), "ioport_enable of every port");
    check_eq!(sys::ioport_enable(root::IRQ), Err(Error::BadHandle), "ioport_enable(IRQ resource)");
    check_eq!(sys::ioport_enable(endpoint), Err(Error::BadHandle), "ioport_enable(endpoint)");
    let no_use = sys::handle_derive(ports, rights::TRANSFER).ctx("derive without USE")?;
    check_eq!(sys::ioport_enable(no_use), Err(Error::NoRights), "ioport_enable without USE");
    check_eq!(
        sys::resource_narrow(no_use, 0x3f8, 1).and_then(sys::handle_rights),
        Ok(rights::TRANSFER),
        "narrowing keeps the rights"
    );
    check_eq!(sys::handle_derive(ports, rights::ALL), Err(Error::NoRights), "more rights than held");
    for h in [ports, system, endpoint, no_use] {
        sys::handle_close(h).ctx("close")?;
    }
    Ok(String::from("4 root resources, narrowing and rights checked"))
}

/// `power` needs the machine's resource with USE; bad actions are refused
/// with it. (No case may power off or reset for real.)
pub fn dev_power_bad_action(_args: &str) -> Outcome {
    for action in [2, 3, 1 << 32, u64::MAX] {
        check_eq!(sys::power(root::SYSTEM, action), Err(Error::BadArgument), "power({action:#x})");
    }
    check_eq!(sys::power(root::PORTS, POWER_OFF), Err(Error::BadHandle), "power with the port resource");
    check_eq!(sys::power(9999, POWER_OFF), Err(Error::BadHandle), "power with no handle");
    let no_use = sys::handle_derive(root::SYSTEM, rights::TRANSFER).ctx("derive without USE")?;
    check_eq!(sys::power(no_use, POWER_OFF), Err(Error::NoRights), "power without USE");
    Ok(String::from("refused: 4 bad actions, the wrong handles, no right"))
}

/// Ports enabled through a narrowed handle work, on this thread at once
/// and on a thread on another CPU.
pub fn dev_ports(_args: &str) -> Outcome {
    enable_cmos()?;
    let a = cmos_read(STATUS_A);
    // Bits 0-3 of status A are the rate, bits 4-6 the divider: QEMU and PCs
    // run the RTC with the divider 010 (32.768 kHz).
    check_eq!(a & 0x70, 0x20, "the RTC's divider in status A ({a:#x})");
    let cpus = sys::cpu_count().ctx("cpu_count")?;
    let other = spawn_checked(move || {
        sys::set_affinity(cpus - 1).ctx("set_affinity")?;
        Ok(u64::from(cmos_read(STATUS_A)))
    })
    .ctx("spawn")?;
    check_eq!(other.join(), Ok(u64::from(a)), "status A read from cpu{}", cpus - 1);
    Ok(format!("the RTC's ports work here and on cpu{}", cpus - 1))
}

/// A port next to the enabled ones still faults: the case must be killed.
pub fn dev_ports_outside(_args: &str) -> Outcome {
    enable_cmos()?;
    let _ = cmos_read(STATUS_A);
    let _ = inb(CMOS_DATA + 1);
    fail!("port {:#x}, outside the enabled range, did not fault", CMOS_DATA + 1)
}

/// A process without port handles: `in` faults (the case must be killed).
pub fn fault_ioport(_args: &str) -> Outcome {
    let _ = inb(CMOS_DATA);
    fail!("in from port {CMOS_DATA:#x} without a port handle did not fault")
}

/// The RTC's periodic interrupt, bound to a notification: it signals the
/// bits, again after each acknowledgement; a second binding is refused;
/// closing the handle unbinds the line, which can then be bound again.
pub fn dev_irq(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    enable_cmos()?;
    let line = sys::resource_narrow(root::IRQ, RTC_IRQ, 1).ctx("narrow to IRQ 8")?;
    let notification = sys::notification_create().ctx("notification_create")?;
    const BIT: u64 = 1 << 5;
    check_eq!(sys::irq_bind(line, notification, 0), Err(Error::BadArgument), "irq_bind with no bits");
    check_eq!(sys::irq_bind(root::IRQ, notification, BIT), Err(Error::BadArgument), "irq_bind of 16 lines");
    let wait_only = sys::handle_derive(notification, rights::WAIT).ctx("derive")?;
    check_eq!(sys::irq_bind(line, wait_only, BIT), Err(Error::NoRights), "irq_bind to a notification without SIGNAL");
    check_eq!(sys::irq_bind(root::PORTS, notification, BIT), Err(Error::BadHandle), "irq_bind of a port resource");
    let irq = sys::irq_bind(line, notification, BIT).ctx("irq_bind")?;
    check_eq!(sys::irq_bind(line, notification, BIT), Err(Error::Busy), "a second binding of IRQ 8");
    check_eq!(sys::irq_ack(notification), Err(Error::BadHandle), "irq_ack of a notification");
    // Start the periodic interrupt (1024 Hz at the default rate).
    let _ = cmos_read(STATUS_C);
    let b = cmos_read(STATUS_B);
    cmos_write(STATUS_B, b | PERIODIC);
    let mut seen = 0;
    let result = (|| {
        for _ in 0..RTC_INTERRUPTS {
            let bits = sys::notify_wait(notification).ctx("notify_wait")?;
            check_eq!(bits, BIT, "the bits signalled");
            let _ = cmos_read(STATUS_C);
            sys::irq_ack(irq).ctx("irq_ack")?;
            seen += 1;
        }
        Ok(())
    })();
    cmos_write(STATUS_B, b & !PERIODIC);
    let _ = cmos_read(STATUS_C);
    result?;
    sys::handle_close(irq).ctx("close the interrupt handle")?;
    let again = sys::irq_bind(line, notification, BIT).ctx("bind IRQ 8 again after the close")?;
    sys::handle_close(again).ctx("close it")?;
    Ok(format!("{seen} RTC interrupts signalled and acknowledged; rebinding refused, then allowed after the close"))
}

/// `dev_irq_shared_input alias=<irq> owner=<irq>`: ISA IRQ `alias` arrives
/// on no input of its own (`owner`'s override took it): with `owner`
/// bound, binding `alias` is refused and leaves `owner`'s binding alone;
/// alone, it is refused too.
pub fn dev_irq_shared_input(args: &str) -> Outcome {
    let alias = crate::harness::arg(args, "alias")?.ok_or("no alias=<irq>")?;
    let owner = crate::harness::arg(args, "owner")?.ok_or("no owner=<irq>")?;
    let notification = sys::notification_create().ctx("notification_create")?;
    let alias_line = sys::resource_narrow(root::IRQ, alias, 1).ctx("narrow to the alias")?;
    let owner_line = sys::resource_narrow(root::IRQ, owner, 1).ctx("narrow to the owner")?;
    let bound = sys::irq_bind(owner_line, notification, 1).ctx("bind the owner")?;
    check_eq!(
        sys::irq_bind(alias_line, notification, 2),
        Err(Error::NotFound),
        "binding IRQ {alias} (IRQ {owner}'s input)"
    );
    check_eq!(sys::irq_bind(owner_line, notification, 1), Err(Error::Busy), "IRQ {owner} still bound");
    sys::handle_close(bound).ctx("close")?;
    check_eq!(sys::irq_bind(alias_line, notification, 2), Err(Error::NotFound), "binding IRQ {alias} alone");
    Ok(format!("IRQ {alias}, whose input is IRQ {owner}'s, cannot be bound"))
}

/// `kill`: a child blocked in a wait ends with EXIT_KILLED; a handle
/// without KILL is refused, and killing one that has ended does nothing.
pub fn dev_kill(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let child = sys::spawn("utest child_block", &[]).ctx("spawn child_block")?;
    check_eq!(sys::handle_rights(child), Ok(rights::PROCESS), "a process handle's rights");
    let wait_only = sys::handle_derive(child, rights::WAIT).ctx("derive")?;
    check_eq!(sys::kill(wait_only), Err(Error::NoRights), "kill without KILL");
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    check_eq!(sys::kill(endpoint), Err(Error::BadHandle), "kill(endpoint)");
    // Let it block (it would never end by itself).
    sys::sleep_ns(20_000_000).ctx("sleep")?;
    sys::kill(child).ctx("kill")?;
    check_eq!(sys::wait(wait_only), Ok(EXIT_KILLED), "the killed child's exit code");
    sys::kill(child).ctx("kill after the end")?;
    check_eq!(sys::wait(child), Ok(EXIT_KILLED), "waiting again");
    let done = sys::spawn("hello", &[]).ctx("spawn hello")?;
    let code = sys::wait(done).ctx("wait for hello")?;
    check_eq!(sys::kill(done), Err(Error::BadHandle), "kill through a handle wait closed");
    sys::handle_close(endpoint).ctx("close")?;
    Ok(format!("a blocked child killed ({EXIT_KILLED:#x}); hello ended with {code}"))
}

/// A child for `dev_kill`: blocks for ever, in a wait and in a sleep.
pub fn child_block(_args: &str) -> Outcome {
    let notification = sys::notification_create().ctx("notification_create")?;
    let _sleeper = spawn_checked(|| {
        sys::sleep_ns(u64::MAX).ctx("sleep")?;
        Ok(0)
    })
    .ctx("spawn")?;
    sys::notify_wait(notification).ctx("notify_wait")?;
    fail!("a notification nobody signals was signalled")
}

/// `process_list`, `process_open` and `system_info` with the machine's
/// resource: this process and a child are listed as they are, the child
/// can be opened and killed by ID, and the calls are refused without the
/// right or with bad arguments.
pub fn dev_processes(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let me = sys::pid().ctx("pid")?;
    let child = sys::spawn("utest child_block", &[]).ctx("spawn child_block")?;
    let mut list = [ProcessInfo { pid: 0, parent: 0, threads: 0, memory: 0, cpu_ns: 0, ended: 0, name: [0; 32] }; 64];
    // The child's second thread may not have started yet.
    let mut child_info = None;
    let mut listed = 0;
    for _ in 0..1000 {
        let (n, total) = sys::process_list(root::SYSTEM, &mut list).ctx("process_list")?;
        listed = n;
        check!(total >= n as u64 && n >= 2, "process_list: {n} of {total}");
        check!(list[..n].windows(2).all(|w| w[0].pid < w[1].pid), "the list is not in the order of IDs");
        let mine = list[..n].iter().find(|p| p.pid == me).ok_or("this process is not listed")?;
        check_eq!((mine.name(), mine.parent, mine.ended), ("utest", 0, 0), "this process's entry");
        check!(mine.threads >= 2 && mine.memory > 0, "this process's entry: {mine:?}");
        child_info = list[..n].iter().find(|p| p.parent == me).copied();
        if child_info.is_some_and(|c| c.threads == 2) {
            break;
        }
        sys::sleep_ns(1_000_000).ctx("sleep")?;
    }
    let c = child_info.ok_or("the child is not listed")?;
    check_eq!((c.name(), c.threads, c.ended), ("utest", 2, 0), "the child's entry ({c:?})");
    let opened = sys::process_open(root::SYSTEM, c.pid).ctx("process_open")?;
    check_eq!(sys::handle_rights(opened), Ok(rights::PROCESS), "an opened process's rights");
    sys::kill(opened).ctx("kill through the opened handle")?;
    check_eq!(sys::wait(child), Ok(EXIT_KILLED), "the child's exit code");
    check_eq!(sys::wait(opened), Ok(EXIT_KILLED), "waiting through the opened handle");
    check_eq!(sys::process_open(root::SYSTEM, 1 << 60), Err(Error::NotFound), "process_open of no process");
    let no_use = sys::handle_derive(root::SYSTEM, rights::TRANSFER).ctx("derive without USE")?;
    check_eq!(sys::process_list(no_use, &mut list).map(|_| ()), Err(Error::NoRights), "process_list without USE");
    check_eq!(sys::process_open(root::PORTS, me), Err(Error::BadHandle), "process_open with the port resource");
    // Raw calls: too many records, and a range that is not ours.
    // SAFETY: the kernel refuses both without writing.
    let raw = unsafe { ferrite_user::syscall::syscall3(ferrite_abi::nr::PROCESS_LIST, root::SYSTEM, 0x1000, 257) };
    check_eq!(raw.result(), Err(Error::BadLength), "process_list of 257 records");
    // SAFETY: as above.
    let raw = unsafe { ferrite_user::syscall::syscall3(ferrite_abi::nr::PROCESS_LIST, root::SYSTEM, 1 << 63, 4) };
    check_eq!(raw.result(), Err(Error::BadAddress), "process_list into the kernel half");
    let mut cpus = [CpuInfo::default(); 8];
    let (info, online) = sys::system_info(root::SYSTEM, &mut cpus).ctx("system_info")?;
    check_eq!(online, sys::cpu_count().ctx("cpu_count")?, "CPUs online");
    check_eq!(info.cpus, online, "SystemInfo::cpus");
    check!(info.memory_total > info.memory_free && info.memory_free > 0, "memory: {info:?}");
    check!(info.processes >= 1 && info.threads >= 2 && info.uptime_ns > 0, "counts: {info:?}");
    for (rank, cpu) in cpus.iter().take(online.min(8) as usize).enumerate() {
        check_eq!(cpu.cpu, rank as u64, "CpuInfo::cpu");
    }
    check_eq!(sys::system_info(no_use, &mut cpus).map(|_| ()), Err(Error::NoRights), "system_info without USE");
    Ok(format!("{} processes listed, the child opened and killed by ID; {online} CPUs", listed))
}

/// `ipc_dying_receiver`: a receiver whose process was just killed is
/// still on the endpoint's queue for a moment, or has yet to come to
/// receive; a call made then must go to a live receiver (one that comes
/// later), not to the dying one, which would end without answering
/// (`PeerGone`). What a restarted driver's clients need.
pub fn ipc_dying_receiver(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    for round in 0..20 {
        // A fresh endpoint each round, so that the dying server is the only
        // receiver waiting when the call comes.
        let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
        let grant = [ferrite_abi::Grant { handle: endpoint, rights: rights::RECEIVE }];
        let server = sys::spawn_with("utest child_server", &grant, None).ctx("spawn child_server")?;
        // Even rounds let it block in recv first; odd ones kill it at once,
        // so that it may come to receive (dying) after the call below.
        if round % 2 == 0 {
            sys::sleep_ns(5_000_000).ctx("sleep")?;
        }
        sys::kill(server).ctx("kill")?;
        // The next server: a thread of this process, a moment later. It
        // answers once; its next wait ends when the endpoint is closed.
        let live = spawn_checked(move || {
            sys::sleep_ns(2_000_000).ctx("sleep")?;
            let (_, msg) = sys::recv(endpoint).ctx("recv")?;
            let _ = sys::reply_recv(endpoint, [msg[0] + 1, 0, 0, 0]);
            Ok(0)
        })
        .ctx("spawn the live server")?;
        check_eq!(sys::call(endpoint, [round, 0, 0, 0]).map(|r| r[0]), Ok(round + 1), "round {round}: the call");
        sys::handle_close(endpoint).ctx("close the endpoint")?;
        check_eq!(live.join(), Ok(0), "round {round}: the live server");
        check_eq!(sys::wait(server), Ok(EXIT_KILLED), "round {round}: the killed server");
    }
    Ok(String::from("20 calls right after a kill reached the next receiver"))
}

/// PM1 status and enable: the PM timer's overflow event (TMR_STS, set
/// each time bit 23 of the 3.58 MHz timer changes: every 2.3 s).
const TMR_STS: u16 = 1 << 0;
const TMR_EN: u16 = 1 << 0;

/// `dev_irq_level evt=<port> irq=<line>`: the ACPI SCI, a level-triggered
/// line, raised by the PM timer's overflow event (PM1a event block at
/// `evt`, from the FADT). The driver takes one interrupt and leaves the
/// event pending: the line stays asserted, and the kernel, which masked it
/// before the end of interrupt, must signal nothing more until `irq_ack`
/// (no storm: another CPU keeps running meanwhile); once the event is
/// cleared and acknowledged, the line is quiet. (The kernel reports the
/// line, masked for two seconds: the ktest checks that.)
pub fn dev_irq_level(args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    let evt = crate::harness::arg(args, "evt")?.ok_or("no evt=<port>")?;
    let line = crate::harness::arg(args, "irq")?.ok_or("no irq=<line>")?;
    let (status, enable) = (evt as u16, evt as u16 + 2);
    let ports = sys::resource_narrow(root::PORTS, evt, 4).ctx("narrow to the PM1a event block")?;
    sys::ioport_enable(ports).ctx("ioport_enable")?;
    let irq = sys::resource_narrow(root::IRQ, line, 1).ctx("narrow to the SCI's line")?;
    let notification = sys::notification_create().ctx("notification_create")?;
    const BIT: u64 = 1 << 1;
    const MARK: u64 = 1 << 9;
    let bound = sys::irq_bind(irq, notification, BIT).ctx("irq_bind")?;
    let before = inw(enable);
    outw(status, TMR_STS);
    outw(enable, before | TMR_EN);
    let first = sys::notify_wait(notification).ctx("notify_wait for the SCI")?;
    check_eq!(first, BIT, "the first interrupt's bits");
    let masked_at = sys::time_ns().ctx("time")?;
    // Left pending and unacknowledged: nothing more may come, and another
    // CPU runs on.
    let cpus = sys::cpu_count().ctx("cpu_count")?;
    let runner = spawn_checked(move || {
        sys::set_affinity(cpus - 1).ctx("set_affinity")?;
        let start = sys::time_ns().ctx("time")?;
        let mut rounds = 0;
        while sys::time_ns().ctx("time")? - start < 300_000_000 {
            rounds += 1;
        }
        sys::signal(notification, MARK).ctx("signal the mark")?;
        Ok(rounds)
    })
    .ctx("spawn the runner")?;
    let second = sys::notify_wait(notification).ctx("notify_wait for the mark")?;
    check_eq!(inw(status) & TMR_STS, TMR_STS, "the event still pending");
    check_eq!(second, MARK, "what came while the line was asserted and unacknowledged (the mark only)");
    let rounds = runner.join().ctx("join the runner")?;
    check!(rounds > 0, "cpu{} made no progress", cpus - 1);
    // Left so for twice the kernel's report time (1 s), which the kernel
    // side of the test checks was reported.
    let since = sys::time_ns().ctx("time")? - masked_at;
    sys::sleep_ns(2_000_000_000u64.saturating_sub(since)).ctx("sleep")?;
    check_eq!(inw(status) & TMR_STS, TMR_STS, "the event still pending");
    // Cleared, then acknowledged: unmasked and quiet.
    outw(enable, before & !TMR_EN);
    outw(status, TMR_STS);
    sys::irq_ack(bound).ctx("irq_ack")?;
    let marker = spawn_checked(move || {
        sys::sleep_ns(100_000_000).ctx("sleep")?;
        sys::signal(notification, MARK).ctx("signal")?;
        Ok(0)
    })
    .ctx("spawn the marker")?;
    check_eq!(sys::notify_wait(notification), Ok(MARK), "after the ack (nothing from the quiet line)");
    check_eq!(marker.join(), Ok(0), "the marker");
    sys::handle_close(bound).ctx("close")?;
    Ok(format!("the SCI (IRQ {line}) masked while unacknowledged; cpu{} ran {rounds} rounds meanwhile", cpus - 1))
}
