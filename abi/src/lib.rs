//! Ferrite's system-call ABI, described once for the kernel and for user
//! programs.
//!
//! # Registers
//!
//! A user thread enters the kernel with the `syscall` instruction:
//!
//! | register | in | out |
//! |---|---|---|
//! | `rax` | system-call number ([`nr`]) | status: 0 for success, else an [`Error`]'s code |
//! | `rdi` | argument 0 (for IPC: the handle) | the call's value on success (0 on an error) |
//! | `rsi`, `rdx`, `r10`, `r8` | arguments 1-4 (for IPC: message words 0-3) | preserved, or for IPC the received message words 0-3 |
//! | `r9` | argument 5 | preserved |
//! | `rcx`, `r11` | clobbered (the CPU keeps the return address and RFLAGS there) | |
//!
//! Every other register is preserved, the vector registers included.
//!
//! The status and the value travel in two registers so that every value
//! is unambiguous: an exit code of `u64::MAX`, a notification word with
//! bit 63 set or an address in the upper half of a range can never be
//! mistaken for an error ([`result`] splits the pair).
//!
//! # Program entry
//!
//! A program starts at its ELF entry point with `rsp` at the top of a
//! [`STACK_SIZE`] stack (16-byte aligned, nothing pushed), `rdi` pointing to
//! its argument string (UTF-8: the words after the module name given to
//! `spawn`; empty for init), `rsi` its length, and `rdx` the number of
//! handles it was given (they are handles `0..rdx`). A thread made by
//! `thread_spawn` starts at its entry with the given `rsp` and `rdi = arg`.
//! Returning from an entry point is not allowed: end with `exit` or
//! `thread_exit`.
//!
//! # Pointers
//!
//! Pointers are user addresses. A range `ptr..ptr + len` is checked whole
//! before the kernel touches it: it must lie in [`USER_START`]..[`USER_END`]
//! (so a null pointer is [`Error::BadAddress`]), and every page of it must
//! be mapped with the access the call needs. An empty range (`len` 0) is
//! not looked at: its pointer may be anything, as the dangling pointer of
//! an empty Rust slice is.
//! Otherwise the call fails with [`Error::BadAddress`] (or
//! [`Error::BadLength`] for a length over the call's limit), never with a
//! fault, and nothing is half done. The kernel reads and writes user memory
//! only through its copy routines (SMAP keeps it out of user pages
//! otherwise).
//!
//! # Handles
//!
//! A handle is an index into the calling process's own handle table
//! (at most [`MAX_HANDLES`] entries). It names an endpoint, a notification,
//! a shared memory object (from `mem_create`), a thread of the process
//! (from `thread_spawn`), a child process (from `spawn`), a [`resource`] (a right to devices: interrupt lines, I/O
//! ports, device memory, the machine) or a bound interrupt line (from
//! `irq_bind`), and carries [`rights`]: what its holder may do with the
//! object. A number that is not an open handle of the caller, or one of
//! the wrong kind for the call, is [`Error::BadHandle`]; a handle without
//! the right the call needs is [`Error::NoRights`]. A process can use only
//! the handles it created or was given, with the rights they carry.
//! `thread_join` and `wait` close the handle they waited on when they
//! return its exit code.
//!
//! A holder can make another handle to the same object with fewer rights
//! (`handle_derive`) and, for an endpoint, with a *badge* of its choosing
//! (`handle_mint`): messages sent through that handle carry the badge, so
//! a server that gives each client its own minted handle learns which
//! client called, not only which process. A handle that has a badge keeps
//! it: it cannot be minted again. A handle is passed to a child by
//! `spawn` only if it has [`rights::TRANSFER`], and the child's copy has
//! the rights the parent asks for (never more than it holds).
//!
//! # IPC
//!
//! Endpoints are synchronous, as in L4 and seL4: a message of
//! [`MSG_WORDS`] words passes from sender to receiver only when both are
//! there, in registers, without a copy through memory. `call` sends and
//! waits for the reply in one step; the receiver of a call answers it with
//! `reply_recv`, which also waits for the next message. Sending (`send`,
//! `call`) needs [`rights::SEND`], receiving (`recv`, `reply_recv`)
//! [`rights::RECEIVE`]. A receiver learns the *badge* of the handle the
//! sender used: the badge it was minted with, or for a handle without one
//! the sender's process ID. If the process of a thread that owes a reply
//! ends, the caller's `call` fails with [`Error::PeerGone`]. Once no handle
//! with [`rights::RECEIVE`] is left anywhere, nobody can ever receive: the
//! senders waiting on the endpoint, and every later `send` or `call`, fail
//! with [`Error::PeerGone`] instead of waiting for ever (and so do threads
//! still waiting to receive through a handle that was closed under them).
//!
//! # Handles in messages
//!
//! A message may carry one handle, as seL4's carry capabilities: the
//! sender names it in `r9` of `call_handle`, `send_handle` or
//! `reply_recv_handle` (or [`NO_HANDLE`]). It must be an endpoint,
//! notification or resource handle with [`rights::TRANSFER`]
//! ([`Error::BadHandle`], [`Error::NoRights`] otherwise, and nothing is
//! sent). The receiver gets a copy with the same rights and badge as a new
//! handle of its own, in `r9`, if it received with `recv_handle`,
//! `reply_recv_handle` or (for the reply) `call_handle`; [`NO_HANDLE`] if
//! none came; [`HANDLE_DROPPED`] if its table was full. A receiver that
//! used a call without `_handle` gets no handle (and `r9` is preserved):
//! what was sent is dropped. The sender keeps its own handle. A handle
//! that is never delivered — the receiver is gone, the wait fails — is
//! dropped by the kernel, never kept.
//!
//! Notifications are asynchronous: `signal` ([`rights::SIGNAL`]) ORs bits
//! into a word and never blocks; `notify_wait` ([`rights::WAIT`]) takes the
//! whole word once it is non-zero.
#![no_std]
#![forbid(unsafe_code)]

