//! Shared memory objects (`mem_create`): zeroed frames that several
//! address spaces may map (`mem_map`), charged to the process that made
//! them and freed when the last handle and the last mapping are gone (each
//! holds an `Arc`; mem::aspace's regions keep theirs until their entries
//! are cleared and shot down).
use super::{frames, phys_to_virt, PAGE_SIZE};
use crate::quota::{Account, Resource};
use alloc::sync::Arc;
use alloc::vec::Vec;
use ferrite_abi::Error;

pub struct MemObject {
    frames: Vec<u64>,
    /// Whom its frames and its list are charged to, and how much.
    account: Arc<Account>,
    charged: u64,
}

impl MemObject {
    /// `pages` zeroed pages charged to `account`.
    pub fn new(pages: u64, account: &Arc<Account>) -> Result<Arc<MemObject>, Error> {
        let list = pages * 8 + crate::quota::object_bytes::<MemObject>();
        let charged = pages * PAGE_SIZE + list;
        account.charge(Resource::Memory, pages * PAGE_SIZE)?;
        let room = match account.charge_heap(list) {
            Ok(room) => room,
            Err(e) => {
                account.uncharge(Resource::Memory, pages * PAGE_SIZE);
                return Err(e);
            }
        };
        let fail = |frames: Vec<u64>| {
            frames.iter().for_each(|&f| frames::free(f));
            account.uncharge(Resource::Memory, charged);
            Error::NoMemory
        };
        let mut taken = Vec::new();
        if taken.try_reserve_exact(pages as usize).is_err() {
            return Err(fail(taken));
        }
        let Some(mut claim) = frames::claim(pages) else { return Err(fail(taken)) };
        for _ in 0..pages {
            let Some(frame) = claim.take() else { return Err(fail(taken)) };
            // SAFETY: a free frame, ours alone, through the direct map.
            unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, PAGE_SIZE as usize) };
            taken.push(frame);
        }
        let object = Arc::new(MemObject { frames: taken, account: account.clone(), charged });
        drop(room);
        Ok(object)
    }

    pub fn pages(&self) -> u64 {
        self.frames.len() as u64
    }

    /// The physical address of page `i` (below [`MemObject::pages`]).
    pub fn frame(&self, i: u64) -> u64 {
        self.frames[i as usize]
    }
}

impl Drop for MemObject {
    fn drop(&mut self) {
        self.frames.iter().for_each(|&f| frames::free(f));
        self.account.uncharge(Resource::Memory, self.charged);
    }
}
