//! Processes: an address space, a handle table and user threads.
//!
//! **Life.** A process is made from a boot module (loader.rs) and starts
//! with one thread. It ends when its last thread ends: by `thread_exit`, or
//! because the process is *killed* — by `exit` (any thread), by a fault in
//! any thread, or by a non-canonical return address. Killing sets the exit
//! code (the first one wins) and the `dying` flag, and gets the attention
//! of every thread ([`crate::sched::interrupt`]): a blocked thread wakes
//! and finds its wait cancelled, a running one is interrupted; each then
//! ends itself on its way back to user mode ([`before_user_return`]). The
//! last thread out tears the process down (`finish`): its address space,
//! then its handles, then it wakes whoever waits for it. The `Process`
//! itself lives on, with its exit code, while a parent has a handle to it.
//!
//! **Quotas.** Each process has an account (quota.rs) under its parent's:
//! its memory, threads and children are charged there (and to every
//! ancestor) before they are taken, and given back when they go. The
//! process itself counts as one of its parent's processes until it is
//! freed (waited for, or its handle closed).
//!
//! **Lock order.** A process's thread list, then a run queue; handle
//! tables and address-space locks are leaves (but for the heap's lock,
//! when a table grows).
pub mod handle;
mod loader;
mod thread;

pub use loader::start_init;
pub use loader::user_entry_frame;
pub use thread::{
    before_user_return, boot_to_first_user_ticks, end_current_thread, kill_for_bad_return, switch_hook, user_fault,
    UserThread,
};

use crate::mem::aspace::AddressSpace;
use crate::quota::{Account, Charge, Resource};
use crate::sched::thread::Thread;
use crate::sched::wait::WaitQueue;
use crate::sync::IrqSpinlock;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ferrite_abi::{Error, MAX_THREADS};
use handle::{Handle, HandleTable, Object};

static NEXT_PID: AtomicU64 = AtomicU64::new(1);
/// Processes that exist (made and not yet freed), for the leak checks.
static LIVE: AtomicU64 = AtomicU64::new(0);

pub fn live_processes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

pub struct Process {
    pub id: u64,
    /// The process that started it (0: the kernel).
    pub parent: u64,
    /// The boot module it runs.
    pub name: String,
    pub aspace: AddressSpace,
    pub handles: IrqSpinlock<HandleTable>,
    /// Its live threads (those that started and have not ended).
    threads: IrqSpinlock<Vec<Arc<Thread>>>,
    /// Killed: every thread ends at its next return to user mode.
    dying: AtomicBool,
    /// The exit code once set (by `exit`, a fault, or the last thread).
    code: IrqSpinlock<Option<u64>>,
    /// Set, after the teardown, when the last thread has gone.
    exited: AtomicBool,
    exit_waiters: WaitQueue,
    /// What it, with its descendants, may hold and holds (quota.rs).
    pub account: Arc<Account>,
    /// The I/O ports it may use (device.rs).
    pub io_ports: crate::device::IoPorts,
    /// CPU time of its threads that have ended.
    ended_threads_ns: AtomicU64,
    /// Its first thread has been started: only then may `process_open`
    /// reach it (one caught while being loaded, and killed, would never
    /// finish, and its handles would live as long as the opener's).
    started: AtomicBool,
    /// Its place among its parent's processes: given back once it has
    /// ended and its parent holds no handle to it any more ([`Slot`]).
    slot: IrqSpinlock<Slot>,
    /// The memory its own structures take, given back when it is freed.
    _memory: Charge,
}

/// A process's place among its parent's processes, and the two things
/// that free it: the end of the process, and the close of the last handle
/// to it. Whichever comes second gives the place back, at once: a parent
/// whose `wait` returned can start another child in its place, even while
/// the child's last thread is still on its way off a CPU (and holds the
/// `Process` until then).
struct Slot {
    counted: Option<Charge>,
    ended: bool,
    handles: u64,
}

impl Process {
    /// A process named `name` with `account`, counted as one of `parent`'s
    /// processes (its ID and account; None: started by the kernel).
    fn new(name: &str, account: Arc<Account>, parent: Option<(u64, &Arc<Account>)>) -> Result<Arc<Process>, Error> {
        let counted = parent.map(|(_, p)| p.take(Resource::Processes, 1)).transpose()?;
        let (memory, room) = account.take_bytes(crate::quota::object_bytes::<Process>() + name.len() as u64)?;
        let aspace = AddressSpace::new(account.clone()).map_err(|_| Error::NoMemory)?;
        // Room for its entry in the list of processes too.
        let mut list = PROCESSES.lock();
        list.try_reserve(1).map_err(|_| Error::NoMemory)?;
        LIVE.fetch_add(1, Ordering::Relaxed);
        let _room = room;
        let process = Arc::new(Process {
            id: NEXT_PID.fetch_add(1, Ordering::Relaxed),
            parent: parent.map_or(0, |(pid, _)| pid),
            name: String::from(name),
            aspace,
            handles: IrqSpinlock::new(HandleTable::new(account.clone())),
            threads: IrqSpinlock::new(Vec::new()),
            dying: AtomicBool::new(false),
            code: IrqSpinlock::new(None),
            exited: AtomicBool::new(false),
            exit_waiters: WaitQueue::new(),
            account,
            io_ports: crate::device::IoPorts::new(),
            ended_threads_ns: AtomicU64::new(0),
            started: AtomicBool::new(false),
            slot: IrqSpinlock::new(Slot { counted, ended: false, handles: 0 }),
            _memory: memory,
        });
        list.push((process.id, Arc::downgrade(&process)));
        Ok(process)
    }

