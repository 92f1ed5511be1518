//! Ferrite: a microkernel for x86-64 PCs.
//!
//! Boot order (each step needs the ones before it):
//! 1. boot.S: multiboot2 entry, long mode, higher half, boot stack.
//! 2. [`kernel_main`]: serial console and log; early GDT and IDT, so that a
//!    fault from here on is reported, not a triple fault.
//! 3. Boot information and the command line (log level, tests).
//! 4. Memory: frame allocator, the kernel's own page tables, heap.
//! 5. This CPU's GDT and TSS with IST stacks; the IDT with IST; SSE, SMEP
//!    and SMAP for user mode, and the `syscall` entry.
//! 6. Interrupt controllers: legacy PICs masked, local APIC, timer; the
//!    scheduler adopts this code as its `main` thread.
//! 7. SMP: every other CPU started through the trampoline (smp/mod.rs).
//! 8. Tests if asked for (`test=`), or the benchmarks (`bench`), else init
//!    (the first boot module) starts in user mode, this `main` thread ends,
//!    and the CPUs run what user mode asks for.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod bench;
mod boot_info;
mod cmdline;
mod console;
mod crash;
mod device;
mod error;
mod ipc;
mod ktest;
mod mem;
mod panic;
mod percpu;
mod proc;
mod quota;
mod sched;
mod screen;
mod smp;
mod sync;
mod syscall;
mod time;

use arch::{apic, cpu, gdt, idt, pic, power, serial};

/// The first Rust code to run, on the boot stack, called from boot.S with
/// the physical address of the multiboot2 information and the TSC at the
/// kernel's first instructions, and how far above its link address GRUB
/// loaded the image.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_main(mbi_phys: u32, entry_tsc: u64, load_offset: u64) -> ! {
    time::mark_boot(entry_tsc);
    mem::set_load_offset(load_offset);
    // The boot CPU is logical CPU 0; its APIC ID is read once the APIC is up.
    percpu::install(0, 0);
    serial::init();
    console::init_logger();
    gdt::init_early();
    idt::load(false);

    let boot = boot_info::load(mbi_phys);
    let options = cmdline::init(boot.cmdline());
    log::info!("boot: Ferrite {} booting, loaded by {}", env!("CARGO_PKG_VERSION"), boot.loader_name());
    let image = mem::frames::kernel_image();
    log::info!(
        "boot: kernel image loaded at {:#x}..{:#x} ({:#x} above its link address)",
        image.start,
        image.end,
        mem::load_offset()
    );
    boot.log_summary();

    cpu::log_features();
    cpu::init_control_registers();
    mem::init(boot);
    console::configure(options.console, boot.acpi_root());
    gdt::init_cpu();
    idt::load(true);
    arch::syscall::init_cpu();

    pic::init_and_mask();
    apic::init_bsp(boot.acpi_root());
    match boot.acpi_root().map(smp::madt::read) {
        Some(Ok(madt)) => arch::ioapic::init(&madt),
        Some(Err(e)) => log::warn!("ioapic: no usable MADT ({e}); no I/O APIC in use"),
        None => log::warn!("ioapic: no ACPI tables; no I/O APIC in use"),
    }
    percpu::set_apic_id(apic::id());
    smp::mark_online(0);
    sched::init_bsp();
    x86_64::instructions::interrupts::enable();
    console::booted();
    power::init(boot.acpi_root());
    smp::init(boot, options.cpu_limit(), options.apfault);
    device::start_watch();

    if let Some(kind) = options.crash {
        crash::provoke(kind);
    }
    if let Some(method) = options.reboot {
        log::info!("boot: done in {} us; reboot={} asks for a reset", time::uptime_us(), method.as_str());
        power::reset(Some(method));
    }
    if let Some(selector) = options.test {
        let passed = ktest::run(selector);
        power::power_off(passed);
    }
    if options.bench {
        let measured = bench::run();
        power::power_off(measured);
    }
    proc::start_init();
    log::info!("boot: done in {} us; idling on the timer", time::uptime_us());
    // The idle threads take over.
    sched::exit_current()
}
