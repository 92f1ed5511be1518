//! Global descriptor table and task-state segment, one pair per CPU.
//!
//! The TSS holds the interrupt stack table: double faults, NMIs and machine
//! checks run on stacks of their own (IST1..IST3), so that a kernel stack
//! overflow — which leaves no room on the faulting stack for the CPU to push
//! an exception frame — still reaches a handler that can report it. Its
//! `RSP0` is the stack an interrupt from user mode lands on: the running
//! user thread's kernel stack, rewritten on every switch to a user thread
//! ([`set_user_entry_stack`]).
//!
//! The TSS is followed by an I/O permission bitmap, one bit a port (a clear
//! bit lets ring 3 use the port), for processes that were given ports
//! (device.rs). While a process without ports runs, the TSS's bitmap
//! offset points past the segment's limit, so every `in` and `out` in user
//! mode faults, whatever the bitmap holds: switching to such a process
//! costs one compare. The bitmap holds the ports of the last process with
//! ports that ran on the CPU, and changes only when another one (or a new
//! port range) comes: its old ranges are set again, the new ones cleared.
//!
//! The selectors' order is fixed by `syscall`/`sysret` (SDM vol. 2,
//! SYSCALL and SYSRET): `syscall` loads CS from STAR[47:32] and SS eight
//! bytes above it; `sysret` to 64-bit mode loads SS from STAR[63:48] + 8
//! and CS from STAR[63:48] + 16. Hence kernel code, kernel data, then user
//! data *before* user code.
use crate::mem::stack::KernelStack;
use alloc::boxed::Box;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_DOUBLE_FAULT: u16 = 1;
pub const IST_NMI: u16 = 2;
pub const IST_MACHINE_CHECK: u16 = 3;
const IST_STACK_SIZE: usize = 16 * 1024;
/// Bytes of the I/O permission bitmap: a bit for each of 65,536 ports.
const IOMAP_BYTES: usize = 65536 / 8;
/// A bitmap offset past the segment's limit: no bitmap, no port for ring 3.
const IOMAP_NONE: u16 = u16::MAX;
/// Most port ranges the bitmap is loaded with (ferrite_abi::IOPORT_RANGES).
pub const IO_RANGES: usize = ferrite_abi::IOPORT_RANGES as usize;

/// A CPU's TSS with its I/O permission bitmap right after it, and what the
/// bitmap holds now.
#[repr(C)]
struct CpuTss {
    tss: TaskStateSegment,
    /// Ends with a byte of ones, which the CPU may read past the last port.
    iomap: [u8; IOMAP_BYTES + 1],
    /// The process and the version of its ports the bitmap holds (0: none).
    loaded: (u64, u64),
    /// Their ranges (first port, count), which the bitmap has cleared.
    ranges: [(u32, u32); IO_RANGES],
    count: usize,
}

impl CpuTss {
    /// Sets (`allow` false) or clears the bits of ports `first..first + n`.
    fn set_ports(&mut self, (first, n): (u32, u32), allow: bool) {
        for port in first..(first + n).min(65536) {
            let (byte, bit) = ((port / 8) as usize, port % 8);
            if allow {
                self.iomap[byte] &= !(1 << bit);
            } else {
                self.iomap[byte] |= 1 << bit;
            }
        }
    }
}

/// Segment selectors; the same on every CPU. The user ones carry RPL 3.
pub const KERNEL_CODE: SegmentSelector = SegmentSelector::new(1, PrivilegeLevel::Ring0);
pub const KERNEL_DATA: SegmentSelector = SegmentSelector::new(2, PrivilegeLevel::Ring0);
pub const USER_DATA: SegmentSelector = SegmentSelector::new(3, PrivilegeLevel::Ring3);
pub const USER_CODE: SegmentSelector = SegmentSelector::new(4, PrivilegeLevel::Ring3);

/// The GDT used from the first Rust instruction until the CPU's own tables
/// exist: the same code and data selectors, no TSS yet.
static EARLY_GDT: spin::Once<GlobalDescriptorTable> = spin::Once::new();

fn load_segments() {
    // SAFETY: both selectors index valid descriptors of the GDT just loaded.
    unsafe {
        CS::set_reg(KERNEL_CODE);
        SS::set_reg(KERNEL_DATA);
        DS::set_reg(KERNEL_DATA);
        ES::set_reg(KERNEL_DATA);
    }
    // FS and GS are left alone: loading a null selector into GS clears its
    // base on some CPUs, and GS holds the per-CPU pointer.
}

/// Loads the early GDT: the boot GDT lives in low memory that paging is
/// about to unmap.
pub fn init_early() {
    let gdt = EARLY_GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        assert_eq!((code, data), (KERNEL_CODE, KERNEL_DATA), "kernel selectors moved");
        gdt
    });
    gdt.load();
    load_segments();
}