/// System-call numbers.
pub mod nr {
    /// `write(ptr, len) -> len`: bytes to the console, marked as this
    /// process's: each line it starts shows as `[pid] ` and the text, with
    /// control characters other than tab and newline escaped (`\x1b`), so
    /// that nothing a program writes can pass for the kernel's output; a
    /// line another writer interrupts goes on under a fresh prefix. At most
    /// [`super::WRITE_MAX`] bytes; it returns once they are on their way
    /// (it may wait for the console).
    pub const WRITE: u64 = 0;
    /// `exit(code) -> !`: ends the whole process, every thread of it.
    pub const EXIT: u64 = 1;
    /// `yield() -> 0`.
    pub const YIELD: u64 = 2;
    /// `sleep(ns) -> 0`: at least `ns` nanoseconds.
    pub const SLEEP: u64 = 3;
    /// `time() -> ns`: monotonic nanoseconds since boot.
    pub const TIME: u64 = 4;
    /// `cpu() -> index`: the CPU the caller runs on now.
    pub const CPU: u64 = 5;
    /// `cpu_count() -> n`: CPUs online.
    pub const CPU_COUNT: u64 = 6;
    /// `thread_spawn(entry, stack_top, arg) -> thread handle`: a new thread
    /// of this process starts at `entry` with `rsp = stack_top` and
    /// `rdi = arg`, with the caller's affinity (see `set_affinity`).
    /// `entry` and `stack_top` must be user addresses
    /// ([`super::Error::BadAddress`]); at most [`super::MAX_THREADS`]
    /// threads live in a process at once ([`super::Error::NoMemory`]).
    pub const THREAD_SPAWN: u64 = 7;
    /// `thread_join(handle) -> code`: waits for the thread to exit and
    /// returns the code it passed to `thread_exit`; the handle is closed.
    pub const THREAD_JOIN: u64 = 8;
    /// `thread_exit(code) -> !`: ends the calling thread; the process ends
    /// with its last thread (code of that thread).
    pub const THREAD_EXIT: u64 = 9;
    /// `set_affinity(cpu) -> 0`: pin the calling thread to `cpu`, or
    /// [`super::ANY_CPU`].
    pub const SET_AFFINITY: u64 = 10;
    /// `map(len, flags) -> addr`: fresh zeroed memory ([`super::map`]
    /// flags), `len` rounded up to pages; `len` is 1 to
    /// [`super::MAP_MAX`] ([`super::Error::BadLength`]), unknown flags are
    /// [`super::Error::BadArgument`], and memory the kernel cannot spare is
    /// [`super::Error::NoMemory`].
    pub const MAP: u64 = 11;
    /// `unmap(addr, len) -> 0`: the pages from `addr` (page aligned) for
    /// `len` bytes (rounded up), which must all have come from one `map`
    /// or `mem_map`
    /// ([`super::Error::BadAddress`] otherwise; nothing is unmapped then).
    /// Part of a mapping may be unmapped; splitting one can take the kernel
    /// a little memory, and when it has none the unmap fails with
    /// [`super::Error::NoMemory`], nothing unmapped. Once it returns, the
    /// addresses may be mapped again.
    pub const UNMAP: u64 = 12;
    /// `spawn(cmd_ptr, cmd_len, grants_ptr, grants_len, limits_ptr) ->
    /// process handle`: starts the boot module named by the first word of the
    /// command (UTF-8, at most [`super::SPAWN_CMD_MAX`] bytes); the rest of
    /// the command is the child's argument string. The child's handle table
    /// starts with copies of the handles the [`super::Grant`]s at
    /// `grants_ptr` name (endpoints, notifications and resources only, each with
    /// [`super::rights::TRANSFER`], at most [`super::SPAWN_HANDLES_MAX`]),
    /// in order, each with the rights its grant asks for. `limits_ptr` is
    /// 0 (the child gets the caller's [`super::Limits`]) or points to the
    /// child's limits, none above the caller's own
    /// ([`super::Error::BadArgument`]). An unknown name is
    /// [`super::Error::NotFound`], a module that is not a valid static ELF
    /// executable [`super::Error::BadProgram`], a limit reached
    /// [`super::Error::NoMemory`].
    pub const SPAWN: u64 = 13;
    /// `wait(process handle) -> code`: waits for the process to end; a
    /// process killed by a fault ends with [`super::EXIT_FAULT`]. The handle
    /// is closed.
    pub const WAIT: u64 = 14;
    /// `endpoint_create() -> handle`: a new IPC endpoint.
    pub const ENDPOINT_CREATE: u64 = 15;
    /// `call(handle, w0..w3) -> 0, reply in w0..w3`: send on the endpoint
    /// and wait for the reply.
    pub const CALL: u64 = 16;
    /// `reply_recv(handle, w0..w3) -> badge, message in w0..w3`: reply to
    /// the caller last received by this thread (if any, and if it still
    /// waits), then wait for the next message on the endpoint.
    pub const REPLY_RECV: u64 = 17;
    /// `send(handle, w0..w3) -> 0`: send and do not wait for a reply (waits
    /// for a receiver, though: IPC is synchronous).
    pub const SEND: u64 = 18;
    /// `recv(handle) -> badge, message in w0..w3`.
    pub const RECV: u64 = 19;
    /// `notification_create() -> handle`: a word of bits to signal.
    pub const NOTIFICATION_CREATE: u64 = 20;
    /// `signal(handle, bits) -> 0`: ORs `bits` into the notification's word.
    pub const SIGNAL: u64 = 21;
    /// `notify_wait(handle) -> bits`: waits until the word is non-zero,
    /// then takes (and clears) it. Any word is a value, bit 63 included.
    pub const NOTIFY_WAIT: u64 = 22;
    /// `handle_close(handle) -> 0`.
    pub const HANDLE_CLOSE: u64 = 23;
    /// `pid() -> id`: the calling process's ID (what its IPC partners see
    /// as the badge).
    pub const PID: u64 = 24;
    /// `null() -> 0`: does nothing; what a system call costs, round trip.
    pub const NULL: u64 = 25;
    /// `tsc_hz() -> hz`: the frequency of the time-stamp counter (`rdtsc`,
    /// which user mode may run), as the kernel measured or was told it; 0
    /// if unknown.
    pub const TSC_HZ: u64 = 26;
    /// `handle_derive(handle, rights) -> handle`: a new handle to the same
    /// object with `rights` (at most the handle's own, or
    /// [`super::rights::SAME`]) and the same badge.
    pub const HANDLE_DERIVE: u64 = 27;
    /// `handle_mint(handle, rights, badge) -> handle`: like `handle_derive`
    /// for an endpoint handle that has no badge yet; the new handle's
    /// messages carry `badge`. A handle with a badge already is
    /// [`super::Error::BadArgument`].
    pub const HANDLE_MINT: u64 = 28;
    /// `handle_rights(handle) -> rights`: the handle's [`super::rights`].
    pub const HANDLE_RIGHTS: u64 = 29;
    /// `limits(ptr) -> 0`: writes two [`super::Limits`] at `ptr`: the
    /// calling process's limits, then what it (with its descendants) holds
    /// now.
    pub const LIMITS: u64 = 30;
    /// `power(system handle, action) -> !`: [`super::POWER_OFF`] powers the
    /// machine off (through QEMU's debug-exit device, reporting success,
    /// else ACPI S5), [`super::POWER_RESET`] resets it. The handle is a
    /// [`super::resource::SYSTEM`] resource with [`super::rights::USE`].
    /// Another action is [`super::Error::BadArgument`]; nothing else
    /// returns.
    pub const POWER: u64 = 31;
    /// `kill(process handle) -> 0`: kills the process (it needs
    /// [`super::rights::KILL`]): every thread of it ends, blocked ones
    /// included, and it ends with [`super::EXIT_KILLED`] unless it had
    /// already exited or been killed. Returns at once; `wait` tells when
    /// it is gone.
    pub const KILL: u64 = 32;
    /// `resource_narrow(handle, base, len) -> handle`: a new handle to the
    /// part `base..base + len` of a [`super::resource`] (which must lie
    /// inside the handle's range, [`super::Error::BadArgument`]), with the
    /// same rights. For a [`super::resource::SYSTEM`] resource, which has
    /// no range, `base` and `len` must be 0.
    pub const RESOURCE_NARROW: u64 = 33;
    /// `resource_info(handle, ptr) -> 0`: writes three words at `ptr`: the
    /// resource's kind ([`super::resource`]), base and length.
    pub const RESOURCE_INFO: u64 = 34;
    /// `ioport_enable(handle) -> 0`: from now on the calling process may use
    /// `in` and `out` on the ports of a [`super::resource::PORTS`] resource
    /// (it needs [`super::rights::USE`]); other ports still fault. Takes
    /// effect at once for the calling thread, and for the process's other
    /// threads when they are next switched in. At most
    /// [`super::IOPORT_RANGES`] ranges a process ([`super::Error::NoMemory`]).
    /// A range with a port the kernel drives itself (the PICs, the PIT,
    /// QEMU's debug exit at 0xF4, the ACPI sleep control and reset
    /// registers) is [`super::Error::Busy`].
    pub const IOPORT_ENABLE: u64 = 35;
    /// `irq_bind(handle, notification, bits) -> interrupt handle`: binds
    /// the interrupt line of a [`super::resource::IRQ`] resource one line
    /// long (ISA IRQ `base`; [`super::rights::USE`]) to the notification
    /// (which needs [`super::rights::SIGNAL`]): each interrupt on the line
    /// signals `bits` (not 0). A level-triggered line is masked after each
    /// interrupt until `irq_ack`; an edge-triggered one after
    /// [`super::IRQ_STORM`] interrupts without an `irq_ack` (a storm), and
    /// the kernel logs it. A line bound already is [`super::Error::Busy`].
    /// The line is unbound and masked when the interrupt handle is closed
    /// (or its process ends).
    pub const IRQ_BIND: u64 = 36;
    /// `irq_ack(interrupt handle) -> 0`: the driver has dealt with the
    /// device: the line is unmasked, if it was masked.
    pub const IRQ_ACK: u64 = 37;
    /// `process_list(system handle, ptr, max) -> count`: writes a
    /// [`super::ProcessInfo`] for each of the first `max` (at most
    /// [`super::PROCESS_LIST_MAX`]) processes that exist, in the order of
    /// their IDs, at `ptr`, and returns how many exist (which may be more
    /// than `max`). Needs a [`super::resource::SYSTEM`] resource with
    /// [`super::rights::USE`].
    pub const PROCESS_LIST: u64 = 38;
    /// `process_open(system handle, pid) -> process handle`: a handle with
    /// [`super::rights::PROCESS`] to the process with this ID, whoever
    /// started it ([`super::Error::NotFound`] if there is none, or it is
    /// still being loaded and has not started). Needs what
    /// `process_list` needs.
    pub const PROCESS_OPEN: u64 = 39;
    /// `system_info(system handle, ptr, max) -> cpus`: writes a
    /// [`super::SystemInfo`] at `ptr`, followed by a [`super::CpuInfo`] for
    /// each of the first `max` online CPUs, and returns how many CPUs are
    /// online. Needs what `process_list` needs.
    pub const SYSTEM_INFO: u64 = 40;
    /// `call_handle(handle, w0..w3, r9 = handle to pass)`: `call`, with a
    /// handle passed along ([`super::NO_HANDLE`] for none); the reply's
    /// handle comes back in `r9` (see "Handles in messages").
    pub const CALL_HANDLE: u64 = 41;
    /// `send_handle(handle, w0..w3, r9 = handle to pass)`: `send` with a
    /// handle.
    pub const SEND_HANDLE: u64 = 42;
    /// `reply_recv_handle(handle, w0..w3, r9 = handle to pass)`:
    /// `reply_recv` whose reply carries a handle, and which takes the
    /// handle the next message carries (in `r9`).
    pub const REPLY_RECV_HANDLE: u64 = 43;
    /// `recv_handle(handle)`: `recv` which takes the handle the message
    /// carries (in `r9`).
    pub const RECV_HANDLE: u64 = 44;
    /// `mem_create(len) -> handle`: a shared memory object of `len` bytes
    /// (rounded up to pages, 1 to [`super::MAP_MAX`],
    /// [`super::Error::BadLength`]), zeroed, charged to the caller until the
    /// last handle to it and the last mapping of it are gone. Its handle
    /// has [`super::rights::MEMORY`].
    pub const MEM_CREATE: u64 = 45;
    /// `mem_map(handle, flags) -> addr`: maps all of a shared memory object
    /// (it needs [`super::rights::MAP`], and [`super::rights::WRITE`] for
    /// [`super::map::WRITE`]) or of a [`super::resource::DEVICE_MEMORY`]
    /// resource (it needs [`super::rights::USE`]; base and length page
    /// aligned; uncached, or write-combining with
    /// [`super::map::WRITE_COMBINING`]) into the caller, in the map area;
    /// `unmap` removes it. Device memory that is RAM, the firmware's RAM
    /// (ACPI tables and NVS, as the memory map marks them), or registers
    /// the kernel drives itself is [`super::Error::BadArgument`], as is the
    /// boot framebuffer without write-combining (the kernel maps it so),
    /// and unknown flags.
    pub const MEM_MAP: u64 = 46;
    /// One past the highest number.
    pub const COUNT: u64 = 47;
}

