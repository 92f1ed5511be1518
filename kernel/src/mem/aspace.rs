//! User address spaces: one set of page tables per process, sharing the
//! kernel half.
//!
//! **Layout.** The lower half belongs to the process: its program (loaded
//! at the addresses its ELF file names, from 0x400000 usually), memory from
//! `map` in [`MAP_BASE`]..[`MAP_END`], and its first stack just below
//! [`STACK_TOP`]. Page 0 and the last page below the non-canonical hole are
//! never mapped (`ferrite_abi::USER_START`/`USER_END`). The upper half is
//! the kernel's: a new address space copies the kernel PML4's 256 upper
//! entries, and since every one of those already points at its own
//! page-directory-pointer table (mem::paging), kernel mappings made later
//! show up in every address space without touching them.
//!
//! **Permissions.** User pages are user-accessible, writable only if asked,
//! and NX unless they hold code; no page is both writable and executable
//! (the ELF loader refuses such segments, `map` never makes code). The
//! intermediate tables are always user-accessible and writable, so the leaf
//! entry alone decides.
//!
//! **Which CPUs may cache it.** A CPU that loads an address space adds
//! itself to its `active` set before it writes CR3, and removes itself when
//! it loads another one. A CPU that switches to a kernel thread (its idle
//! thread, say) keeps the user address space loaded, *lazily* (the kernel
//! half is the same everywhere), so switching back costs nothing; it stays
//! in the active set meanwhile.
//!
//! **Unmapping** clears the page-table entries, bumps the address space's
//! `generation`, and shoots the pages down (arch::tlb) on the CPUs of the
//! active set that run a thread of it *now* (`PerCpu::user_running`). A
//! lazy CPU gets no IPI: it runs only kernel code, which never touches user
//! pages, and before it runs a thread of this address space again it
//! compares the generation with the one its TLB reflects
//! (`PerCpu::tlb_generation_seen`) and flushes if they differ (Linux skips
//! lazy CPUs the same way). The two sides pair up: the unmapper bumps the
//! generation, then reads `user_running`; a CPU going back to user mode
//! sets `user_running`, then reads the generation (all SeqCst), so one of
//! them sees the other. A CPU that joins the active set later loads CR3
//! after the change and cannot cache the old entries at all. Freeing page
//! tables is different: a lazy CPU's page walker could still read them, so
//! teardown asks every CPU in the set (below).
//!
//! **Teardown.** When its process ends, an address space is marked dead
//! (from then on `activate` loads the kernel's tables instead, so the
//! thread doing the teardown may be preempted and moved), left by this
//! CPU, then by every CPU in its active set (a shootdown request that
//! makes those that still have it loaded switch to the kernel's tables),
//! and only then are its frames and tables freed, with interrupts on.
//!
//! **Foreign frames.** `mem_map` maps frames the address space does not
//! own: a shared memory object's (mem::shared), which the region keeps
//! alive through its `Backing`, or device memory. Their entries carry the
//! software bit [`FOREIGN`], and unmapping or teardown never frees (nor
//! uncharges) such a frame; the region's backing goes only after its
//! entries are cleared and shot down, so the last unmap of a shared object
//! frees its frames only once no CPU can reach them.
//!
//! **Memory and quotas.** Every page and page table an address space holds
//! is charged to its process's account (quota.rs) before it is taken, and
//! its frames come from a [`frames::Claim`] made first, so that the check
//! against the kernel's reserve and the taking are one step however many
//! CPUs map at once. What is charged is given back as pages are unmapped,
//! and the rest at teardown.
//!
//! **Bounded work with interrupts off.** `map` allocates and zeroes its
//! frames [`CHUNK`] pages at a time with interrupts on and no lock held,
//! and takes the address space's lock (which disables interrupts) only to
//! write each chunk's entries; `unmap` clears at most [`UNMAP_CHUNK`]
//! entries per lock hold, then shoots those down and frees them. Neither allocates:
//! a failed `map` cleans up with the same `unmap`, on a fixed buffer.
use super::{frames, phys_to_virt, PAGE_SIZE, PHYS_OFFSET};
use crate::arch::ipi::AtomicCpuSet;
use crate::error::KernelError;
use crate::percpu;
use crate::quota::{Account, Resource};
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::TranslateResult;
use x86_64::structures::paging::mapper::{MapToError, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

pub use ferrite_abi::{USER_END, USER_START};

/// Where `map` places memory.
pub const MAP_BASE: u64 = 0x0000_1000_0000_0000;
pub const MAP_END: u64 = 0x0000_7000_0000_0000;
/// The top of a program's first stack; the page above it stays unmapped,
/// and so does everything below the stack.
pub const STACK_TOP: u64 = 0x0000_7fff_fe00_0000;

const _: () = assert!(ferrite_kcore::elf::USER_START == USER_START && ferrite_kcore::elf::USER_END == USER_END);
const _: () = assert!(MAP_END <= STACK_TOP && STACK_TOP < USER_END);

/// What user code may do with a page besides reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub execute: bool,
}

