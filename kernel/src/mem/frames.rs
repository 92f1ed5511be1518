//! The physical frame allocator: a bitmap (ferrite_kcore::frame) built from
//! the memory map, placed in usable memory below 4 GiB and reached through
//! the direct map.
//!
//! Never handed out: anything the memory map does not call usable, all of
//! the first MiB (the AP trampoline page is chosen there and kept for SMP
//! bring-up), the kernel image, the boot information, the boot modules and
//! the bitmap itself.
use super::{phys_to_virt, PhysRange, BOOT_DIRECT_MAP_END, PAGE_SIZE};
use crate::boot_info::{AreaKind, BootInfo};
use crate::sync::IrqSpinlock;
use core::sync::atomic::{AtomicU64, Ordering};
use ferrite_kcore::frame::{self, FrameBitmap, FrameError, RangeList, LOW_MEMORY_END};

static FRAMES: IrqSpinlock<Option<FrameBitmap<'static>>> = IrqSpinlock::new(None);
static TRAMPOLINE_PAGE: AtomicU64 = AtomicU64::new(0);

/// Most usable areas, and reservations, kept in full; real maps have a few
/// dozen. Past that, usable areas are dropped (their memory unused) and
/// reservations merged (frame::RangeList): nothing reserved is lost.
const MAX_AREAS: usize = 256;

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

/// The kernel image's physical range: the linker script's, moved by
/// where GRUB loaded it.
pub fn kernel_image() -> PhysRange {
    let offset = super::load_offset();
    PhysRange::new((&raw const __kernel_phys_start) as u64 + offset, (&raw const __kernel_phys_end) as u64 + offset)
}

pub fn init(boot: &BootInfo) {
    // What the kernel itself occupies first, so that it is kept exactly
    // however long the map is; it is reserved in the bitmap one by one too.
    let own = || [kernel_image(), boot.range()].into_iter().chain(boot.modules().map(|(_, range)| range));
    let mut usable = RangeList::<MAX_AREAS>::new();
    let mut reserved = RangeList::<MAX_AREAS>::new();
    own().for_each(|r| reserved.push_or_merge(r));
    for (range, kind) in boot.memory_areas() {
        match kind {
            AreaKind::Usable => usable.push_or_drop(range),
            AreaKind::FirmwareRam | AreaKind::Other => reserved.push_or_merge(range),
        }
    }
    if usable.as_slice().is_empty() {
        panic!("mem: the loader's memory map lists no usable memory");
    }
    if usable.dropped() > 0 {
        log::warn!("mem: memory map has more than {MAX_AREAS} usable areas; {} left unused", usable.dropped());
    }
    if reserved.merged() > 0 {
        log::warn!(
            "mem: memory map has more than {MAX_AREAS} reserved areas; {} merged for placement (all are reserved)",
            reserved.merged()
        );
    }

    // The AP trampoline page: chosen now, before anything can take it.
    match frame::choose_trampoline_page(usable.as_slice(), reserved.as_slice()) {
        Some(page) => {
            TRAMPOLINE_PAGE.store(page, Ordering::Relaxed);
            log::info!("mem: AP trampoline page reserved at {page:#x}");
        }
        None => log::warn!("mem: no usable page below 1 MiB for the AP trampoline; SMP will be unavailable"),
    }

    let limit = usable.as_slice().iter().map(|r| r.end).max().unwrap_or(0);
    let words = FrameBitmap::words_for(limit);
    let bytes = (words * 8) as u64;
    let Some(at) = frame::place(usable.as_slice(), reserved.as_slice(), bytes, BOOT_DIRECT_MAP_END) else {
        panic!("mem: no room below 4 GiB for the {bytes}-byte frame bitmap");
    };
    // SAFETY: `place` chose usable RAM that overlaps nothing reserved (the
    // kernel, boot information and modules); the boot page tables map it at
    // the direct-map offset; the allocator owns it from now on.
    let bits: &'static mut [u64] = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(at) as *mut u64, words) };
    let mut bitmap = match FrameBitmap::new(bits, limit) {
        Ok(b) => b,
        Err(e) => panic!("mem: frame bitmap: {e}"),
    };
    for r in usable.as_slice() {
        bitmap.add_usable(*r);
    }
    // Reserved areas may overlap usable ones on buggy firmware: reserved wins.
    for (range, kind) in boot.memory_areas() {
        if kind != AreaKind::Usable {
            bitmap.reserve(range);
        }
    }
    // Exactly, not through the list (whose last entry may be a hull).
    own().for_each(|r| bitmap.reserve(r));
    bitmap.reserve(PhysRange::new(0, LOW_MEMORY_END));
    bitmap.reserve(PhysRange::new(at, at + bytes));
    log::info!(
        "mem: {} MiB in {} free frames; bitmap of {} KiB at {at:#x}; kernel image {:#x}..{:#x}",
        (bitmap.free_frames() * PAGE_SIZE) >> 20,
        bitmap.free_frames(),
        bytes >> 10,
        kernel_image().start,
        kernel_image().end
    );
    *FRAMES.lock() = Some(bitmap);
}