/// What went wrong: the status in `rax` (its [`Error::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// No system call has this number.
    BadSyscall = 1,
    /// A pointer the kernel may not use: null, in the kernel half,
    /// unmapped, or without the needed permission.
    BadAddress = 2,
    /// A length that is zero where it may not be, too large, or overflows.
    BadLength = 3,
    /// No such handle in this process, or one of the wrong kind.
    BadHandle = 4,
    /// Out of memory, or out of room in a table.
    NoMemory = 5,
    /// No boot module of this name.
    NotFound = 6,
    /// Another argument is out of range (a CPU index, flags).
    BadArgument = 7,
    /// The peer is gone (its process ended).
    PeerGone = 8,
    /// A malformed program (a boot module that is not a valid ELF file).
    BadProgram = 9,
    /// The handle lacks the right the call needs ([`rights`]).
    NoRights = 10,
    /// The object is taken (an interrupt line bound already).
    Busy = 11,
}

impl Error {
    pub const ALL: [Error; 11] = [
        Error::BadSyscall,
        Error::BadAddress,
        Error::BadLength,
        Error::BadHandle,
        Error::NoMemory,
        Error::NotFound,
        Error::BadArgument,
        Error::PeerGone,
        Error::BadProgram,
        Error::NoRights,
        Error::Busy,
    ];

