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
//! **Teardown.** When its process ends, an address space is left by this
//! CPU, then by every CPU in its active set (a shootdown request that
//! makes those that still have it loaded switch to the kernel's tables),
//! and only then are its frames and tables freed.
use super::{frames, phys_to_virt, PAGE_SIZE, PHYS_OFFSET};
use crate::arch::ipi::AtomicCpuSet;
use crate::error::KernelError;
use crate::percpu;
use crate::sync::IrqSpinlock;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags};
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

pub struct AddressSpace {
    /// Physical address of the PML4.
    root: u64,
    inner: IrqSpinlock<Inner>,
    /// CPUs that may have this address space loaded (see the module doc).
    active: AtomicCpuSet,
    /// Bumped by every unmap, for the CPUs that skipped its shootdown.
    generation: AtomicU64,
}

struct Inner {
    /// False once torn down: nothing may be mapped any more.
    alive: bool,
    /// Memory from `map`, as start -> end, page aligned; what `unmap` may
    /// remove.
    anon: BTreeMap<u64, u64>,
}

/// Page-table frames for the mapper (which zeroes them itself), outside
/// the kernel's reserve: user mappings asked for them.
struct TableFrames;

// SAFETY: every frame returned is free, and ours alone from now on.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        if !frames::user_may_take(1) {
            return None;
        }
        frames::alloc().map(|a| PhysFrame::containing_address(PhysAddr::new(a)))
    }
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

/// A zeroed frame, or None if the kernel cannot spare one.
fn zeroed_frame() -> Option<u64> {
    let frame = frames::alloc()?;
    // SAFETY: a free frame, ours alone, reached through the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, PAGE_SIZE as usize) };
    Some(frame)
}

