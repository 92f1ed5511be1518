//! One function per system call of [`ferrite_abi::nr`], with Rust types:
//! slices and `&str` instead of pointer and length, [`Handle`] and
//! [`Message`], `()` where the kernel returns 0, and errors as
//! [`Error`]. Only calls that can break memory safety (`unmap`,
//! `thread_spawn`) are `unsafe`.

use core::ptr;

use ferrite_abi::{nr, CpuInfo, Error, Grant, Limits, ProcessInfo, SystemInfo, MSG_WORDS, SPAWN_HANDLES_MAX};

use crate::syscall::{syscall0, syscall1, syscall2, syscall3, syscall5, syscall_ipc, syscall_ipc_handle, Raw};

/// A handle: an index into the process's handle table.
pub type Handle = u64;

/// An IPC message: words 0-3 travel in `rsi`, `rdx`, `r10`, `r8`.
pub type Message = [u64; MSG_WORDS];

/// For calls whose only success value is 0.
fn unit(raw: Raw) -> Result<(), Error> {
    raw.result().map(|_| ())
}

/// The value or the error.
fn result(raw: Raw) -> Result<u64, Error> {
    raw.result()
}

/// Writes `bytes` (at most [`ferrite_abi::WRITE_MAX`]) to the console in one
/// piece; returns how many were written. [`crate::io::write_all`] takes any
/// length.
pub fn write(bytes: &[u8]) -> Result<u64, Error> {
    // SAFETY: the kernel only reads `bytes`, which is initialized memory of
    // this length.
    result(unsafe { syscall2(nr::WRITE, bytes.as_ptr().expose_provenance() as u64, bytes.len() as u64) })
}

/// Ends the process, every thread of it, with `code`.
pub fn exit(code: u64) -> ! {
    loop {
        // SAFETY: ending the process breaks no borrow.
        // A kernel that returns from `exit` is broken; asking again is all
        // there is left to do.
        unsafe { syscall1(nr::EXIT, code) };
    }
}

/// Gives the CPU to another ready thread, if there is one.
pub fn yield_now() -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall0(nr::YIELD) })
}

/// Sleeps for at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall1(nr::SLEEP, ns) })
}

/// Monotonic nanoseconds since boot.
pub fn time_ns() -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::TIME) })
}

/// The index of the CPU the caller runs on now (which, unless the thread is
/// pinned, may have changed by the time the caller looks).
pub fn cpu() -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::CPU) })
}

/// The number of CPUs online.
pub fn cpu_count() -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::CPU_COUNT) })
}

/// Starts a thread of this process at `entry` with `rsp = stack_top` and
/// `rdi = arg`. [`crate::thread::spawn`] is the safe way to use this.
///
/// # Safety
///
/// `entry` must be code that starts the way the ABI describes (stack 16-byte
/// aligned, nothing pushed) and never returns; the memory below `stack_top`
/// must be writable and used by nothing else for as long as the thread runs.
pub unsafe fn thread_spawn(entry: u64, stack_top: u64, arg: u64) -> Result<Handle, Error> {
    // SAFETY: the caller's promise.
    result(unsafe { syscall3(nr::THREAD_SPAWN, entry, stack_top, arg) })
}

/// Waits for the thread to end and returns its exit code. The handle is
/// closed then (the number may name something else afterwards).
pub fn thread_join(thread: Handle) -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall1(nr::THREAD_JOIN, thread) })
}

/// Ends the calling thread with `code`; the process ends with its last
/// thread. The thread's stack stays mapped: nothing that borrows from it can
/// dangle.
pub fn thread_exit(code: u64) -> ! {
    loop {
        // SAFETY: ending a thread unmaps nothing.
        unsafe { syscall1(nr::THREAD_EXIT, code) };
    }
}

/// Pins the calling thread to CPU `cpu`, or lets it run anywhere with
/// [`ferrite_abi::ANY_CPU`]. The thread runs on that CPU when this returns.
pub fn set_affinity(cpu: u64) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall1(nr::SET_AFFINITY, cpu) })
}

/// Maps `len` bytes (rounded up to pages) of fresh zeroed memory with
/// [`ferrite_abi::map`] `flags`; returns its first byte, page-aligned.
pub fn map(len: usize, flags: u64) -> Result<*mut u8, Error> {
    // SAFETY: new memory that nothing uses yet.
    let addr = result(unsafe { syscall2(nr::MAP, len as u64, flags) })?;
    Ok(ptr::with_exposed_provenance_mut(addr as usize))
}