    /// The status in `rax`: never 0, which is success.
    pub const fn code(self) -> u64 {
        self as u64
    }

    /// The error a status stands for (None for success or an unknown code).
    pub fn from_code(code: u64) -> Option<Error> {
        Error::ALL.into_iter().find(|e| e.code() == code)
    }
}

/// Splits what a system call returned, the status (`rax`) and the value
/// (`rdi`), into success or error. A status no [`Error`] has (a kernel
/// bug) reads as [`Error::BadArgument`].
pub fn result(status: u64, value: u64) -> Result<u64, Error> {
    match status {
        0 => Ok(value),
        code => Err(Error::from_code(code).unwrap_or(Error::BadArgument)),
    }
}

/// The affinity meaning "any CPU".
pub const ANY_CPU: u64 = u64::MAX;
/// `power` action: power off.
pub const POWER_OFF: u64 = 0;
/// `power` action: reset.
pub const POWER_RESET: u64 = 1;
/// Open handles a process may hold at once (and the default, and most,
/// [`Limits::handles`]).
pub const MAX_HANDLES: u64 = 1024;
/// Threads a process may have alive at once, whatever its limits say.
pub const MAX_THREADS: u64 = 256;
/// The longest `map`.
pub const MAP_MAX: u64 = 1 << 30;
/// The longest `spawn` command.
pub const SPAWN_CMD_MAX: u64 = 4096;
/// The most handles `spawn` passes to a child.
pub const SPAWN_HANDLES_MAX: u64 = 64;
/// The longest `write`.
pub const WRITE_MAX: u64 = 4096;
/// The exit code of a process killed because of a fault.
pub const EXIT_FAULT: u64 = 0xdead;
/// The exit code of a process ended by `kill`.
pub const EXIT_KILLED: u64 = 0xdead_0009;
/// The most I/O port ranges `ioport_enable` gives one process.
pub const IOPORT_RANGES: u64 = 16;
/// Interrupts an edge-triggered line may take without an `irq_ack`
/// before the kernel masks it as a storm.
pub const IRQ_STORM: u64 = 10_000;
/// The initial stack of a program.
pub const STACK_SIZE: u64 = 64 * 1024;
/// Words in an IPC message.
pub const MSG_WORDS: usize = 4;
/// In `r9` of an IPC call that passes a handle: none. Out of one that
/// takes a handle: none came.
pub const NO_HANDLE: u64 = u64::MAX;
/// Out of an IPC call that takes a handle: one came, but the receiver's
/// table had no room for it, so it was dropped (the message still came).
pub const HANDLE_DROPPED: u64 = u64::MAX - 1;