/// Pages `map` prepares per hold of the address space's lock (64 KiB:
/// their entries, and the page tables they need, zeroed), and `unmap`
/// clears per hold (256 KiB: entries only); each a few microseconds on
/// hardware.
pub const CHUNK: usize = 16;
pub const UNMAP_CHUNK: usize = 64;
/// Mappings (`map` regions, after splits) an address space may hold.
pub const MAX_REGIONS: usize = 65536;

pub struct AddressSpace {
    /// Physical address of the PML4.
    root: u64,
    inner: IrqSpinlock<Inner>,
    /// CPUs that may have this address space loaded (see the module doc).
    active: AtomicCpuSet,
    /// Bumped by every unmap, for the CPUs that skipped its shootdown.
    generation: AtomicU64,
    /// Set first thing by teardown: `activate` loads the kernel's tables
    /// instead.
    dead: AtomicBool,
    /// Whom its pages and tables are charged to.
    account: Arc<Account>,
    /// Bytes charged for the pages and tables it holds now.
    charged: AtomicU64,
}

struct Inner {
    /// False once torn down: nothing may be mapped any more.
    alive: bool,
    /// Memory from `map`, sorted by address, page aligned; what `unmap`
    /// may remove.
    regions: Vec<Region>,
}

/// A `map` or `mem_map` region.
#[derive(Clone)]
struct Region {
    start: u64,
    end: u64,
    /// Still being mapped: its address is taken, but `unmap` may not touch
    /// it yet.
    ready: bool,
    backing: Backing,
}

/// Whose frames a region maps.
#[derive(Clone)]
pub enum Backing {
    /// The address space's own (`map`, the program, stacks).
    Own,
    /// A shared memory object's, kept alive while mapped (held, not read).
    Shared(#[allow(dead_code)] Arc<super::shared::MemObject>),
    /// Device memory (not RAM): nobody's to free.
    Device,
}

/// The software bit of a leaf entry that maps a frame the address space
/// does not own (see the module doc).
pub const FOREIGN: Flags = Flags::BIT_9;

/// Page-table frames for the mapper (which zeroes them itself), from the
/// map's claim and charged to the account: user mappings asked for them.
struct TableFrames<'a> {
    claim: &'a mut frames::Claim,
    account: &'a Account,
    /// Bytes charged for the tables taken.
    charged: u64,
}

// SAFETY: every frame returned is free, and ours alone from now on.
unsafe impl FrameAllocator<Size4KiB> for TableFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        self.account.charge(Resource::Memory, PAGE_SIZE).ok()?;
        match self.claim.take() {
            Some(a) => {
                self.charged += PAGE_SIZE;
                Some(PhysFrame::containing_address(PhysAddr::new(a)))
            }
            None => {
                self.account.uncharge(Resource::Memory, PAGE_SIZE);
                None
            }
        }
    }
}

/// Page tables a mapping of `pages` pages may need at most: the leaf
/// tables it spans and the two levels above (at each end).
fn tables_for(pages: u64) -> u64 {
    pages / 512 + 2 + 2 * 2
}

fn page(addr: u64) -> Page<Size4KiB> {
    Page::containing_address(VirtAddr::new(addr))
}

fn leaf_flags(access: Access) -> Flags {
    let mut flags = Flags::PRESENT | Flags::USER_ACCESSIBLE;
    if access.write {
        flags |= Flags::WRITABLE;
    }
    if !access.execute && crate::arch::cpu::features().nx {
        flags |= Flags::NO_EXECUTE;
    }
    flags
}

/// Zeroes a frame that is ours alone.
fn zero(frame: u64) {
    // SAFETY: a free frame, ours alone, reached through the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, PAGE_SIZE as usize) };
}