impl AddressSpace {
    /// An empty address space: the kernel half, nothing below.
    pub fn new() -> Result<Self, KernelError> {
        if !frames::user_may_take(1) {
            return Err(KernelError::NoMemory);
        }
        let root = zeroed_frame().ok_or(KernelError::NoMemory)?;
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
            inner: IrqSpinlock::new(Inner { alive: true, anon: BTreeMap::new() }),
            active: AtomicCpuSet::new(),
            generation: AtomicU64::new(0),
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
    /// space; checked by the callers). Nothing stays mapped on failure.
    pub fn map_zeroed(&self, addr: u64, pages: u64, access: Access) -> Result<(), KernelError> {
        if !frames::user_may_take(pages) {
            return Err(KernelError::NoMemory);
        }
        let result = self.with_tables(|inner, tables| {
            if !inner.alive {
                return Err((KernelError::NoMemory, 0));
            }
            for i in 0..pages {
                let virt = addr + i * PAGE_SIZE;
                let frame = zeroed_frame().ok_or((KernelError::NoMemory, i))?;
                let parent = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE;
                let to = PhysFrame::containing_address(PhysAddr::new(frame));
                // SAFETY: a fresh frame at a user address; the kernel half is
                // out of reach (callers check the range).
                match unsafe {
                    tables.map_to_with_table_flags(page(virt), to, leaf_flags(access), parent, &mut TableFrames)
                } {
                    Ok(flush) => flush.ignore(),
                    Err(e) => {
                        frames::free(frame);
                        let error = match e {
                            MapToError::FrameAllocationFailed => KernelError::NoMemory,
                            _ => KernelError::AlreadyMapped,
                        };
                        return Err((error, i));
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err((error, mapped)) => {
                // Nobody was told about these pages, but another thread of
                // the process could have touched them by guessing: shoot
                // them down like any unmap.
                self.unmap_range(addr, mapped);
                Err(error)
            }
        }
    }

    /// Copies `bytes` to user address `addr`, which must be mapped (the
    /// program loader fills pages it has just mapped). Goes through the
    /// direct map: the kernel writes what it chose, not what a user asked.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), KernelError> {
        self.with_tables(|_, tables| {
            let mut done = 0;
            while done < bytes.len() {
                let at = addr + done as u64;
                let phys = tables.translate_addr(VirtAddr::new(at)).ok_or(KernelError::NotMapped)?;
                let room = (PAGE_SIZE - at % PAGE_SIZE) as usize;
                let n = room.min(bytes.len() - done);
                // SAFETY: the frame is mapped in this address space, so it is
                // a user frame we own; the direct map reaches it.
                unsafe {
                    core::ptr::copy_nonoverlapping(bytes[done..].as_ptr(), phys_to_virt(phys.as_u64()) as *mut u8, n)
                };
                done += n;
            }
            Ok(())
        })
    }

    /// `map`: `len` bytes (rounded up to pages) of fresh zeroed memory in
    /// the map area; returns its address. Regions keep a page of unmapped
    /// space between them, so running off one faults.
    pub fn map_anon(&self, len: u64, write: bool) -> Result<u64, KernelError> {
        let size = super::align_up(len, PAGE_SIZE);
        let addr = {
            let mut inner = self.inner.lock();
            let mut at = MAP_BASE;
            for (&start, &end) in inner.anon.iter() {
                if start >= at + size + PAGE_SIZE {
                    break;
                }
                at = at.max(end + PAGE_SIZE);
            }
            if at + size > MAP_END {
                return Err(KernelError::NoMemory);
            }
            // Reserved now, so that a concurrent `map` picks other space.
            inner.anon.insert(at, at + size);
            at
        };
        let mapped = self.map_zeroed(addr, size / PAGE_SIZE, Access { write, execute: false });
        if mapped.is_err() {
            self.inner.lock().anon.remove(&addr);
        }
        mapped.map(|()| addr)
    }

    /// `unmap`: removes the pages `addr..addr + len` (page aligned, `len`
    /// rounded up), which must all lie in one region from [`map_anon`];
    /// otherwise nothing changes.
    pub fn unmap_anon(&self, addr: u64, len: u64) -> Result<(), KernelError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(KernelError::BadAddress);
        }
        let end = addr.checked_add(super::align_up(len, PAGE_SIZE)).ok_or(KernelError::BadAddress)?;
        {
            let mut inner = self.inner.lock();
            let (&start, &region_end) = inner.anon.range(..=addr).next_back().ok_or(KernelError::BadAddress)?;
            if end > region_end {
                return Err(KernelError::BadAddress);
            }
            // Split the region around the hole.
            inner.anon.remove(&start);
            if start < addr {
                inner.anon.insert(start, addr);
            }
            if end < region_end {
                inner.anon.insert(end, region_end);
            }
        }
        self.unmap_range(addr, (end - addr) / PAGE_SIZE);
        Ok(())
    }

    /// Unmaps `pages` pages from `addr` (all mapped), shoots them down on
    /// every CPU that may cache them, then frees their frames.
    fn unmap_range(&self, addr: u64, pages: u64) {
        if pages == 0 {
            return;
        }
        let freed: Vec<u64> = self.with_tables(|_, tables| {
            (0..pages)
                .filter_map(|i| match tables.unmap(page(addr + i * PAGE_SIZE)) {
                    Ok((frame, flush)) => {
                        flush.ignore();
                        Some(frame.start_address().as_u64())
                    }
                    Err(UnmapError::PageNotMapped) => None,
                    Err(e) => panic!("aspace: unmapping {:#x}: {e:?}", addr + i * PAGE_SIZE),
                })
                .collect()
        });
        // The entries are clear; a CPU that loads this address space from
        // now on cannot cache them, a lazy one will see the generation, and
        // the CPUs running it now get the shootdown.
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
        freed.into_iter().for_each(frames::free);
    }

    /// Makes this CPU ready to run a thread of this address space: loads it
    /// unless it is loaded already, and catches up with the unmaps whose
    /// shootdown skipped this CPU while it was lazy (see the module doc).
    /// Called by the scheduler, with interrupts off, before a thread of it
    /// runs; marks the CPU `user_running`.
    pub fn activate(&self) {
        let cpu = percpu::current();
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
    /// and page table is freed. Idempotent.
    pub fn teardown(&self) {
        if !core::mem::replace(&mut self.inner.lock().alive, false) {
            return;
        }
        x86_64::instructions::interrupts::without_interrupts(|| leave_if_loaded(self));
        crate::arch::tlb::leave_everywhere(self, &self.active.snapshot());
        // SAFETY: no CPU has the tables loaded any more and nothing maps
        // into them (alive is false); they are ours to free.
        unsafe { free_lower_half(self.root) };
        frames::free(self.root);
        self.inner.lock().anon.clear();
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
/// only: user memory is never mapped with large pages).
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
                    frames::free(pte.addr().as_u64());
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