/// What a handle lets its holder do (a bit set; `handle_rights` tells).
pub mod rights {
    /// Endpoint: `send` and `call`.
    pub const SEND: u64 = 1 << 0;
    /// Endpoint: `recv` and `reply_recv`.
    pub const RECEIVE: u64 = 1 << 1;
    /// Notification: `signal`.
    pub const SIGNAL: u64 = 1 << 2;
    /// Notification: `notify_wait`; thread: `thread_join`; process:
    /// `wait`.
    pub const WAIT: u64 = 1 << 3;
    /// Pass the handle on (`spawn`'s grants).
    pub const TRANSFER: u64 = 1 << 4;
    /// Process: `kill`.
    pub const KILL: u64 = 1 << 5;
    /// Resource: what its kind allows (`ioport_enable`, `irq_bind`,
    /// `power`, `mem_map`); interrupt handle: `irq_ack`.
    pub const USE: u64 = 1 << 6;
    /// Shared memory: `mem_map` (readable).
    pub const MAP: u64 = 1 << 7;
    /// Shared memory: `mem_map` writable.
    pub const WRITE: u64 = 1 << 8;
    /// Every right there is.
    pub const ALL: u64 = SEND | RECEIVE | SIGNAL | WAIT | TRANSFER | KILL | USE | MAP | WRITE;
    /// What `mem_create` gives.
    pub const MEMORY: u64 = MAP | WRITE | TRANSFER;
    /// For `handle_derive`, `handle_mint` and grants: the rights the
    /// handle has.
    pub const SAME: u64 = u64::MAX;
    /// What `endpoint_create` gives.
    pub const ENDPOINT: u64 = SEND | RECEIVE | TRANSFER;
    /// What `notification_create` gives.
    pub const NOTIFICATION: u64 = SIGNAL | WAIT | TRANSFER;
    /// What `thread_spawn` gives (thread handles cannot be passed on).
    pub const THREAD: u64 = WAIT;
    /// What `spawn` gives (process handles cannot be passed on).
    pub const PROCESS: u64 = WAIT | KILL;
    /// What the root resources init starts with carry ([`super::root`]).
    pub const RESOURCE: u64 = USE | TRANSFER;
    /// What `irq_bind` gives.
    pub const IRQ: u64 = USE;
}

