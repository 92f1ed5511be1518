//! The kernel's page tables, built with the `x86_64` crate.
//!
//! [`init`] replaces the boot page tables with the kernel's own:
//! - a direct map of RAM (usable and firmware-owned memory-map areas, the
//!   boot information and modules) at `PHYS_OFFSET`, write-back,
//!   read-write and NX: 2 MiB pages where a whole 2 MiB lies in one area,
//!   4 KiB pages at the edges, so that no device hole or reserved area
//!   next to RAM is mapped write-back (and the first 2 MiB, with its
//!   legacy holes, is in 4 KiB pages). Everything else (MMIO, reserved
//!   areas, the framebuffer) is mapped on demand with the cache mode it
//!   needs ([`map_device`]), and firmware tables outside RAM are read
//!   through an uncached window ([`read_physical`]);
//! - the kernel image in 4 KiB pages with per-section permissions: text
//!   read+execute, rodata read-only+NX, data and bss read-write+NX; the boot
//!   stack read-write+NX with its guard page left unmapped;
//! - nothing in the lower half: the boot identity map is gone, so a null
//!   pointer faults.
//!
//! Every upper-half PML4 entry gets its page-directory-pointer table now,
//! so the kernel half never changes at the top level and future address
//! spaces can share it by copying 256 entries.
use super::{frames, phys_to_virt, PhysRange, BOOT_DIRECT_MAP_END, MMIO_MAX, MMIO_START, PHYS_OFFSET};
use crate::arch::cpu;
use crate::boot_info::{AreaKind, BootInfo};
use crate::error::KernelError;
use crate::sync::IrqSpinlock;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::{MapToError, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame, Size2MiB, Size4KiB,
    Translate,
};
use x86_64::{PhysAddr, VirtAddr};

const LARGE_PAGE: u64 = 2 << 20;

static KERNEL_PT: IrqSpinlock<Option<OffsetPageTable<'static>>> = IrqSpinlock::new(None);
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_START);
/// Physical address of the kernel's PML4.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// The kernel's top-level page table, for CPUs that switch to it.
pub fn kernel_root() -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(KERNEL_ROOT.load(Ordering::Acquire)))
}

/// Hands page-table frames to the `x86_64` mapper.
struct TableFrames {
    /// Early on, new tables must lie where the boot tables' direct map
    /// reaches.
    limit: u64,
}

/// Page-table frames the kernel half has taken since boot (it never gives
/// them back: a region's tables stay once made).
static TABLE_FRAMES: AtomicU64 = AtomicU64::new(0);

/// How many page-table frames the kernel half holds, for the leak checks
/// (a heap or stack region that grows into new 2 MiB of address space takes
/// one, for good, and that is not a leak).
pub fn table_frames() -> u64 {
    TABLE_FRAMES.load(Ordering::Relaxed)
}

// SAFETY: every frame returned is free, and ours alone from now on.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let frame = frames::alloc_below(self.limit)?;
        TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
        Some(PhysFrame::containing_address(PhysAddr::new(frame)))
    }
}

/// Flags for kernel data: present, writable, NX and global where the CPU
/// has them.
pub fn kernel_flags(writable: bool, executable: bool) -> Flags {
    let f = cpu::features();
    let mut flags = Flags::PRESENT;
    if writable {
        flags |= Flags::WRITABLE;
    }
    if !executable && f.nx {
        flags |= Flags::NO_EXECUTE;
    }
    if f.global_pages {
        flags |= Flags::GLOBAL;
    }
    flags
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __boot_stack_guard: u8;
    static __boot_stack_bottom: u8;
    static __boot_stack_top: u8;
}

/// A linker-script symbol's address.
macro_rules! sym_addr {
    ($s:ident) => {
        (&raw const $s) as u64
    };
}

/// The boot stack's guard page (virtual).
pub fn boot_stack_guard() -> u64 {
    sym_addr!(__boot_stack_guard)
}

/// The kernel's rodata and text ranges (virtual), for tests.
pub fn rodata_range() -> (u64, u64) {
    (sym_addr!(__rodata_start), sym_addr!(__rodata_end))
}
pub fn text_range() -> (u64, u64) {
    (sym_addr!(__text_start), sym_addr!(__text_end))
}

fn zeroed_table(alloc: &mut TableFrames) -> PhysFrame {
    let frame = alloc.allocate_frame().expect("mem: no frame below 4 GiB for a page table");
    // SAFETY: a free frame, mapped by the boot direct map; nothing else
    // refers to it yet.
    unsafe { (phys_to_virt(frame.start_address().as_u64()) as *mut PageTable).write(PageTable::new()) };
    frame
}

