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
    // Lives as long as the CPU; written only through this pointer
    // (set_user_entry_stack), read by the CPU itself.
    let tss: *mut TaskStateSegment = Box::into_raw(Box::new(tss));
    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let selectors = [
        gdt.append(Descriptor::kernel_code_segment()),
        gdt.append(Descriptor::kernel_data_segment()),
        gdt.append(Descriptor::user_data_segment()),
        gdt.append(Descriptor::user_code_segment()),
    ];
    assert_eq!(selectors, [KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE], "segment selectors moved");
    // SAFETY: the TSS is leaked above, so it outlives the descriptor.
    let tss_sel = gdt.append(unsafe { Descriptor::tss_segment_unchecked(tss) });
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