/// Kinds of resource: the rights to a machine's devices, which only the
/// kernel makes. Init starts with one handle of each ([`root`]) and hands
/// drivers narrowed ones (`resource_narrow`, `spawn` grants).
pub mod resource {
    /// ISA interrupt lines (0-15): `irq_bind`.
    pub const IRQ: u64 = 0;
    /// I/O ports (0-65535): `ioport_enable`.
    pub const PORTS: u64 = 1;
    /// Physical addresses of device memory (not RAM): for mapping devices.
    pub const DEVICE_MEMORY: u64 = 2;
    /// The machine itself: `power`. It has no range (base and length 0).
    pub const SYSTEM: u64 = 3;
}

/// The handles init starts with (`rdx` is [`root::COUNT`]): a resource of
/// each kind, whole, with [`rights::RESOURCE`]. Other programs start with
/// the handles their parent grants them.
pub mod root {
    /// Every ISA interrupt line.
    pub const IRQ: u64 = 0;
    /// Every I/O port.
    pub const PORTS: u64 = 1;
    /// All device memory.
    pub const DEVICE_MEMORY: u64 = 2;
    /// The machine ([`super::resource::SYSTEM`]).
    pub const SYSTEM: u64 = 3;
    /// How many there are.
    pub const COUNT: u64 = 4;
}