/// Direct-maps `range` (RAM) write-back, with large pages only where a
/// whole 2 MiB of it is RAM. Pages already mapped (areas overlap, or share
/// a 2 MiB) are kept: a large page that would cover small ones already
/// there is mapped as small pages instead.
fn map_direct(pt: &mut OffsetPageTable<'static>, range: PhysRange, alloc: &mut TableFrames) {
    let [head, middle, tail] = range.split_for_pages(super::PAGE_SIZE, LARGE_PAGE);
    map_direct_small(pt, head, alloc);
    for addr in (middle.start..middle.end).step_by(LARGE_PAGE as usize) {
        let page = Page::<Size2MiB>::containing_address(VirtAddr::new(PHYS_OFFSET + addr));
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(addr));
        // SAFETY: the direct map aliases RAM at a fixed offset in a region
        // nothing else uses; the tables are not live yet.
        match unsafe { pt.map_to(page, frame, kernel_flags(true, false), alloc) } {
            Ok(flush) => flush.ignore(),
            // Small pages of a neighbouring area are there already.
            Err(MapToError::PageAlreadyMapped(_)) => {
                map_direct_small(pt, PhysRange::new(addr, addr + LARGE_PAGE), alloc)
            }
            Err(e) => panic!("mem: direct map of {addr:#x}: {e:?}"),
        }
    }
    map_direct_small(pt, tail, alloc);
}

fn map_direct_small(pt: &mut OffsetPageTable<'static>, range: PhysRange, alloc: &mut TableFrames) {
    for addr in (range.start..range.end).step_by(super::PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(PHYS_OFFSET + addr));
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(addr));
        // SAFETY: as in map_direct.
        match unsafe { pt.map_to(page, frame, kernel_flags(true, false), alloc) } {
            Ok(flush) => flush.ignore(),
            // Mapped by an overlapping area (as RAM too).
            Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => {}
            Err(e) => panic!("mem: direct map of {addr:#x}: {e:?}"),
        }
    }
}

fn map_image(pt: &mut OffsetPageTable<'static>, start: u64, end: u64, flags: Flags, alloc: &mut TableFrames) {
    for virt in (start..end).step_by(super::PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
        let frame = PhysFrame::containing_address(PhysAddr::new(super::image_virt_to_phys(virt)));
        // SAFETY: maps the kernel image onto itself; the tables are not live.
        match unsafe { pt.map_to(page, frame, flags, alloc) } {
            Ok(flush) => flush.ignore(),
            Err(e) => panic!("mem: mapping the kernel image at {virt:#x}: {e:?}"),
        }
    }
}

pub fn init(boot: &BootInfo) {
    let mut alloc = TableFrames { limit: BOOT_DIRECT_MAP_END };
    let pml4_frame = zeroed_table(&mut alloc);
    // SAFETY: just allocated and zeroed; it lives as long as the kernel.
    let pml4: &'static mut PageTable =
        unsafe { &mut *(phys_to_virt(pml4_frame.start_address().as_u64()) as *mut PageTable) };
    for entry in pml4.iter_mut().skip(256) {
        entry.set_frame(zeroed_table(&mut alloc), Flags::PRESENT | Flags::WRITABLE);
    }
    // SAFETY: physical memory is mapped at PHYS_OFFSET (the boot tables map
    // the first 4 GiB there, and every table frame comes from below 4 GiB).
    let mut pt = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(PHYS_OFFSET)) };

    // RAM only: reserved areas and holes may be device memory (QEMU
    // reports AMD's HyperTransport hole near 1 TiB as reserved), which a
    // write-back mapping would let the CPU read speculatively and cache.
    let mut mapped = 0u64;
    for (range, kind) in boot.memory_areas() {
        if matches!(kind, AreaKind::Usable | AreaKind::FirmwareRam) {
            map_direct(&mut pt, range, &mut alloc);
            mapped = mapped.max(range.end);
        }
    }
    map_direct(&mut pt, boot.range(), &mut alloc);
    for (_, range) in boot.modules() {
        map_direct(&mut pt, range, &mut alloc);
    }

    map_image(&mut pt, sym_addr!(__text_start), sym_addr!(__text_end), kernel_flags(false, true), &mut alloc);
    map_image(&mut pt, sym_addr!(__rodata_start), sym_addr!(__rodata_end), kernel_flags(false, false), &mut alloc);
    map_image(&mut pt, sym_addr!(__data_start), sym_addr!(__data_end), kernel_flags(true, false), &mut alloc);
    map_image(
        &mut pt,
        sym_addr!(__boot_stack_bottom),
        sym_addr!(__boot_stack_top),
        kernel_flags(true, false),
        &mut alloc,
    );

    // SAFETY: the new tables map everything the kernel touches from here
    // on (its image, its stack, the direct map) at the same addresses as
    // the boot tables; the GDT and IDT in use live in the kernel image.
    unsafe { Cr3::write(pml4_frame, Cr3Flags::empty()) };
    *KERNEL_PT.lock() = Some(pt);
    KERNEL_ROOT.store(pml4_frame.start_address().as_u64(), Ordering::Release);
    log::info!(
        "mem: kernel page tables at {:#x}; direct map up to {mapped:#x}; NX {}, global pages {}",
        pml4_frame.start_address().as_u64(),
        if cpu::features().nx { "on" } else { "unsupported" },
        if cpu::features().global_pages { "on" } else { "unsupported" },
    );
}

