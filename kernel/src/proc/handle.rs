//! Handle tables: what a process may name in its system calls.
//!
//! A handle is an index into its process's own table. The table holds
//! strong references, so an object lives as long as some process has a
//! handle to it (or a thread is using it in a system call). A process has
//! no way to name an object it was not given: there is no global
//! namespace, and the table is looked up with the caller's process only.
use crate::ipc::{Endpoint, Notification};
use crate::proc::Process;
use crate::sched::thread::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ferrite_abi::{Error, MAX_HANDLES};

/// What a handle names.
#[derive(Clone)]
pub enum Object {
    Endpoint(Arc<Endpoint>),
    Notification(Arc<Notification>),
    /// A thread of the same process (from `thread_spawn`), for `thread_join`.
    Thread(Arc<Thread>),
    /// A child process (from `spawn`), for `wait`.
    Process(Arc<Process>),
}

impl Object {
    /// Whether a handle to it may be passed to another process: IPC
    /// objects may; threads and processes are their owner's business.
    pub fn transferable(&self) -> bool {
        matches!(self, Object::Endpoint(_) | Object::Notification(_))
    }
}

#[derive(Default)]
pub struct HandleTable {
    slots: Vec<Option<Object>>,
    open: usize,
}

impl HandleTable {
    pub const fn new() -> Self {
        HandleTable { slots: Vec::new(), open: 0 }
    }

    /// Adds `object` at the lowest free index.
    pub fn insert(&mut self, object: Object) -> Result<u64, Error> {
        if self.open as u64 >= MAX_HANDLES {
            return Err(Error::NoMemory);
        }
        let index = match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.slots.try_reserve(1).map_err(|_| Error::NoMemory)?;
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[index] = Some(object);
        self.open += 1;
        Ok(index as u64)
    }

    pub fn get(&self, handle: u64) -> Result<&Object, Error> {
        usize::try_from(handle).ok().and_then(|i| self.slots.get(i)?.as_ref()).ok_or(Error::BadHandle)
    }

    pub fn remove(&mut self, handle: u64) -> Result<Object, Error> {
        let slot = usize::try_from(handle).ok().and_then(|i| self.slots.get_mut(i)).ok_or(Error::BadHandle)?;
        let object = slot.take().ok_or(Error::BadHandle)?;
        self.open -= 1;
        Ok(object)
    }

    /// Empties the table, handing back what it held (for the caller to drop
    /// once no lock is held).
    pub fn take_all(&mut self) -> Vec<Object> {
        self.open = 0;
        core::mem::take(&mut self.slots).into_iter().flatten().collect()
    }
}