/// Unmaps `len` bytes (rounded up to pages) from `addr`.
///
/// # Safety
///
/// The pages must have come from [`map`], and nothing may use them any more.
pub unsafe fn unmap(addr: *mut u8, len: usize) -> Result<(), Error> {
    // SAFETY: the caller's promise.
    unit(unsafe { syscall2(nr::UNMAP, addr.expose_provenance() as u64, len as u64) })
}

/// Starts a process from a boot module. `command` is the module's name
/// followed by the child's argument string: `"hello a b"` runs module
/// `hello` with arguments `"a b"`. The child's handles `0..handles.len()`
/// are copies of `handles`, in order, with the rights they have (each must
/// have [`ferrite_abi::rights::TRANSFER`]; [`spawn_with`] passes fewer
/// rights). Returns the process handle for [`wait`].
pub fn spawn(command: &str, handles: &[Handle]) -> Result<Handle, Error> {
    if handles.len() as u64 > SPAWN_HANDLES_MAX {
        return Err(Error::BadLength);
    }
    let mut grants = [Grant::same(0); SPAWN_HANDLES_MAX as usize];
    for (grant, &handle) in grants.iter_mut().zip(handles) {
        *grant = Grant::same(handle);
    }
    spawn_with(command, &grants[..handles.len()], None)
}

/// [`spawn`], with the rights each of the child's handles gets and the
/// child's limits (None: this process's own; none may be higher).
pub fn spawn_with(command: &str, grants: &[Grant], limits: Option<&Limits>) -> Result<Handle, Error> {
    let limits = limits.map_or(0, |l| ptr::from_ref(l).expose_provenance() as u64);
    // SAFETY: the kernel only reads `command`, `grants` (two words each, as
    // `Grant` is laid out) and the limits (four words).
    unsafe {
        syscall5(
            nr::SPAWN,
            command.as_ptr().expose_provenance() as u64,
            command.len() as u64,
            grants.as_ptr().expose_provenance() as u64,
            grants.len() as u64,
            limits,
        )
    }
    .result()
}

/// This process's limits, and what it (with its descendants) holds now.
pub fn limits() -> Result<(Limits, Limits), Error> {
    let mut out = [Limits { memory: 0, threads: 0, processes: 0, handles: 0 }; 2];
    // SAFETY: the kernel writes the two `Limits` (eight words) of `out`,
    // which is ours.
    unsafe { syscall1(nr::LIMITS, out.as_mut_ptr().expose_provenance() as u64) }.result()?;
    Ok((out[0], out[1]))
}

/// Waits for a process to end and returns its exit code
/// ([`ferrite_abi::EXIT_FAULT`] if a fault killed it). The handle is closed
/// then.
pub fn wait(process: Handle) -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall1(nr::WAIT, process) })
}

/// A new IPC endpoint.
pub fn endpoint_create() -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::ENDPOINT_CREATE) })
}

/// The IPC calls: registers only, no memory.
fn ipc(nr: u64, handle: Handle, msg: &mut Message) -> Result<u64, Error> {
    // SAFETY: IPC system calls touch no user memory; `msg` is ours.
    result(unsafe { syscall_ipc(nr, handle, msg) })
}

/// Sends `msg` on `endpoint` and waits for the reply.
pub fn call(endpoint: Handle, msg: Message) -> Result<Message, Error> {
    let mut msg = msg;
    ipc(nr::CALL, endpoint, &mut msg)?;
    Ok(msg)
}

/// Replies `reply` to the caller this thread last received (if any), then
/// waits for the next message on `endpoint`; returns its badge and words.
pub fn reply_recv(endpoint: Handle, reply: Message) -> Result<(u64, Message), Error> {
    let mut msg = reply;
    let badge = ipc(nr::REPLY_RECV, endpoint, &mut msg)?;
    Ok((badge, msg))
}

/// Sends `msg` on `endpoint` without waiting for a reply (but waiting for a
/// receiver: IPC is synchronous).
pub fn send(endpoint: Handle, msg: Message) -> Result<(), Error> {
    let mut msg = msg;
    ipc(nr::SEND, endpoint, &mut msg).map(|_| ())
}

/// Waits for a message on `endpoint`; returns its badge and words.
pub fn recv(endpoint: Handle) -> Result<(u64, Message), Error> {
    let mut msg = [0; MSG_WORDS];
    let badge = ipc(nr::RECV, endpoint, &mut msg)?;
    Ok((badge, msg))
}