fn with<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    f(KERNEL_PT.lock().as_mut().expect("kernel page table used before mem::paging::init"))
}

/// Maps one 4 KiB page of the kernel half.
pub fn map(virt: u64, phys: u64, flags: Flags) -> Result<(), KernelError> {
    let page = Page::<Size4KiB>::from_start_address(VirtAddr::try_new(virt).map_err(|_| KernelError::BadAddress)?)
        .map_err(|_| KernelError::BadAddress)?;
    let frame = PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| KernelError::BadAddress)?;
    with(|pt| {
        // SAFETY: callers map frames they own at addresses of their own
        // regions; the mapper refuses to replace an existing mapping.
        match unsafe { pt.map_to(page, frame, flags, &mut TableFrames { limit: u64::MAX }) } {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(MapToError::FrameAllocationFailed) => Err(KernelError::NoMemory),
            Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => {
                Err(KernelError::AlreadyMapped)
            }
        }
    })
}

/// Unmaps one 4 KiB page of the kernel half and returns its frame (which
/// the caller now owns): by then no CPU's TLB still maps it. Must not be
/// called with a lock held (the shootdown waits for other CPUs).
pub fn unmap(virt: u64) -> Result<u64, KernelError> {
    let frame = unmap_local(virt)?;
    crate::arch::tlb::shootdown(virt, 1);
    Ok(frame)
}

/// Unmaps one page from the kernel tables and this CPU's TLB only, and
/// returns its frame. Other CPUs may still cache the mapping: the caller
/// must shoot it down (`arch::tlb`) before the frame is reused. For callers
/// that unmap many pages and shoot them all down at once.
pub fn unmap_deferred(virt: u64) -> Result<u64, KernelError> {
    unmap_local(virt)
}

/// Unmaps and flushes this CPU's TLB entry only.
fn unmap_local(virt: u64) -> Result<u64, KernelError> {
    let page = Page::<Size4KiB>::from_start_address(VirtAddr::try_new(virt).map_err(|_| KernelError::BadAddress)?)
        .map_err(|_| KernelError::BadAddress)?;
    with(|pt| match pt.unmap(page) {
        Ok((frame, flush)) => {
            flush.flush();
            Ok(frame.start_address().as_u64())
        }
        Err(UnmapError::PageNotMapped) => Err(KernelError::NotMapped),
        Err(_) => Err(KernelError::BadAddress),
    })
}

/// The physical address that `virt` maps to, if any.
pub fn translate(virt: u64) -> Option<u64> {
    let virt = VirtAddr::try_new(virt).ok()?;
    with(|pt| pt.translate_addr(virt)).map(|p| p.as_u64())
}

/// The size of the page that maps `virt` (4 KiB, 2 MiB or 1 GiB), if any.
pub fn page_size(virt: u64) -> Option<u64> {
    use x86_64::structures::paging::mapper::{MappedFrame, Translate, TranslateResult};
    let virt = VirtAddr::try_new(virt).ok()?;
    match with(|pt| pt.translate(virt)) {
        TranslateResult::Mapped { frame: MappedFrame::Size4KiB(_), .. } => Some(super::PAGE_SIZE),
        TranslateResult::Mapped { frame: MappedFrame::Size2MiB(_), .. } => Some(LARGE_PAGE),
        TranslateResult::Mapped { frame: MappedFrame::Size1GiB(_), .. } => Some(1 << 30),
        _ => None,
    }
}

