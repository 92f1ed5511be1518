//! The multiboot2 entry (boot.S) and the constants it is assembled with.
//!
//! Every number the boot assembly needs is named here, once, and passed to
//! it as a `const` operand.
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::paging::PageTableFlags;

/// Magic in the multiboot2 header (multiboot2 spec, 3.1.1).
const MB2_HEADER_MAGIC: u32 = 0xe852_50d6;
/// Magic that a multiboot2 loader leaves in eax (multiboot2 spec, 3.3).
const MB2_BOOT_MAGIC: u32 = 0x36d7_6289;
/// The multiboot2 boot information's load base address tag (spec 3.6.19).
const MB2_TAG_LOAD_BASE: u32 = 21;
/// Where the relocatable header tag lets GRUB load the image: from its link
/// address (the lowest it may go: nothing below is ever mapped for it) up to
/// 1 GiB (the boot page tables and the early table frames live below 4 GiB).
const MB2_RELOC_MIN: u32 = 0x20_0000;
const MB2_RELOC_MAX: u32 = 0x4000_0000;
/// EFLAGS.ID: writable exactly when CPUID exists.
const EFLAGS_ID: u32 = 1 << 21;
/// CPUID 8000_0001h EDX bit 29: long mode (Intel SDM vol. 2, CPUID).
const CPUID_LONG_MODE: u32 = 1 << 29;
/// IA32_EFER (Intel SDM vol. 4, table 2-2).
const MSR_EFER: u32 = 0xc000_0080;
/// COM1's I/O base and 16550 register values, for the 32-bit error path
/// (the same values serial.rs names).
const COM1: u16 = 0x3f8;
const UART_LCR_DLAB: u8 = 0x80;
const UART_LCR_8N1: u8 = 0x03;
const UART_FCR_ENABLE: u8 = 0xc7;
const UART_LSR_THR_EMPTY: u8 = 0x20;

/// GDT descriptors of the boot GDT: 64-bit code (L, P, S, type=execute/read)
/// and data (P, S, type=read/write). Selectors 0x08 and 0x10.
const GDT_CODE64: u64 = 0x00af_9a00_0000_ffff;
const GDT_DATA: u64 = 0x00cf_9200_0000_ffff;
const SEL_CODE: u16 = 0x08;
const SEL_DATA: u16 = 0x10;

const PTE_TABLE: u32 = (PageTableFlags::PRESENT.bits() | PageTableFlags::WRITABLE.bits()) as u32;
const PTE_LARGE: u32 = PTE_TABLE | PageTableFlags::HUGE_PAGE.bits() as u32;

core::arch::global_asm!(
    include_str!("boot.S"),
    mb2_header_magic = const MB2_HEADER_MAGIC,
    mb2_boot_magic = const MB2_BOOT_MAGIC,
    mb2_tag_load_base = const MB2_TAG_LOAD_BASE,
    mb2_reloc_min = const MB2_RELOC_MIN,
    mb2_reloc_max = const MB2_RELOC_MAX,
    eflags_id = const EFLAGS_ID,
    cpuid_long_mode = const CPUID_LONG_MODE,
    msr_efer = const MSR_EFER,
    efer_lme = const EferFlags::LONG_MODE_ENABLE.bits() as u32,
    cr4_pae = const Cr4Flags::PHYSICAL_ADDRESS_EXTENSION.bits() as u32,
    cr0_pg_pe = const (Cr0Flags::PAGING.bits() | Cr0Flags::PROTECTED_MODE_ENABLE.bits()) as u32,
    com1 = const COM1,
    uart_lcr_dlab = const UART_LCR_DLAB,
    uart_lcr_8n1 = const UART_LCR_8N1,
    uart_fcr_enable = const UART_FCR_ENABLE,
    uart_lsr_thr_empty = const UART_LSR_THR_EMPTY,
    gdt_code64 = const GDT_CODE64,
    gdt_data = const GDT_DATA,
    sel_code = const SEL_CODE,
    sel_data = const SEL_DATA,
    pte_table = const PTE_TABLE,
    pte_large = const PTE_LARGE,
    kernel_main = sym crate::kernel_main,
);