/// What a `_handle` IPC call received in `r9`: a new handle, none, or one
/// the table had no room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Handle(Handle),
    None,
    Dropped,
}

impl Received {
    fn from_raw(raw: u64) -> Received {
        match raw {
            ferrite_abi::NO_HANDLE => Received::None,
            ferrite_abi::HANDLE_DROPPED => Received::Dropped,
            h => Received::Handle(h),
        }
    }
}

/// The `_handle` IPC calls: registers only, no memory.
fn ipc_handle(nr: u64, endpoint: Handle, msg: &mut Message, pass: Option<Handle>) -> Result<(u64, Received), Error> {
    let mut r9 = pass.unwrap_or(ferrite_abi::NO_HANDLE);
    // SAFETY: IPC system calls touch no user memory; `msg` is ours.
    let value = result(unsafe { syscall_ipc_handle(nr, endpoint, msg, &mut r9) })?;
    Ok((value, Received::from_raw(r9)))
}

/// [`call`] passing `pass` (a copy of it), and taking the reply's handle.
pub fn call_handle(endpoint: Handle, msg: Message, pass: Option<Handle>) -> Result<(Message, Received), Error> {
    let mut msg = msg;
    let (_, got) = ipc_handle(nr::CALL_HANDLE, endpoint, &mut msg, pass)?;
    Ok((msg, got))
}

/// [`send`] passing `pass` (a copy of it).
pub fn send_handle(endpoint: Handle, msg: Message, pass: Option<Handle>) -> Result<(), Error> {
    let mut msg = msg;
    ipc_handle(nr::SEND_HANDLE, endpoint, &mut msg, pass).map(|_| ())
}

/// [`reply_recv`] whose reply passes `pass`, taking the next message's
/// handle.
pub fn reply_recv_handle(
    endpoint: Handle,
    reply: Message,
    pass: Option<Handle>,
) -> Result<(u64, Message, Received), Error> {
    let mut msg = reply;
    let (badge, got) = ipc_handle(nr::REPLY_RECV_HANDLE, endpoint, &mut msg, pass)?;
    Ok((badge, msg, got))
}

/// [`recv`], taking the message's handle.
pub fn recv_handle(endpoint: Handle) -> Result<(u64, Message, Received), Error> {
    let mut msg = [0; MSG_WORDS];
    let (badge, got) = ipc_handle(nr::RECV_HANDLE, endpoint, &mut msg, None)?;
    Ok((badge, msg, got))
}

/// A new notification: a word of bits that [`signal`] sets and
/// [`notify_wait`] takes.
pub fn notification_create() -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::NOTIFICATION_CREATE) })
}

/// ORs `bits` into the notification's word.
pub fn signal(notification: Handle, bits: u64) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall2(nr::SIGNAL, notification, bits) })
}

/// Waits until the notification's word is non-zero, then takes (and clears)
/// it.
pub fn notify_wait(notification: Handle) -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall1(nr::NOTIFY_WAIT, notification) })
}

/// Closes a handle.
pub fn handle_close(handle: Handle) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall1(nr::HANDLE_CLOSE, handle) })
}

/// A new handle to what `handle` names, with `rights` (at most its own, or
/// [`ferrite_abi::rights::SAME`]) and its badge.
pub fn handle_derive(handle: Handle, rights: u64) -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall2(nr::HANDLE_DERIVE, handle, rights) })
}

/// A new handle to the endpoint `handle` names (which has no badge yet),
/// with `rights`, whose messages carry `badge`.
pub fn handle_mint(handle: Handle, rights: u64, badge: u64) -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall3(nr::HANDLE_MINT, handle, rights, badge) })
}

/// The rights `handle` carries.
pub fn handle_rights(handle: Handle) -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall1(nr::HANDLE_RIGHTS, handle) })
}

/// This process's ID: the badge its IPC partners receive.
pub fn pid() -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::PID) })
}

/// Does nothing: the cost of a system call, round trip.
pub fn null() -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall0(nr::NULL) })
}

/// Powers the machine off ([`ferrite_abi::POWER_OFF`]) or resets it
/// ([`ferrite_abi::POWER_RESET`]), with a [`ferrite_abi::resource::SYSTEM`]
/// resource; returns only with an error.
pub fn power(system: Handle, action: u64) -> Result<(), Error> {
    // SAFETY: touches no memory (and, if it works, nothing runs after it).
    unit(unsafe { syscall2(nr::POWER, system, action) })
}

