//! Global descriptor table and task-state segment, one pair per CPU.
//!
//! The TSS holds the interrupt stack table: double faults, NMIs and machine
//! checks run on stacks of their own (IST1..IST3), so that a kernel stack
//! overflow — which leaves no room on the faulting stack for the CPU to push
//! an exception frame — still reaches a handler that can report it.
use crate::mem::stack::KernelStack;
use alloc::boxed::Box;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_DOUBLE_FAULT: u16 = 1;
pub const IST_NMI: u16 = 2;
pub const IST_MACHINE_CHECK: u16 = 3;
const IST_STACK_SIZE: usize = 16 * 1024;

/// Kernel segment selectors; the same on every CPU.
pub const KERNEL_CODE: SegmentSelector = SegmentSelector(0x08);
pub const KERNEL_DATA: SegmentSelector = SegmentSelector(0x10);

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
    let tss: &'static TaskStateSegment = Box::leak(Box::new(tss));
    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    assert_eq!((code, data), (KERNEL_CODE, KERNEL_DATA), "kernel selectors moved");
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    gdt.load();
    load_segments();
    // SAFETY: tss_sel is the TSS descriptor just added to the loaded GDT.
    unsafe { load_tss(tss_sel) };
}