/// Builds and loads this CPU's own GDT and TSS, with IST stacks that have
/// guard pages. Needs the heap and kernel stacks.
pub fn init_cpu() {
    let mut tss = TaskStateSegment::new();
    for ist in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK] {
        let stack = KernelStack::new(IST_STACK_SIZE).expect("no memory for an IST stack at boot");
        tss.interrupt_stack_table[usize::from(ist - 1)] = VirtAddr::new(stack.top());
        // Interrupt stacks live as long as the CPU.
        core::mem::forget(stack);
    }
    tss.iomap_base = IOMAP_NONE;
    // Lives as long as the CPU; written only through this pointer
    // (set_user_entry_stack, the port functions), read by the CPU itself.
    // Built in place: 8 KiB is too much for an AP's first stack.
    let cpu_tss: *mut CpuTss = Box::into_raw(Box::<CpuTss>::new_uninit()).cast();
    // SAFETY: `cpu_tss` is a fresh allocation of a CpuTss; every field is
    // written before the block is used.
    unsafe {
        core::ptr::addr_of_mut!((*cpu_tss).tss).write(tss);
        core::ptr::addr_of_mut!((*cpu_tss).iomap).cast::<u8>().write_bytes(0xff, IOMAP_BYTES + 1);
        core::ptr::addr_of_mut!((*cpu_tss).loaded).write((0, 0));
        core::ptr::addr_of_mut!((*cpu_tss).ranges).write([(0, 0); IO_RANGES]);
        core::ptr::addr_of_mut!((*cpu_tss).count).write(0);
    }
    let tss: *mut TaskStateSegment = cpu_tss.cast();
    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let selectors = [
        gdt.append(Descriptor::kernel_code_segment()),
        gdt.append(Descriptor::kernel_data_segment()),
        gdt.append(Descriptor::user_data_segment()),
        gdt.append(Descriptor::user_code_segment()),
    ];
    assert_eq!(selectors, [KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE], "segment selectors moved");
    // SAFETY: the TSS is leaked above, so it outlives the descriptor.
    let descriptor = match unsafe { Descriptor::tss_segment_unchecked(tss) } {
        // The limit covers the bitmap too: bits 0-15 and 48-51 of the low
        // word (SDM vol. 3, 8.2.3, TSS descriptor in 64-bit mode).
        Descriptor::SystemSegment(low, high) => {
            let limit = (core::mem::offset_of!(CpuTss, iomap) + IOMAP_BYTES) as u64;
            let low = (low & !0xffff & !(0xf << 48)) | (limit & 0xffff) | ((limit >> 16) & 0xf) << 48;
            Descriptor::SystemSegment(low, high)
        }
        other => other,
    };
    let tss_sel = gdt.append(descriptor);
    gdt.load();
    load_segments();
    // SAFETY: tss_sel is the TSS descriptor just added to the loaded GDT.
    unsafe { load_tss(tss_sel) };
    crate::percpu::current().tss.store(tss as u64, core::sync::atomic::Ordering::Relaxed);
}

/// Makes `top` the stack that interrupts and exceptions from user mode
/// land on, on this CPU (the TSS's RSP0). Called with interrupts off when a
/// user thread is switched in.
pub fn set_user_entry_stack(top: u64) {
    let tss = crate::percpu::current().tss.load(core::sync::atomic::Ordering::Relaxed) as *mut TaskStateSegment;
    // SAFETY: `tss` is this CPU's own TSS (init_cpu), alive for good and
    // written only here, by this CPU; the CPU reads RSP0 only when it
    // takes an interrupt from user mode, which cannot happen while this
    // code (ring 0, interrupts off) runs.
    unsafe { (*tss).privilege_stack_table[0] = VirtAddr::new(top) };
}

/// This CPU's TSS block.
///
/// # Safety
///
/// Interrupts off, and no other reference to it alive: only this CPU
/// touches its own block, and not from interrupt handlers.
unsafe fn cpu_tss() -> &'static mut CpuTss {
    let tss = crate::percpu::current().tss.load(core::sync::atomic::Ordering::Relaxed) as *mut CpuTss;
    // SAFETY: as the caller promises; `tss` is this CPU's block (init_cpu).
    unsafe { &mut *tss }
}

/// No I/O port for ring 3 on this CPU (a process without ports is
/// switched in). Interrupts off.
pub fn io_ports_off() {
    // SAFETY: interrupts are off (the caller's promise), and the reference
    // ends here.
    let t = unsafe { cpu_tss() };
    if t.tss.iomap_base != IOMAP_NONE {
        t.tss.iomap_base = IOMAP_NONE;
    }
}

/// Ring 3 may use exactly the ports `ranges` (version `version` of process
/// `pid`'s ports) on this CPU. Interrupts off.
pub fn io_ports_on(pid: u64, version: u64, ranges: &[(u32, u32)]) {
    // SAFETY: as in io_ports_off.
    let t = unsafe { cpu_tss() };
    if t.loaded != (pid, version) {
        for i in 0..t.count {
            let r = t.ranges[i];
            t.set_ports(r, false);
        }
        t.count = 0;
        for &r in ranges.iter().take(IO_RANGES) {
            t.set_ports(r, true);
            t.ranges[t.count] = r;
            t.count += 1;
        }
        t.loaded = (pid, version);
    }
    t.tss.iomap_base = core::mem::offset_of!(CpuTss, iomap) as u16;
}
