//! What only x86-64 knows: boot entry, descriptor tables, traps, system-call
//! entry, user-mode state, the local APIC, the PIT, the serial port and
//! power control.
pub mod apic;
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod ipi;
pub mod irqtrace;
pub mod pic;
pub mod pit;
pub mod power;
pub mod refclock;
pub mod serial;
pub mod sleep;
pub mod switch;
pub mod syscall;
pub mod tlb;
pub mod trap;
pub mod user;
