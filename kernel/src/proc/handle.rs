//! Handle tables: what a process may name in its system calls, and with
//! which rights.
//!
//! A handle is an index into its process's own table. The table holds
//! strong references, so an object lives as long as some process has a
//! handle to it (or a thread is using it in a system call). A process has
//! no way to name an object it was not given: there is no global
//! namespace, and the table is looked up with the caller's process only.
//!
//! **Rights** travel with each handle (ferrite_abi::rights) and are
//! checked in one place, [`HandleTable::lookup`]: a system call asks for
//! the kind of object and the right it needs, and gets the object only if
//! the handle carries both. A derived handle never has more rights than
//! its source; an endpoint handle may carry a badge, which its messages
//! carry to the receiver.
//!
//! **Process handles** are counted by their process in the same way: the
//! process gives its place among its parent's processes back once it has
//! ended and the last handle to it is gone (proc's `Slot`).
//!
//! **Receivers.** Every handle with the right to receive on an endpoint is
//! counted by the endpoint while it exists ([`Handle`]'s constructor and
//! `Drop`), so the endpoint knows when nobody can ever receive on it again
//! and fails its senders instead of keeping them waiting (ipc::endpoint).
use crate::device::{self, IrqLine};
use crate::ipc::{Endpoint, Notification};
use crate::proc::Process;
use crate::quota::{Account, Resource};
use crate::sched::thread::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ferrite_abi::{rights, Error};

/// What a handle names.
#[derive(Clone)]
pub enum Object {
    Endpoint(Arc<Endpoint>),
    Notification(Arc<Notification>),
    /// A thread of the same process (from `thread_spawn`), for `thread_join`.
    Thread(Arc<Thread>),
    /// A child process (from `spawn`), for `wait` and `kill`.
    Process(Arc<Process>),
    /// Device rights (device.rs).
    Resource(device::Resource),
    /// Shared memory (mem::shared).
    Memory(Arc<crate::mem::shared::MemObject>),
    /// A bound interrupt line (from `irq_bind`), for `irq_ack`.
    Irq(Arc<IrqLine>),
}

impl Object {
    /// Whether a handle to it may be passed to another process at all: IPC
    /// objects and resources may (with the right to); threads, processes
    /// and bound lines are their owner's business.
    pub fn transferable(&self) -> bool {
        matches!(self, Object::Endpoint(_) | Object::Notification(_) | Object::Resource(_) | Object::Memory(_))
    }
}

/// One entry of a handle table: an object, the rights to it, and for an
/// endpoint the badge its messages carry (None: the sender's process ID).
pub struct Handle {
    object: Object,
    rights: u64,
    badge: Option<u64>,
}

impl Handle {
    pub fn new(object: Object, rights: u64, badge: Option<u64>) -> Handle {
        match &object {
            Object::Endpoint(e) if rights & rights::RECEIVE != 0 => e.receive_handle_made(),
            Object::Process(p) => p.handle_made(),
            _ => {}
        }
        Handle { object, rights, badge }
    }

    pub fn object(&self) -> &Object {
        &self.object
    }

    pub fn rights(&self) -> u64 {
        self.rights
    }

    pub fn badge(&self) -> Option<u64> {
        self.badge
    }

    /// A handle to the same object with `wanted` rights ([`rights::SAME`]
    /// or a subset of this one's) and `badge` (None: this one's).
    pub fn derive(&self, wanted: u64, badge: Option<u64>) -> Result<Handle, Error> {
        let rights = match wanted {
            rights::SAME => self.rights,
            r if r & !self.rights != 0 => return Err(Error::NoRights),
            r => r,
        };
        Ok(Handle::new(self.object.clone(), rights, badge.or(self.badge)))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        match &self.object {
            Object::Endpoint(e) if self.rights & rights::RECEIVE != 0 => e.receive_handle_gone(),
            Object::Process(p) => p.handle_gone(),
            _ => {}
        }
    }
}

pub struct HandleTable {
    slots: Vec<Option<Handle>>,
    open: usize,
    /// Open handles allowed (`Limits::handles`).
    limit: u64,
    /// Whom the table's slots are charged to, and how many bytes.
    account: Arc<Account>,
    charged: u64,
}

impl HandleTable {
    pub fn new(account: Arc<Account>) -> Self {
        let limit = account.limits().handles;
        HandleTable { slots: Vec::new(), open: 0, limit, account, charged: 0 }
    }