/// Kills a process (its handle needs [`ferrite_abi::rights::KILL`]).
pub fn kill(process: Handle) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall1(nr::KILL, process) })
}

/// A resource handle for `base..base + len` of `resource`'s range.
pub fn resource_narrow(resource: Handle, base: u64, len: u64) -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall3(nr::RESOURCE_NARROW, resource, base, len) })
}

/// A resource's kind ([`ferrite_abi::resource`]), base and length.
pub fn resource_info(resource: Handle) -> Result<[u64; 3], Error> {
    let mut words = [0u64; 3];
    // SAFETY: the kernel writes three words into `words`.
    unit(unsafe { syscall2(nr::RESOURCE_INFO, resource, words.as_mut_ptr().expose_provenance() as u64) })?;
    Ok(words)
}

/// Lets this process use the I/O ports of a [`ferrite_abi::resource::PORTS`]
/// resource.
pub fn ioport_enable(ports: Handle) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall1(nr::IOPORT_ENABLE, ports) })
}

/// Binds the interrupt line of an [`ferrite_abi::resource::IRQ`] resource
/// to `bits` of a notification; returns the interrupt handle.
pub fn irq_bind(irq: Handle, notification: Handle, bits: u64) -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall3(nr::IRQ_BIND, irq, notification, bits) })
}

/// Unmasks a bound interrupt line once its device has been dealt with.
pub fn irq_ack(irq: Handle) -> Result<(), Error> {
    // SAFETY: touches no memory.
    unit(unsafe { syscall1(nr::IRQ_ACK, irq) })
}

/// The time-stamp counter's frequency in Hz, or 0 if the kernel does not
/// know it.
pub fn tsc_hz() -> Result<u64, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall0(nr::TSC_HZ) })
}

/// Fills `out` with the first processes that exist (at most
/// [`ferrite_abi::PROCESS_LIST_MAX`]); returns how many it filled and how
/// many exist. Needs the machine's resource.
pub fn process_list(system: Handle, out: &mut [ProcessInfo]) -> Result<(usize, u64), Error> {
    let max = out.len().min(ferrite_abi::PROCESS_LIST_MAX as usize);
    // SAFETY: the kernel writes at most `max` records into `out`, which is
    // ours; every bit pattern is a valid ProcessInfo.
    let total =
        result(unsafe { syscall3(nr::PROCESS_LIST, system, out.as_mut_ptr().expose_provenance() as u64, max as u64) })?;
    Ok((max.min(total as usize), total))
}

/// A handle (wait and kill) to the process with ID `pid`. Needs the
/// machine's resource.
pub fn process_open(system: Handle, pid: u64) -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall2(nr::PROCESS_OPEN, system, pid) })
}

/// The machine's figures, and those of the first `cpus.len()` online CPUs
/// (filled in order); returns them and how many CPUs are online.
pub fn system_info(system: Handle, cpus: &mut [CpuInfo]) -> Result<(SystemInfo, u64), Error> {
    #[repr(C)]
    struct Out {
        system: SystemInfo,
        cpus: [CpuInfo; 64],
    }
    let mut out = Out { system: SystemInfo::default(), cpus: [CpuInfo::default(); 64] };
    let max = cpus.len().min(64);
    // SAFETY: the kernel writes a SystemInfo and at most `max` CpuInfos
    // into `out`, which is ours and large enough.
    let online = result(unsafe {
        syscall3(nr::SYSTEM_INFO, system, ptr::from_mut(&mut out).expose_provenance() as u64, max as u64)
    })?;
    cpus[..max].copy_from_slice(&out.cpus[..max]);
    Ok((out.system, online))
}

/// A shared memory object of `len` bytes (rounded up to pages), zeroed.
pub fn mem_create(len: u64) -> Result<Handle, Error> {
    // SAFETY: touches no memory.
    result(unsafe { syscall1(nr::MEM_CREATE, len) })
}

/// Maps all of a shared memory object or device memory resource
/// ([`ferrite_abi::map`] flags); returns where. [`unmap`] removes it.
pub fn mem_map(handle: Handle, flags: u64) -> Result<*mut u8, Error> {
    // SAFETY: the kernel maps fresh addresses in the map area, which no
    // Rust object occupies.
    result(unsafe { syscall2(nr::MEM_MAP, handle, flags) }).map(|a| ptr::with_exposed_provenance_mut(a as usize))
}