fn with<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> R {
    let mut frames = FRAMES.lock();
    let bitmap = frames.as_mut().expect("frame allocator used before mem::frames::init");
    let result = f(bitmap);
    LOW_WATER.fetch_min(bitmap.free_frames(), Ordering::Relaxed);
    result
}

/// The fewest free frames there have been since [`reset_low_water`]: how
/// close the machine came to running out (the hostile suite checks that
/// programs never took the kernel's reserve).
static LOW_WATER: AtomicU64 = AtomicU64::new(u64::MAX);

pub fn low_water() -> u64 {
    LOW_WATER.load(Ordering::Relaxed)
}

pub fn reset_low_water() {
    with(|b| LOW_WATER.store(b.free_frames(), Ordering::Relaxed));
}

/// One free frame (its physical address), lowest first.
pub fn alloc() -> Option<u64> {
    with(|b| b.allocate())
}

/// One free frame wholly below `limit`.
pub fn alloc_below(limit: u64) -> Option<u64> {
    with(|b| b.allocate_below(limit))
}

/// Returns a frame. Freeing a frame twice is a kernel bug: it panics.
pub fn free(addr: u64) {
    if let Err(e) = try_free(addr) {
        panic!("mem: freeing frame {addr:#x}: {e}");
    }
}

pub fn try_free(addr: u64) -> Result<(), FrameError> {
    with(|b| b.free(addr))
}

pub fn is_free(addr: u64) -> bool {
    with(|b| b.is_free(addr))
}

pub fn free_count() -> u64 {
    with(|b| b.free_frames())
}

/// Frames of RAM the allocator manages (free or not).
pub fn usable_count() -> u64 {
    with(|b| b.usable_frames())
}

/// Frames that what user programs ask for (their memory, their threads'
/// kernel stacks, their page tables, the kernel heap that their kernel
/// objects take) may never take: with them the kernel can still grow its
/// heap for itself, kill a process and tear it down, rather than fail an
/// allocation of its own.
pub const KERNEL_RESERVE: u64 = 1024;

/// Frames promised to live [`Claim`]s and not yet taken from them. Changed
/// only under the allocator's lock, so that it and the free count are
/// always seen together.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// Frames set aside for something a user program asked for: taken from
/// the free frames beyond [`KERNEL_RESERVE`] and the other claims, at once
/// and under the allocator's lock, so that two requests on two CPUs can
/// never both pass the check and together eat into the reserve. Frames
/// come out of it with [`Claim::take`]; what is left goes back when it
/// drops. Kernel allocations ([`alloc`]) may still take any free frame:
/// that is what the reserve is for, and then a claim's `take` can fail,
/// which its user handles like any lack of memory.
pub struct Claim {
    left: u64,
}

/// Claims `pages` frames for a user program (see [`Claim`]).
pub fn claim(pages: u64) -> Option<Claim> {
    with(|b| {
        let claimed = CLAIMED.load(Ordering::Relaxed);
        let needed = claimed.checked_add(pages)?.checked_add(KERNEL_RESERVE)?;
        (b.free_frames() >= needed).then(|| {
            CLAIMED.store(claimed + pages, Ordering::Relaxed);
            Claim { left: pages }
        })
    })
}

impl Claim {
    /// One claimed frame (lowest first), or None if the claim is used up
    /// or the kernel took the frame meanwhile.
    pub fn take(&mut self) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        let frame = with(|b| {
            let frame = b.allocate()?;
            CLAIMED.fetch_sub(1, Ordering::Relaxed);
            Some(frame)
        })?;
        self.left -= 1;
        Some(frame)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let left = self.left;
        if left > 0 {
            with(|_| CLAIMED.fetch_sub(left, Ordering::Relaxed));
        }
    }
}

/// The page below 1 MiB kept for the AP trampoline, if one was found.
pub fn trampoline_page() -> Option<u64> {
    match TRAMPOLINE_PAGE.load(Ordering::Relaxed) {
        0 => None,
        page => Some(page),
    }
}