    /// Killed (or ending). SeqCst: a thread going to sleep reads it after
    /// it marks itself blocked, and a kill sets it before it wakes the
    /// threads (`sched::block_unless`).
    pub fn dying(&self) -> bool {
        self.dying.load(Ordering::SeqCst)
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// The exit code, once the process has ended.
    pub fn exit_code(&self) -> Option<u64> {
        if self.has_exited() {
            *self.code.lock()
        } else {
            None
        }
    }

    /// Starts a user thread of this process at `frame` (user mode state),
    /// unless the process is dying or already has [`MAX_THREADS`] threads.
    pub fn start_thread(self: &Arc<Self>, frame: crate::arch::trap::TrapFrame) -> Result<Arc<Thread>, Error> {
        let t = self.prepare_thread(frame, crate::sched::thread::ANY_CPU)?;
        self.launch_thread(&t)?;
        Ok(t)
    }

    /// Makes a thread of this process that will enter user mode at
    /// `frame`, with `affinity`, without starting it
    /// ([`Process::launch_thread`]).
    pub fn prepare_thread(
        self: &Arc<Self>,
        frame: crate::arch::trap::TrapFrame,
        affinity: u32,
    ) -> Result<Arc<Thread>, Error> {
        thread::create(self.clone(), frame, affinity)
    }

    /// Starts a thread made by [`Process::prepare_thread`], unless the
    /// process is dying or already has [`MAX_THREADS`] threads.
    pub fn launch_thread(&self, t: &Arc<Thread>) -> Result<(), Error> {
        {
            let mut threads = self.threads.lock();
            if self.dying() {
                return Err(Error::PeerGone);
            }
            if threads.len() as u64 >= MAX_THREADS {
                return Err(Error::NoMemory);
            }
            // Listed before it can run, so that a kill finds it.
            threads.try_reserve(1).map_err(|_| Error::NoMemory)?;
            threads.push(t.clone());
        }
        if let Err(e) = crate::sched::start(t.clone()) {
            self.threads.lock().retain(|x| !Arc::ptr_eq(x, t));
            log::error!("user: cannot place a thread of '{}' (pid {}): {e}", self.name, self.id);
            return Err(Error::NoMemory);
        }
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether a thread of it has been started.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Kills the process with exit code `code` (unless an earlier kill or
    /// `exit` set one): every thread ends at its next chance. Returns at
    /// once; the caller, if it is one of the threads, ends itself.
    pub fn kill(&self, code: u64) {
        self.code.lock().get_or_insert(code);
        self.dying.store(true, Ordering::SeqCst);
        // Under the list's lock (a run queue's lock nests inside it), so
        // that a kill builds no list of its own: it cannot run out of
        // memory.
        for t in self.threads.lock().iter() {
            crate::sched::interrupt(t);
        }
    }

    /// Waits until the process has ended or `cancelled()` holds; returns
    /// its exit code, or None if cancelled.
    pub fn wait(&self, cancelled: impl Fn() -> bool) -> Option<u64> {
        self.exit_waiters.wait_until(|| self.has_exited() || cancelled());
        self.exit_code()
    }

    /// A thread of the process is ending with `code`; returns true if it
    /// was the last one.
    fn thread_ended(&self, t: &Thread, code: u64) -> bool {
        self.ended_threads_ns.fetch_add(crate::sched::runtime_ns(t), Ordering::Relaxed);
        let mut threads = self.threads.lock();
        threads.retain(|x| !core::ptr::eq(&**x, t));
        if threads.is_empty() {
            // Nothing can start a thread any more: only threads do that.
            self.dying.store(true, Ordering::SeqCst);
            self.code.lock().get_or_insert(code);
            true
        } else {
            false
        }
    }

    /// The last thread is leaving: free everything, then tell the waiters.
    fn finish(&self) {
        self.aspace.teardown();
        // Dropped outside the lock: a handle may hold the last reference to
        // another process, whose drop takes locks of its own.
        let objects = self.handles.lock().take_all();
        drop(objects);
        self.exited.store(true, Ordering::Release);
        let freed = {
            let mut slot = self.slot.lock();
            slot.ended = true;
            if slot.handles == 0 {
                slot.counted.take()
            } else {
                None
            }
        };
        drop(freed);
        self.exit_waiters.wake_all();
        log::debug!(
            "user: process '{}' (pid {}) ended with code {:#x}",
            self.name,
            self.id,
            self.code.lock().unwrap_or(0)
        );
    }

    /// A handle to the process was made (handle.rs).
    pub fn handle_made(&self) {
        self.slot.lock().handles += 1;
    }

    /// A handle to the process is gone: the last one, once the process has
    /// ended, gives its place among its parent's processes back.
    pub fn handle_gone(&self) {
        let freed = {
            let mut slot = self.slot.lock();
            slot.handles -= 1;
            if slot.handles == 0 && slot.ended {
                slot.counted.take()
            } else {
                None
            }
        };
        drop(freed);
    }

    /// Adds `handle` to the handle table (a slot more, if the table must
    /// grow, charged to the account).
    pub fn add_handle(&self, handle: Handle) -> Result<u64, Error> {
        let inserted = self.handles.lock().insert(handle);
        // A handle the table refused drops here, outside its lock (see
        // `finish`).
        inserted.map_err(|(e, _refused)| e)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        PROCESSES.lock().retain(|(pid, _)| *pid != self.id);
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every process that exists, by ID (in the order they were made, which
/// is the order of their IDs), for `process_list` and `process_open`.
static PROCESSES: IrqSpinlock<Vec<(u64, Weak<Process>)>> = IrqSpinlock::new(Vec::new());

/// The processes that exist, in the order of their IDs, at most `max` of them, and
/// how many exist in all.
pub fn list(max: usize) -> (Vec<Arc<Process>>, usize) {
    let mut found = Vec::new();
    if found.try_reserve(max).is_err() {
        return (Vec::new(), 0);
    }
    let list = PROCESSES.lock();
    found.extend(list.iter().filter_map(|(_, p)| p.upgrade()).take(max));
    let total = list.len();
    drop(list);
    (found, total)
}

/// The process with ID `pid`, if it exists.
pub fn find(pid: u64) -> Option<Arc<Process>> {
    let list = PROCESSES.lock();
    let at = list.binary_search_by_key(&pid, |(id, _)| *id).ok()?;
    list[at].1.upgrade()
}

impl Process {
    /// What `process_list` says about it.
    pub fn info(&self) -> ferrite_abi::ProcessInfo {
        let (threads, running_ns) = {
            let threads = self.threads.lock();
            (threads.len() as u64, threads.iter().map(|t| crate::sched::runtime_ns(t)).sum::<u64>())
        };
        let mut name = [0u8; ferrite_abi::PROCESS_NAME_LEN];
        let len = self.name.len().min(name.len());
        name[..len].copy_from_slice(&self.name.as_bytes()[..len]);
        ferrite_abi::ProcessInfo {
            pid: self.id,
            parent: self.parent,
            threads,
            memory: self.account.used(Resource::Memory),
            cpu_ns: self.ended_threads_ns.load(Ordering::Relaxed) + running_ns,
            ended: u64::from(self.has_exited()),
            name,
        }
    }
}

/// Starts the boot module `name` with `args` and these initial handles, on
/// an account of its own with the default limits; returns the new
/// process. The caller gets a handle to it, or not (init).
pub fn spawn(name: &str, args: &str, handles: Vec<Handle>) -> Result<Arc<Process>, Error> {
    let (process, frame) = loader::load(name, args, handles, Account::root(), None)?;
    process.start_thread(frame)?;
    Ok(process)
}

/// Like [`spawn`], for a child of `parent` with `limits` (None: the
/// parent's), whose use is charged to the parent's account too; and the
/// process's handle is put into `parent`'s table before the child runs (so
/// that a full table refuses the spawn instead of leaving a child no one
/// can wait for).
pub fn spawn_child(
    parent: &Process,
    name: &str,
    args: &str,
    handles: Vec<Handle>,
    limits: Option<ferrite_abi::Limits>,
) -> Result<u64, Error> {
    let account = Account::child(&parent.account, limits)?;
    let (process, frame) = loader::load(name, args, handles, account, Some((parent.id, &parent.account)))?;
    let handle =
        parent.add_handle(Handle::new(Object::Process(process.clone()), ferrite_abi::rights::PROCESS, None))?;
    if let Err(e) = process.start_thread(frame) {
        // Dropped outside the lock (see `finish`).
        let removed = parent.handles.lock().remove(handle);
        drop(removed);
        return Err(e);
    }
    Ok(handle)
}