/// One handle `spawn` passes to the child: the parent's handle and the
/// rights the child's copy gets ([`rights::SAME`], or a subset of the
/// handle's rights). Two words, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Grant {
    pub handle: u64,
    pub rights: u64,
}

impl Grant {
    /// The handle with the rights it has.
    pub const fn same(handle: u64) -> Grant {
        Grant { handle, rights: rights::SAME }
    }
}

/// What a process may hold at once, it and every process it started
/// (with theirs) together: each process's use counts towards its own
/// limits and those of all its ancestors, so a child can never take more
/// than its parent may. Reaching a limit is [`Error::NoMemory`]. Four
/// words, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Limits {
    /// Bytes of memory: its pages (program, stacks, `map`), the page
    /// tables and kernel stacks held for them, and the kernel objects it
    /// made (endpoints, notifications, threads, handle-table slots,
    /// processes). Unlimited by default, but never more than the machine
    /// has beyond the kernel's reserve.
    pub memory: u64,
    /// Threads, counting those that have ended but whose handle is still
    /// open.
    pub threads: u64,
    /// Processes started and not yet gone (a child counts until its
    /// parent has waited for it or closed its handle).
    pub processes: u64,
    /// Open handles: this process's own table only.
    pub handles: u64,
}

impl Limits {
    /// What a process the kernel starts (init) gets; a child gets its
    /// parent's limits unless `spawn` gives smaller ones.
    pub const DEFAULT: Limits =
        Limits { memory: u64::MAX, threads: DEFAULT_THREADS, processes: DEFAULT_PROCESSES, handles: MAX_HANDLES };
}

