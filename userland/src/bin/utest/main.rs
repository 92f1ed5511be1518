//! `utest`: the user-mode test program.
//!
//! `utest <case> [args]` runs one test case and exits [`EXIT_PASS`] if it
//! passed. On failure it prints one line, `utest <case>: FAILED: <why>`, and
//! exits [`EXIT_FAIL`]; on success it may print `utest <case>: ok
//! (<details>)`. The kernel's test runner spawns one `utest <case>` per case
//! and judges it by its exit code (and, for some cases, by the kernel's own
//! memory counters before and after).
//!
//! Cases named `fault_*` and `kill_threads` must end by a fault: the kernel
//! kills the process and the runner expects exit code
//! [`ferrite_abi::EXIT_FAULT`]. If the fault does not happen they report a
//! failure like any other case. Cases named `child_*` are not run
//! by the runner: other cases spawn them as their peers.
//!
//! Every case is checked against what `ferrite_abi` promises, and each
//! keeps to a few seconds under software emulation on one CPU. Cases that
//! could block forever on a kernel bug run under a [`harness::Watchdog`].
#![no_std]
#![no_main]

extern crate alloc;

#[macro_use]
mod harness;
mod avx;
mod children;
mod devices;
mod faults;
mod fpu;
mod fuzz;
mod ipc;
mod kill;
mod leak;
mod memory;
mod process;
mod quota;
mod raw;
mod rights;
mod shm;
mod syscalls;
mod threads;
mod transfer;

use core::sync::atomic::Ordering;

use ferrite_user::println;

use harness::Outcome;

ferrite_user::entry!(main);

/// The exit code of a case that passed.
const EXIT_PASS: u64 = 0;
/// The exit code of a case that failed (what [`harness::fail_now`] uses).
pub const EXIT_FAIL: u64 = 1;
/// The exit code for a case name this program does not know.
const EXIT_UNKNOWN_CASE: u64 = 2;

/// A test case: its arguments (the words after its name) in, a short
/// description of what it saw (`Ok`) or why it failed (`Err`) out.
type Case = fn(&str) -> Outcome;

/// Every case, by the name the runner uses.
pub static CASES: &[(&str, Case)] = &[
    // System calls without handles.
    ("write", syscalls::write),
    ("bad_syscall", syscalls::bad_syscall),
    ("time", syscalls::time),
    // Device rights (started with the root resources).
    ("dev_resources", devices::dev_resources),
    ("dev_power_bad_action", devices::dev_power_bad_action),
    ("dev_ports", devices::dev_ports),
    ("dev_ports_outside", devices::dev_ports_outside),
    ("fault_ioport", devices::fault_ioport),
    ("dev_irq", devices::dev_irq),
    ("dev_irq_level", devices::dev_irq_level),
    ("dev_irq_shared_input", devices::dev_irq_shared_input),
    ("dev_kill", devices::dev_kill),
    ("ipc_dying_receiver", devices::ipc_dying_receiver),
    ("dev_processes", devices::dev_processes),
    ("xfer", transfer::xfer),
    ("shm", shm::shm),
    ("dev_memory", shm::dev_memory),
    ("cpu", syscalls::cpu),
    ("affinity", syscalls::affinity),
    // Threads and limits.
    ("threads", threads::threads),
    ("thread_limit", threads::thread_limit),
    ("handle_limit", threads::handle_limit),
    // Memory.
    ("map", memory::map),
    ("map_exhaust", memory::map_exhaust),
    ("exhaust_all", memory::exhaust_all),
    // Processes and handles.
    ("spawn", process::spawn),
    ("churn", process::churn),
    ("handles", process::handles),
    ("isolation", process::isolation),
    // IPC.
    ("ipc_same_cpu", ipc::ipc_same_cpu),
    ("ipc_cross_cpu", ipc::ipc_cross_cpu),
    ("ipc_many_clients", ipc::ipc_many_clients),
    ("ipc_send_recv", ipc::ipc_send_recv),
    ("ipc_process", process::ipc_process),
    ("ipc_peer_gone", process::ipc_peer_gone),
    ("notify", ipc::notify),
    // Saved state, and random calls.
    ("fpu", fpu::fpu),
    ("fuzz", fuzz::fuzz),
    // Cases that must end by a fault.
    ("kill_threads", faults::kill_threads),
    ("fault_null", faults::fault_null),
    ("fault_write_text", faults::fault_write_text),
    ("fault_exec_data", faults::fault_exec_data),
    ("fault_ud", faults::fault_ud),
    ("fault_gp", faults::fault_gp),
    ("fault_de", faults::fault_de),
    ("fault_stack", faults::fault_stack),
    ("fault_kernel_read", faults::fault_kernel_read),
    ("fault_noncanonical", faults::fault_noncanonical),
    ("spin", faults::spin),
    // Hostile programs (the kernel's `hostile` suite).
    ("kill_race", kill::kill_race),
    ("ipc_leak", leak::ipc_leak),
    ("rights_endpoint", rights::rights_endpoint),
    ("rights_badge", rights::rights_badge),
    ("rights_notification", rights::rights_notification),
    ("dead_endpoint", rights::dead_endpoint),
    ("abi_edges", rights::abi_edges),
    ("heap_exhaust", quota::heap_exhaust),
    ("concurrent_maps", quota::concurrent_maps),
    ("quotas", quota::quotas),
    ("respawn", quota::respawn),
    ("unjoined_threads", quota::unjoined_threads),
    ("avx", avx::avx),
    ("forged_output", syscalls::forged_output),
    ("map_race", memory::map_race),
    ("fault_mf", faults::fault_mf),
    ("fault_umip", faults::fault_umip),
    ("fault_sysenter", faults::fault_sysenter),
    // The peers other cases spawn.
    ("child_server", children::child_server),
    ("child_block", devices::child_block),
    ("child_xfer", transfer::child_xfer),
    ("child_shm", shm::child_shm),
    ("child_xfer_full", transfer::child_xfer_full),
    ("child_xfer_stuck", transfer::child_xfer_stuck),
    ("child_receive_and_die", children::child_receive_and_die),
    ("child_signal", children::child_signal),
    ("child_probe_handles", children::child_probe_handles),
    ("child_peek", children::child_peek),
    ("child_kernel_read", children::child_kernel_read),
    ("child_kernel_write", children::child_kernel_write),
    ("child_kill_race", kill::child_kill_race),
    ("child_ipc_blocker", leak::child_ipc_blocker),
    ("child_steal_calls", rights::child_steal_calls),
    ("child_badged_call", rights::child_badged_call),
    ("child_signal_only", rights::child_signal_only),
    ("child_answer_once", rights::child_answer_once),
    ("child_fill_handles", quota::child_fill_handles),
    ("child_quota", quota::child_quota),
    ("child_respawn", quota::child_respawn),
    ("child_neighbour", quota::child_neighbour),
];

fn main(args: &str) -> u64 {
    let args = args.trim();
    let (name, rest) = args.split_once(' ').unwrap_or((args, ""));
    let Some(index) = CASES.iter().position(|(case, _)| *case == name) else {
        println!("utest: unknown case '{name}'");
        return EXIT_UNKNOWN_CASE;
    };
    harness::CURRENT_CASE.store(index, Ordering::Relaxed);
    match (CASES[index].1)(rest.trim()) {
        Ok(details) if details.is_empty() => {
            println!("utest {name}: ok");
            EXIT_PASS
        }
        Ok(details) => {
            println!("utest {name}: ok ({details})");
            EXIT_PASS
        }
        Err(why) => harness::fail_now(&why),
    }
}