/// How device memory is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Uncached (PAT entry 3, UC): device registers, firmware tables.
    Uncached,
    /// Write-combining (PAT entry 1, which `cpu::init_pat` makes WC):
    /// framebuffers. Uncached where the CPU has no PAT.
    WriteCombining,
}

/// Maps `len` bytes of device registers at `phys`, uncached, and returns
/// the virtual address of `phys`.
pub fn map_mmio(phys: u64, len: u64) -> Result<u64, KernelError> {
    map_device(phys, len, Cache::Uncached)
}

/// Maps `len` bytes of device memory at `phys` with `cache`, in 4 KiB
/// pages of the MMIO region (never reused), and returns the virtual
/// address of `phys`.
pub fn map_device(phys: u64, len: u64, cache: Cache) -> Result<u64, KernelError> {
    let start = super::align_down(phys, super::PAGE_SIZE);
    let end = super::align_up(phys.checked_add(len).ok_or(KernelError::BadAddress)?, super::PAGE_SIZE);
    if cache == Cache::Uncached {
        // Registers the kernel drives itself: no process may map them.
        let mut own = KERNEL_MMIO.lock();
        if own.contains(&(start, end)) {
            // Each CPU maps its local APIC: one entry does.
        } else if let Some(slot) = own.iter_mut().find(|r| r.0 == r.1) {
            *slot = (start, end);
        } else {
            log::warn!("paging: no room to record {start:#x}..{end:#x} as the kernel's own registers");
        }
    }
    let size = end - start;
    let virt = MMIO_NEXT.fetch_add(size, Ordering::Relaxed);
    if virt + size > MMIO_START + MMIO_MAX {
        return Err(KernelError::NoMemory);
    }
    let flags = kernel_flags(true, false) | cache_flags(cache);
    for offset in (0..size).step_by(super::PAGE_SIZE as usize) {
        map(virt + offset, start + offset, flags)?;
    }
    Ok(virt + (phys - start))
}

/// Device registers the kernel maps for itself (uncached), which
/// `mem_map` refuses to map for a process; empty slots are (0, 0).
static KERNEL_MMIO: spin::Mutex<[(u64, u64); 32]> = spin::Mutex::new([(0, 0); 32]);

/// Whether `start..end` overlaps registers the kernel drives itself.
pub fn is_kernel_mmio(start: u64, end: u64) -> bool {
    KERNEL_MMIO.lock().iter().any(|&(s, e)| s < end && start < e)
}

/// The page-table bits (of a 4 KiB entry: PAT, PCD, PWT) that select
/// `cache`'s PAT entry.
pub fn cache_flags(cache: Cache) -> Flags {
    match cache {
        Cache::WriteCombining if cpu::features().pat => Flags::WRITE_THROUGH,
        _ => Flags::NO_CACHE | Flags::WRITE_THROUGH,
    }
}

/// The uncached window [`read_physical`] maps pages at, one at a time.
static WINDOW: spin::Mutex<u64> = spin::Mutex::new(0);

/// Copies physical memory at `phys` into `buf`: through the direct map
/// where it is RAM, else a page at a time through an uncached window (for
/// firmware tables in reserved areas or above the RAM, wherever the
/// firmware put them). Called with interrupts on or before the other
/// CPUs run: unmapping the window shoots it down.
pub fn read_physical(phys: u64, buf: &mut [u8]) -> Result<(), KernelError> {
    let page_size = super::PAGE_SIZE;
    let end = phys.checked_add(buf.len() as u64).ok_or(KernelError::BadAddress)?;
    if end > 1 << cpu::features().phys_bits {
        return Err(KernelError::BadAddress);
    }
    let mut at = phys;
    while at < end {
        let page = super::align_down(at, page_size);
        let n = ((page + page_size).min(end) - at) as usize;
        let out = &mut buf[(at - phys) as usize..][..n];
        if translate(phys_to_virt(page)).is_some() {
            // SAFETY: RAM in the direct map; firmware tables are plain memory.
            unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(at) as *const u8, out.as_mut_ptr(), n) };
        } else {
            let mut window = WINDOW.lock();
            if *window == 0 {
                *window = MMIO_NEXT.fetch_add(page_size, Ordering::Relaxed);
            }
            map(*window, page, kernel_flags(false, false) | cache_flags(Cache::Uncached))?;
            // SAFETY: just mapped, uncached, read only; the window is ours
            // while its lock is held.
            unsafe {
                core::ptr::copy_nonoverlapping((*window + (at - page)) as *const u8, out.as_mut_ptr(), n);
            }
            unmap(*window)?;
        }
        at += n as u64;
    }
    Ok(())
}