/// The default [`Limits::threads`]: half of the kernel's 16,384 kernel
/// stacks.
pub const DEFAULT_THREADS: u64 = 8192;
/// The default [`Limits::processes`].
pub const DEFAULT_PROCESSES: u64 = 1024;

/// The most records one `process_list` writes.
pub const PROCESS_LIST_MAX: u64 = 256;
/// Bytes of a process's name in a [`ProcessInfo`] (NUL-padded, cut).
pub const PROCESS_NAME_LEN: usize = 32;

/// One process, as `process_list` describes it. Six words, then the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct ProcessInfo {
    pub pid: u64,
    /// The process that started it (0: the kernel did).
    pub parent: u64,
    /// Threads alive now.
    pub threads: u64,
    /// Bytes of memory it and its descendants hold ([`Limits::memory`]).
    pub memory: u64,
    /// CPU time its threads have used, ended ones included, in ns.
    pub cpu_ns: u64,
    /// 1 once it has ended (its parent has not yet waited), else 0.
    pub ended: u64,
    /// The boot module it runs, NUL-padded.
    pub name: [u8; PROCESS_NAME_LEN],
}

impl ProcessInfo {
    /// The name as text (up to its first NUL).
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(PROCESS_NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// The machine, as `system_info` describes it. Thirteen words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SystemInfo {
    /// Nanoseconds since boot.
    pub uptime_ns: u64,
    /// Bytes of RAM the kernel manages, and how many are free.
    pub memory_total: u64,
    pub memory_free: u64,
    /// Bytes of the kernel's heap in use.
    pub heap_used: u64,
    /// Processes and threads that exist.
    pub processes: u64,
    pub threads: u64,
    /// CPUs online.
    pub cpus: u64,
    /// The framebuffer the loader set up (physical address, bytes: pitch
    /// times height; 0 and 0 if none), its size in pixels, its pitch in
    /// bytes and its bits per pixel: for mapping it as device memory.
    pub framebuffer: u64,
    pub framebuffer_len: u64,
    pub framebuffer_width: u64,
    pub framebuffer_height: u64,
    pub framebuffer_pitch: u64,
    pub framebuffer_bpp: u64,
}

/// One online CPU, as `system_info` describes it. Seven words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct CpuInfo {
    /// Its number as `cpu` counts (0 to `cpu_count` - 1).
    pub cpu: u64,
    /// Its local APIC ID.
    pub apic_id: u64,
    /// Context switches it made.
    pub switches: u64,
    /// Nanoseconds it spent idle.
    pub idle_ns: u64,
    /// Timer interrupts and inter-processor interrupts it took.
    pub timer_ticks: u64,
    pub ipis: u64,
    /// Threads queued on it now.
    pub queued: u64,
}

/// `map` and `mem_map` flags.
pub mod map {
    /// Writable (memory is always readable and never executable).
    pub const WRITE: u64 = 1;
    /// `mem_map` of device memory: write-combining (a framebuffer), not
    /// uncached.
    pub const WRITE_COMBINING: u64 = 2;
}

/// Where user memory lives: every user pointer must fall in
/// `USER_START..USER_END`. The first page stays unmapped so that null
/// pointers fault. The last page below the non-canonical hole stays
/// unmapped too: a `syscall` in its last two bytes would return to the
/// first non-canonical address, and `sysret` to a non-canonical address
/// faults in ring 0 on Intel CPUs (the hazard Linux avoids the same way).
pub const USER_START: u64 = 0x1000;
/// One past the highest user address; see [`USER_START`].
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