impl AddressSpace {
    /// An empty address space (the kernel half, nothing below) whose
    /// memory is charged to `account`.
    pub fn new(account: Arc<Account>) -> Result<Self, KernelError> {
        account.charge(Resource::Memory, PAGE_SIZE).map_err(|_| KernelError::NoMemory)?;
        let Some(root) = frames::claim(1).and_then(|mut c| c.take()) else {
            account.uncharge(Resource::Memory, PAGE_SIZE);
            return Err(KernelError::NoMemory);
        };
        zero(root);
        let kernel = phys_to_virt(super::paging::kernel_root().start_address().as_u64()) as *const PageTable;
        // SAFETY: both tables are reached through the direct map; the new
        // one is ours alone, and the kernel's upper entries never change
        // (mem::paging made them all at boot).
        unsafe {
            let (table, kernel) = (&mut *(phys_to_virt(root) as *mut PageTable), &*kernel);
            for i in 256..512 {
                table[i] = kernel[i].clone();
            }
        }
        Ok(AddressSpace {
            root,
            inner: IrqSpinlock::new(Inner { alive: true, regions: Vec::new() }),
            active: AtomicCpuSet::new(),
            generation: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            account,
            charged: AtomicU64::new(PAGE_SIZE),
        })
    }

    /// Runs `f` on the page tables, under the lock.
    fn with_tables<R>(&self, f: impl FnOnce(&mut Inner, &mut OffsetPageTable<'_>) -> R) -> R {
        let mut inner = self.inner.lock();
        // SAFETY: the root is ours while `alive`, reached through the direct
        // map, and the lock serialises every change to the lower half.
        let mut tables = unsafe {
            OffsetPageTable::new(&mut *(phys_to_virt(self.root) as *mut PageTable), VirtAddr::new(PHYS_OFFSET))
        };
        f(&mut inner, &mut tables)
    }

    /// Maps `pages` fresh zeroed pages from `addr` (page aligned, in user
    /// space; checked by the callers), charged to the account. Nothing
    /// stays mapped (or charged) on failure.
    pub fn map_zeroed(&self, addr: u64, pages: u64, access: Access) -> Result<(), KernelError> {
        self.account.charge(Resource::Memory, pages * PAGE_SIZE).map_err(|_| KernelError::NoMemory)?;
        let mut mapped = 0;
        let result = frames::claim(pages + tables_for(pages))
            .ok_or(KernelError::NoMemory)
            .and_then(|mut claim| self.fill(addr, pages, access, &mut claim, &mut mapped));
        // What was mapped is charged until unmapped; the rest goes back now.
        self.account.uncharge(Resource::Memory, (pages - mapped) * PAGE_SIZE);
        self.charged.fetch_add(mapped * PAGE_SIZE, Ordering::Relaxed);
        if result.is_err() {
            // Nobody was told about these pages, but another thread of the
            // process could have touched them by guessing: shoot them down
            // like any unmap.
            self.unmap_range(addr, mapped);
        }
        result
    }

    /// Maps `pages` pages from `addr` with frames from `claim`, [`CHUNK`]
    /// at a time (see the module doc); counts them in `mapped` as it goes.
    fn fill(
        &self,
        addr: u64,
        pages: u64,
        access: Access,
        claim: &mut frames::Claim,
        mapped: &mut u64,
    ) -> Result<(), KernelError> {
        let mut chunk = [0u64; CHUNK];
        while *mapped < pages {
            let n = (pages - *mapped).min(CHUNK as u64) as usize;
            // Interrupts on, no lock: the bulk of the work.
            for i in 0..n {
                let Some(frame) = claim.take() else {
                    chunk[..i].iter().for_each(|&f| frames::free(f));
                    return Err(KernelError::NoMemory);
                };
                zero(frame);
                chunk[i] = frame;
            }
            let from = addr + *mapped * PAGE_SIZE;
            let (done, error) = self.with_tables(|inner, tables| {
                if !inner.alive {
                    return (0, Some(KernelError::NoMemory));
                }
                let mut table_frames = TableFrames { claim: &mut *claim, account: &self.account, charged: 0 };
                let parent = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE;
                let mut done = 0;
                let mut error = None;
                for (i, &frame) in chunk[..n].iter().enumerate() {
                    let to = PhysFrame::containing_address(PhysAddr::new(frame));
                    let at = page(from + i as u64 * PAGE_SIZE);
                    // SAFETY: a fresh frame at a user address; the kernel half
                    // is out of reach (callers check the range).
                    match unsafe {
                        tables.map_to_with_table_flags(at, to, leaf_flags(access), parent, &mut table_frames)
                    } {
                        Ok(flush) => flush.ignore(),
                        Err(e) => {
                            error = Some(match e {
                                MapToError::FrameAllocationFailed => KernelError::NoMemory,
                                _ => KernelError::AlreadyMapped,
                            });
                            break;
                        }
                    }
                    done += 1;
                }
                self.charged.fetch_add(table_frames.charged, Ordering::Relaxed);
                (done, error)
            });
            *mapped += done as u64;
            if let Some(e) = error {
                chunk[done..n].iter().for_each(|&f| frames::free(f));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Copies `bytes` to user address `addr`, which must be mapped (the
    /// program loader fills pages it has just mapped). Goes through the
    /// direct map: the kernel writes what it chose, not what a user asked.
    /// A page at a time, each under the lock (so interrupts are off for one
    /// page's copy, not a whole program's).
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), KernelError> {
        let mut done = 0;
        while done < bytes.len() {
            let at = addr + done as u64;
            let room = (PAGE_SIZE - at % PAGE_SIZE) as usize;
            let n = room.min(bytes.len() - done);
            self.with_tables(|inner, tables| {
                if !inner.alive {
                    return Err(KernelError::NotMapped);
                }
                let phys = tables.translate_addr(VirtAddr::new(at)).ok_or(KernelError::NotMapped)?;
                // SAFETY: the frame is mapped in this address space, so it is
                // a user frame we own; the direct map reaches it.
                unsafe {
                    core::ptr::copy_nonoverlapping(bytes[done..].as_ptr(), phys_to_virt(phys.as_u64()) as *mut u8, n)
                };
                Ok(())
            })?;
            done += n;
        }
        Ok(())
    }

    /// `map`: `len` bytes (rounded up to pages) of fresh zeroed memory in
    /// the map area; returns its address. Regions keep a page of unmapped
    /// space between them, so running off one faults.
    pub fn map_anon(&self, len: u64, write: bool) -> Result<u64, KernelError> {
        let size = super::align_up(len, PAGE_SIZE);
        let addr = self.place(size, Backing::Own)?;
        let mapped = self.map_zeroed(addr, size / PAGE_SIZE, Access { write, execute: false });
        self.placed(addr, mapped.is_ok());
        mapped.map(|()| addr)
    }

    /// `mem_map`: `pages` frames that are not its own (`frame(i)` is the
    /// i-th), in the map area, with `access` and the cache bits `cache`;
    /// `backing` keeps them alive while mapped. Returns the address.
    pub fn map_foreign(
        &self,
        pages: u64,
        frame: impl Fn(u64) -> u64,
        access: Access,
        cache: Flags,
        backing: Backing,
    ) -> Result<u64, KernelError> {
        let addr = self.place(pages * PAGE_SIZE, backing)?;
        let mut mapped = 0;
        let result = frames::claim(tables_for(pages)).ok_or(KernelError::NoMemory).and_then(|mut claim| {
            while mapped < pages {
                let n = (pages - mapped).min(CHUNK as u64);
                let from = mapped;
                let (done, error) = self.with_tables(|inner, tables| {
                    if !inner.alive {
                        return (0, Some(KernelError::NoMemory));
                    }
                    let mut table_frames = TableFrames { claim: &mut claim, account: &self.account, charged: 0 };
                    let parent = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE;
                    let flags = leaf_flags(access) | FOREIGN | cache;
                    let mut done = 0;
                    let mut error = None;
                    for i in from..from + n {
                        let to = PhysFrame::containing_address(PhysAddr::new(frame(i)));
                        // SAFETY: a user address in the map area (placed
                        // above) and a frame the caller vouches for: shared
                        // memory kept alive by the backing, or device memory
                        // that is not RAM.
                        match unsafe {
                            tables.map_to_with_table_flags(
                                page(addr + i * PAGE_SIZE),
                                to,
                                flags,
                                parent,
                                &mut table_frames,
                            )
                        } {
                            Ok(flush) => flush.ignore(),
                            Err(_) => {
                                error = Some(KernelError::NoMemory);
                                break;
                            }
                        }
                        done += 1;
                    }
                    self.charged.fetch_add(table_frames.charged, Ordering::Relaxed);
                    (done, error)
                });
                mapped += done;
                if let Some(e) = error {
                    return Err(e);
                }
            }
            Ok(())
        });
        if result.is_err() {
            self.unmap_range(addr, mapped);
        }
        self.placed(addr, result.is_ok());
        result.map(|()| addr)
    }

    /// Takes `size` bytes of the map area for a region with `backing`, not
    /// ready yet; returns its address.
    fn place(&self, size: u64, backing: Backing) -> Result<u64, KernelError> {
        let addr = {
            let mut inner = self.inner.lock();
            if !inner.alive || inner.regions.len() >= MAX_REGIONS {
                return Err(KernelError::NoMemory);
            }
            let mut at = MAP_BASE;
            let mut index = inner.regions.len();
            for (i, r) in inner.regions.iter().enumerate() {
                if r.start >= at + size + PAGE_SIZE {
                    index = i;
                    break;
                }
                at = at.max(r.end + PAGE_SIZE);
            }
            if at + size > MAP_END {
                return Err(KernelError::NoMemory);
            }
            // Room for this region and for what an unmap of part of one
            // takes (a split and the hole while it is cleared), charged as
            // kernel memory this address space holds: an unmap needs memory
            // only after many splits.
            self.reserve_regions(&mut inner.regions, 3)?;
            // Taken now, so that a concurrent `map` picks other space; not
            // ready, so that an `unmap` leaves it alone until it is mapped.
            inner.regions.insert(index, Region { start: at, end: at + size, ready: false, backing });
            at
        };
        Ok(addr)
    }

    /// The region placed at `addr` is mapped (`ok`: it becomes ready) or
    /// not (it goes, its backing dropped outside the lock).
    fn placed(&self, addr: u64, ok: bool) {
        let removed = {
            let mut inner = self.inner.lock();
            match inner.regions.iter().position(|r| r.start == addr) {
                Some(i) if ok => {
                    inner.regions[i].ready = true;
                    None
                }
                Some(i) => Some(inner.regions.remove(i)),
                None => None,
            }
        };
        drop(removed);
    }

    /// Makes room for `more` regions beyond those there are, charging what
    /// the list grows by. Called with the lock held: the list is the
    /// address space's own memory, and growing it takes no other lock than
    /// the heap's.
    fn reserve_regions(&self, regions: &mut Vec<Region>, more: usize) -> Result<(), KernelError> {
        let needed = regions.len() + more;
        if regions.capacity() >= needed {
            return Ok(());
        }
        let grow = needed.max(regions.capacity() * 2).max(8) - regions.capacity();
        let bytes = (grow * core::mem::size_of::<Region>()) as u64;
        let _room = self.account.charge_heap(bytes).map_err(|_| KernelError::NoMemory)?;
        if regions.try_reserve_exact(grow).is_err() {
            self.account.uncharge(Resource::Memory, bytes);
            return Err(KernelError::NoMemory);
        }
        self.charged.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// `unmap`: removes the pages `addr..addr + len` (page aligned, `len`
    /// rounded up), which must all lie in one region from [`map_anon`]
    /// that is mapped (not still being mapped or unmapped); otherwise
    /// nothing changes. The addresses can be mapped again once it returns.
    pub fn unmap_anon(&self, addr: u64, len: u64) -> Result<(), KernelError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(KernelError::BadAddress);
        }
        let end = addr.checked_add(super::align_up(len, PAGE_SIZE)).ok_or(KernelError::BadAddress)?;
        {
            let mut inner = self.inner.lock();
            let i = inner.regions.partition_point(|r| r.start <= addr);
            let Some(i) = i.checked_sub(1) else { return Err(KernelError::BadAddress) };
            let region = inner.regions[i].clone();
            if end > region.end || !region.ready {
                return Err(KernelError::BadAddress);
            }
            // The hole stays taken (not ready) until its entries are clear and
            // shot down, so that no `map` can pick its addresses meanwhile;
            // the region around it is split. That takes up to two more
            // entries, for which room is made first (if that fails, the
            // unmap fails with nothing changed).
            self.reserve_regions(&mut inner.regions, 2)?;
            // The hole keeps the backing until its entries are gone.
            let hole = Region { start: addr, end, ready: false, backing: region.backing.clone() };
            match (region.start < addr, end < region.end) {
                (false, false) => {
                    // (The old entry's backing is cloned in the hole.)
                    inner.regions[i] = hole;
                }
                (true, false) => {
                    inner.regions[i].end = addr;
                    inner.regions.insert(i + 1, hole);
                }
                (false, true) => {
                    inner.regions[i].start = end;
                    inner.regions.insert(i, hole);
                }
                (true, true) => {
                    inner.regions[i].end = addr;
                    inner.regions.insert(i + 1, hole);
                    inner
                        .regions
                        .insert(i + 2, Region { start: end, end: region.end, ready: true, backing: region.backing });
                }
            }
        }
        self.unmap_range(addr, (end - addr) / PAGE_SIZE);
        let removed = {
            let mut inner = self.inner.lock();
            inner.regions.iter().position(|r| r.start == addr && !r.ready).map(|i| inner.regions.remove(i))
        };
        // A shared object's last mapping: its frames go now, outside the lock.
        drop(removed);
        Ok(())
    }

    /// Unmaps `pages` pages from `addr` (those that are mapped),
    /// [`UNMAP_CHUNK`] at a time: each chunk's entries are cleared under the lock, shot
    /// down on every CPU that may cache them, and only then freed (and
    /// given back to the account). Allocates nothing.
    fn unmap_range(&self, addr: u64, pages: u64) {
        let mut done = 0;
        while done < pages {
            let n = (pages - done).min(UNMAP_CHUNK as u64);
            let from = addr + done * PAGE_SIZE;
            let mut freed = [0u64; UNMAP_CHUNK];
            let count = self.with_tables(|inner, tables| {
                let mut count = 0;
                if !inner.alive {
                    // Torn down meanwhile: everything is freed already.
                    return count;
                }
                for i in 0..n {
                    let at = from + i * PAGE_SIZE;
                    let foreign = matches!(
                        tables.translate(VirtAddr::new(at)),
                        TranslateResult::Mapped { flags, .. } if flags.contains(FOREIGN)
                    );
                    match tables.unmap(page(at)) {
                        Ok((frame, flush)) => {
                            flush.ignore();
                            if !foreign {
                                freed[count] = frame.start_address().as_u64();
                                count += 1;
                            }
                        }
                        Err(UnmapError::PageNotMapped) => {}
                        Err(e) => panic!("aspace: unmapping {:#x}: {e:?}", from + i * PAGE_SIZE),
                    }
                }
                count
            });
            self.shoot_down(from, n);
            freed[..count].iter().for_each(|&f| frames::free(f));
            let bytes = count as u64 * PAGE_SIZE;
            self.charged.fetch_sub(bytes, Ordering::Relaxed);
            self.account.uncharge(Resource::Memory, bytes);
            done += n;
        }
    }

    /// The entries for `pages` pages from `addr` are clear: a CPU that
    /// loads this address space from now on cannot cache them, a lazy one
    /// will see the generation, and the CPUs running it now get the
    /// shootdown.
    fn shoot_down(&self, addr: u64, pages: u64) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut targets = self.active.snapshot();
        for cpu in targets.clone().iter() {
            if !percpu::get(cpu).user_running.load(Ordering::SeqCst) {
                targets.remove(cpu);
            }
        }
        crate::arch::tlb::shootdown_user(addr, pages, &targets);
        let me = percpu::current();
        if targets.contains(me.index()) {
            // Flushed here just now (earlier unmaps reached this running CPU
            // by IPI, or will when its interrupts come back on).
            me.tlb_generation_seen.fetch_max(generation, Ordering::Relaxed);
        }
    }

    /// Makes this CPU ready to run a thread of this address space: loads it
    /// unless it is loaded already, and catches up with the unmaps whose
    /// shootdown skipped this CPU while it was lazy (see the module doc).
    /// Called by the scheduler, with interrupts off, before a thread of it
    /// runs; marks the CPU `user_running`.
    pub fn activate(&self) {
        let cpu = percpu::current();
        if self.dead.load(Ordering::SeqCst) {
            // Being torn down (its last thread is doing it, and was
            // preempted): the kernel's tables serve that thread.
            leave_if_loaded(self);
            return;
        }
        let me = cpu.index();
        let this = self as *const AddressSpace as *mut AddressSpace;
        let loaded = cpu.loaded_aspace.load(Ordering::Relaxed);
        if loaded != this {
            // In the set before CR3 changes (see the module doc), and the
            // generation read before the flush the CR3 write is.
            self.active.insert(me);
            let generation = self.generation.load(Ordering::SeqCst);
            // SAFETY: the tables map the kernel half like the kernel's own,
            // and stay alive while this CPU is in the active set (teardown
            // makes every CPU leave first).
            unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(self.root)), Cr3Flags::empty()) };
            cpu.loaded_aspace.store(this, Ordering::Relaxed);
            cpu.tlb_generation_seen.store(generation, Ordering::Relaxed);
            if !loaded.is_null() {
                // SAFETY: an address space stays alive while a CPU has it
                // loaded (teardown waits for every CPU to leave it, and we
                // have not acknowledged any such request since loading it).
                unsafe { (*loaded).active.remove(me) };
            }
        }
        cpu.user_running.store(true, Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        if cpu.tlb_generation_seen.load(Ordering::Relaxed) != generation {
            // Reloading CR3 drops every non-global entry: user pages only.
            // SAFETY: the tables loaded already.
            unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(self.root)), Cr3Flags::empty()) };
            cpu.tlb_generation_seen.store(generation, Ordering::Relaxed);
        }
    }

    /// The unmaps this address space has had (see the module doc).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Ends the address space: every CPU leaves it, then every user frame
    /// and page table is freed, with interrupts on, and given back to the
    /// account. Idempotent.
    pub fn teardown(&self) {
        {
            let mut inner = self.inner.lock();
            if !core::mem::replace(&mut inner.alive, false) {
                return;
            }
            // Dead before anyone leaves: a CPU that switches to one of its
            // threads from now on loads the kernel's tables instead.
            self.dead.store(true, Ordering::SeqCst);
        }
        {
            let _irq = crate::sched::InterruptsOff::new();
            leave_if_loaded(self);
        }
        crate::arch::tlb::leave_everywhere(self, &self.active.snapshot());
        // SAFETY: no CPU has the tables loaded any more, none will load them
        // again (dead), and nothing maps into them (alive is false); they
        // are ours to free.
        unsafe { free_lower_half(self.root) };
        frames::free(self.root);
        let regions = core::mem::take(&mut self.inner.lock().regions);
        drop(regions);
        self.account.uncharge(Resource::Memory, self.charged.swap(0, Ordering::Relaxed));
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Makes this CPU stop using `aspace` if it has it loaded: the kernel's
/// own tables instead. Called with interrupts off (by teardown, and by
/// arch::tlb for a leave request).
pub fn leave_if_loaded(aspace: *const AddressSpace) {
    let cpu = percpu::current();
    if cpu.loaded_aspace.load(Ordering::Relaxed) != aspace.cast_mut() {
        return;
    }
    // SAFETY: the kernel's tables map everything the kernel uses.
    unsafe { Cr3::write(super::paging::kernel_root(), Cr3Flags::empty()) };
    cpu.loaded_aspace.store(core::ptr::null_mut(), Ordering::Relaxed);
    cpu.user_running.store(false, Ordering::Relaxed);
    // SAFETY: it is alive until this CPU acknowledges (see teardown).
    unsafe { (*aspace).active.remove(cpu.index()) };
}

/// Frees every frame and table the lower half of `root` maps (4 KiB leaves
/// only: user memory is never mapped with large pages). Each free takes
/// the allocator's lock for a moment; interrupts stay on in between.
///
/// # Safety
/// No CPU may use the tables, and nothing else may own the frames.
unsafe fn free_lower_half(root: u64) {
    fn table(phys: u64) -> &'static mut PageTable {
        // SAFETY: (of the caller) a page table frame of this address space.
        unsafe { &mut *(phys_to_virt(phys) as *mut PageTable) }
    }
    for pml4e in table(root).iter_mut().take(256).filter(|e| !e.is_unused()) {
        for pdpte in table(pml4e.addr().as_u64()).iter_mut().filter(|e| !e.is_unused()) {
            for pde in table(pdpte.addr().as_u64()).iter_mut().filter(|e| !e.is_unused()) {
                for pte in table(pde.addr().as_u64()).iter_mut().filter(|e| !e.is_unused()) {
                    if !pte.flags().contains(FOREIGN) {
                        frames::free(pte.addr().as_u64());
                    }
                    pte.set_unused();
                }
                frames::free(pde.addr().as_u64());
                pde.set_unused();
            }
            frames::free(pdpte.addr().as_u64());
            pdpte.set_unused();
        }
        frames::free(pml4e.addr().as_u64());
        pml4e.set_unused();
    }
}
