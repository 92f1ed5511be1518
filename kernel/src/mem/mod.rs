//! Memory management: physical frames, the kernel's page tables, kernel
//! stacks and the heap.
//!
//! The kernel's virtual address space (upper half):
//!
//! | range                          | what                                    |
//! |--------------------------------|-----------------------------------------|
//! | `PHYS_OFFSET` + physical       | direct map of RAM, 2 MiB pages, NX      |
//! | `HEAP_START` .. +`HEAP_MAX`    | kernel heap, grown on demand            |
//! | `MMIO_START` ..                | device registers, uncached              |
//! | `STACKS_START` ..              | kernel stacks, each with a guard page   |
//! | `KERNEL_VMA` + link address    | the kernel image (top 2 GiB), wherever  |
//! |                                | GRUB loaded it ([`load_offset`])        |
//!
//! Lock order: heap, then kernel page table, then frame allocator. The frame
//! allocator never allocates.
pub mod aspace;
pub mod frames;
pub mod heap;
pub mod paging;
pub mod shared;
pub mod stack;

pub use ferrite_kcore::frame::Range as PhysRange;

pub const PAGE_SIZE: u64 = 4096;
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
pub const HEAP_START: u64 = 0xffff_c000_0000_0000;
pub const HEAP_MAX: u64 = 64 << 30;
pub const MMIO_START: u64 = 0xffff_d000_0000_0000;
pub const MMIO_MAX: u64 = 1 << 30;
pub const STACKS_START: u64 = 0xffff_e000_0000_0000;
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// The boot page tables direct-map this much; early allocations for the
/// kernel's own tables must come from below it.
pub const BOOT_DIRECT_MAP_END: u64 = 4 << 30;

/// How far above its link address GRUB loaded the kernel image (boot.S
/// finds it; a multiple of the page size).
static LOAD_OFFSET: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records where the kernel image was loaded: first thing at boot.
pub fn set_load_offset(offset: u64) {
    LOAD_OFFSET.store(offset, core::sync::atomic::Ordering::Relaxed);
}

/// How far above its link address (2 MiB) the kernel image was loaded.
pub fn load_offset() -> u64 {
    LOAD_OFFSET.load(core::sync::atomic::Ordering::Relaxed)
}

/// The physical address of `virt`, an address in the kernel image.
pub fn image_virt_to_phys(virt: u64) -> u64 {
    virt - KERNEL_VMA + load_offset()
}

/// The direct-map address of a physical address.
#[inline]
pub const fn phys_to_virt(phys: u64) -> u64 {
    PHYS_OFFSET + phys
}

pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

/// Brings up memory management; called once, on the boot CPU.
pub fn init(boot: &crate::boot_info::BootInfo) {
    frames::init(boot);
    paging::init(boot);
    heap::init();
}