    /// Adds `handle` at the lowest free index. A full table gives the
    /// handle back with the error, so that the caller drops it outside the
    /// table's lock. Slots the table grows by are charged to its account.
    pub fn insert(&mut self, handle: Handle) -> Result<u64, (Error, Handle)> {
        if self.open as u64 >= self.limit {
            return Err((Error::NoMemory, handle));
        }
        let index = match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                if let Err(e) = self.grow() {
                    return Err((e, handle));
                }
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[index] = Some(handle);
        self.open += 1;
        Ok(index as u64)
    }

    /// Room for one more slot: the table doubles, and pays for it first.
    fn grow(&mut self) -> Result<(), Error> {
        let capacity = self.slots.capacity();
        if self.slots.len() < capacity {
            return Ok(());
        }
        let more = capacity.max(4);
        let bytes = (more * core::mem::size_of::<Option<Handle>>()) as u64;
        let _room = self.account.charge_heap(bytes)?;
        if self.slots.try_reserve_exact(more).is_err() {
            self.account.uncharge(Resource::Memory, bytes);
            return Err(Error::NoMemory);
        }
        // Held until the table goes (take_all, Drop).
        self.charged += bytes;
        Ok(())
    }

    /// Handles open now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// The handle `number`, whatever it names.
    pub fn get(&self, number: u64) -> Result<&Handle, Error> {
        usize::try_from(number).ok().and_then(|i| self.slots.get(i)?.as_ref()).ok_or(Error::BadHandle)
    }

    /// The one place rights are checked: the object of handle `number` as
    /// `kind` extracts it (None: the wrong kind, [`Error::BadHandle`]),
    /// provided the handle has every right in `need` ([`Error::NoRights`]).
    pub fn lookup<T>(&self, number: u64, need: u64, kind: impl FnOnce(&Handle) -> Option<T>) -> Result<T, Error> {
        let handle = self.get(number)?;
        let found = kind(handle).ok_or(Error::BadHandle)?;
        if handle.rights & need != need {
            return Err(Error::NoRights);
        }
        Ok(found)
    }

    /// An endpoint and the badge its messages through this handle carry.
    pub fn endpoint(&self, number: u64, need: u64) -> Result<(Arc<Endpoint>, Option<u64>), Error> {
        self.lookup(number, need, |h| match &h.object {
            Object::Endpoint(e) => Some((e.clone(), h.badge)),
            _ => None,
        })
    }

    pub fn notification(&self, number: u64, need: u64) -> Result<Arc<Notification>, Error> {
        self.lookup(number, need, |h| match &h.object {
            Object::Notification(n) => Some(n.clone()),
            _ => None,
        })
    }

    pub fn thread(&self, number: u64, need: u64) -> Result<Arc<Thread>, Error> {
        self.lookup(number, need, |h| match &h.object {
            Object::Thread(t) => Some(t.clone()),
            _ => None,
        })
    }

    pub fn process(&self, number: u64, need: u64) -> Result<Arc<Process>, Error> {
        self.lookup(number, need, |h| match &h.object {
            Object::Process(p) => Some(p.clone()),
            _ => None,
        })
    }

    /// A resource of `kind` (ferrite_abi::resource).
    pub fn resource(&self, number: u64, kind: u64, need: u64) -> Result<device::Resource, Error> {
        self.lookup(number, need, |h| match &h.object {
            Object::Resource(r) if r.kind == kind => Some(*r),
            _ => None,
        })
    }

    pub fn irq(&self, number: u64, need: u64) -> Result<Arc<IrqLine>, Error> {
        self.lookup(number, need, |h| match &h.object {
            Object::Irq(l) => Some(l.clone()),
            _ => None,
        })
    }

    pub fn remove(&mut self, number: u64) -> Result<Handle, Error> {
        let slot = usize::try_from(number).ok().and_then(|i| self.slots.get_mut(i)).ok_or(Error::BadHandle)?;
        let handle = slot.take().ok_or(Error::BadHandle)?;
        self.open -= 1;
        Ok(handle)
    }

    /// Empties the table, handing back what it held (for the caller to drop
    /// once no lock is held), and gives its slots' memory back.
    pub fn take_all(&mut self) -> Vec<Option<Handle>> {
        self.open = 0;
        self.account.uncharge(Resource::Memory, core::mem::take(&mut self.charged));
        core::mem::take(&mut self.slots)
    }
}

impl Drop for HandleTable {
    fn drop(&mut self) {
        self.account.uncharge(Resource::Memory, self.charged);
    }
}
