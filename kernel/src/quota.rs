//! Quotas: what a process, with everything it started, may hold.
//!
//! Every process has an [`Account`], and every account but the kernel's
//! roots has a parent: the account of the process that spawned it. Taking
//! a resource charges the process's own account *and every ancestor's*,
//! each against its own limit, so a child can never take more than its
//! parent may, and a parent that gives a child smaller limits
//! (`spawn`'s `limits`) keeps that child from starving the rest of the
//! parent's tree: the pattern of Zircon's jobs, with seL4's rule that
//! kernel memory made for a program is charged before it is taken.
//!
//! Charges are taken before the thing they pay for exists and given back
//! when it goes: through a [`Charge`], which gives its amount back when it
//! drops (kernel objects, threads, processes), or, for memory that comes
//! and goes page by page (an address space's), by the owner calling
//! [`Account::uncharge`] for what it frees.
//!
//! Handles are limited per table ([`ferrite_abi::Limits::handles`]), not
//! per tree: a handle table is one process's.
use crate::mem::heap::Room;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use ferrite_abi::{Error, Limits};

/// What an account limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Bytes.
    Memory,
    Threads,
    Processes,
}

const RESOURCES: usize = 3;

impl Resource {
    const fn index(self) -> usize {
        self as usize
    }
}

pub struct Account {
    parent: Option<Arc<Account>>,
    limits: Limits,
    used: [AtomicU64; RESOURCES],
}

impl Account {
    /// The account of a process the kernel starts: the default limits.
    pub fn root() -> Arc<Account> {
        Account::new(None, Limits::DEFAULT)
    }

    /// A child's account under `parent`, with `limits` (None: the parent's
    /// own). A limit above the parent's is [`Error::BadArgument`]: the
    /// child could never use it, and asking for it is a mistake.
    pub fn child(parent: &Arc<Account>, limits: Option<Limits>) -> Result<Arc<Account>, Error> {
        let mine = parent.limits;
        let limits = limits.unwrap_or(mine);
        if limits.memory > mine.memory
            || limits.threads > mine.threads
            || limits.processes > mine.processes
            || limits.handles > mine.handles
        {
            return Err(Error::BadArgument);
        }
        Ok(Account::new(Some(parent.clone()), limits))
    }

    fn new(parent: Option<Arc<Account>>, limits: Limits) -> Arc<Account> {
        Arc::new(Account { parent, limits, used: [const { AtomicU64::new(0) }; RESOURCES] })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn limit(&self, r: Resource) -> u64 {
        match r {
            Resource::Memory => self.limits.memory,
            Resource::Threads => self.limits.threads,
            Resource::Processes => self.limits.processes,
        }
    }

    /// What this account (its process and every descendant) holds now.
    pub fn used(&self, r: Resource) -> u64 {
        self.used[r.index()].load(Ordering::Relaxed)
    }

    /// Charges `amount` of `r` to this account and every ancestor, each
    /// within its limit; nothing is charged if one of them would go over
    /// ([`Error::NoMemory`]). Lock-free: each account's count moves by a
    /// compare-and-swap that checks the limit, so two charges on two CPUs
    /// can never both pass a limit they together exceed.
    pub fn charge(&self, r: Resource, amount: u64) -> Result<(), Error> {
        let mut at = Some(self);
        while let Some(account) = at {
            let fits = account.used[r.index()].fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(amount).filter(|&total| total <= account.limit(r))
            });
            if fits.is_err() {
                // Give back what the accounts below this one took.
                let mut back = Some(self);
                while let Some(b) = back.filter(|b| !core::ptr::eq(*b, account)) {
                    b.used[r.index()].fetch_sub(amount, Ordering::AcqRel);
                    back = b.parent.as_deref();
                }
                return Err(Error::NoMemory);
            }
            at = account.parent.as_deref();
        }
        Ok(())
    }

    /// Gives back `amount` of `r` charged earlier, here and in every
    /// ancestor.
    pub fn uncharge(&self, r: Resource, amount: u64) {
        let mut at = Some(self);
        while let Some(account) = at {
            let before = account.used[r.index()].fetch_sub(amount, Ordering::AcqRel);
            debug_assert!(before >= amount, "quota: more {r:?} given back than taken");
            at = account.parent.as_deref();
        }
    }

    /// [`Account::charge`], as a [`Charge`] that gives the amount back
    /// when it drops.
    pub fn take(self: &Arc<Self>, r: Resource, amount: u64) -> Result<Charge, Error> {
        self.charge(r, amount)?;
        Ok(Charge { account: self.clone(), resource: r, amount })
    }

    /// The bytes of a kernel object of type `T` made for this account's
    /// process, charged (with the allocator's share and the reference
    /// counts of an `Arc`), and room for it made in the kernel heap within
    /// what programs may take ([`crate::mem::heap::make_room`]): allocate
    /// it while the [`Room`] lives.
    pub fn take_object<T>(self: &Arc<Self>) -> Result<(Charge, Room), Error> {
        self.take_bytes(object_bytes::<T>())
    }

    /// [`Account::take_object`] for `bytes` of kernel heap.
    pub fn take_bytes(self: &Arc<Self>, bytes: u64) -> Result<(Charge, Room), Error> {
        let room = self.charge_heap(bytes)?;
        Ok((Charge { account: self.clone(), resource: Resource::Memory, amount: bytes }, room))
    }

    /// Charges `bytes` of kernel heap and makes room for them (see
    /// [`Account::take_object`]); the caller gives them back with
    /// [`Account::uncharge`].
    pub fn charge_heap(&self, bytes: u64) -> Result<Room, Error> {
        self.charge(Resource::Memory, bytes)?;
        crate::mem::heap::make_room(bytes).map_err(|_| {
            self.uncharge(Resource::Memory, bytes);
            Error::NoMemory
        })
    }
}

/// What a `T` in an `Arc` costs the heap: the value, two reference
/// counts, rounded up to the allocator's 16-byte granule.
pub const fn object_bytes<T>() -> u64 {
    ((core::mem::size_of::<T>() + 16 + 15) & !15) as u64
}

/// A charge to an account, given back when it drops.
pub struct Charge {
    account: Arc<Account>,
    resource: Resource,
    amount: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.uncharge(self.resource, self.amount);
    }
}
