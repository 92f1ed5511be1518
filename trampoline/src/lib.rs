//! The application-processor trampoline: the code a STARTUP IPI runs, from
//! 16-bit real mode through 32-bit protected mode to long mode and into the
//! kernel, and its parameter block.
//!
//! The kernel copies [`code`] to a page below 1 MiB and writes a [`Params`]
//! at [`PARAMS_OFFSET`] in that page. The assembly (trampoline.S) reaches
//! every field through `offset_of!` constants computed here, so the layout
//! is described once, in Rust. The assembler refuses code that runs into
//! the parameter block (`.org`), and the constant assertions below refuse a
//! block that runs off the page.
#![no_std]

use core::mem::{offset_of, size_of};
use core::sync::atomic::AtomicU32;

/// Size of the page the trampoline runs in.
pub const PAGE_SIZE: usize = 4096;
/// Where the parameter block starts within the page.
pub const PARAMS_OFFSET: usize = 0x200;
/// Most CPUs the table can list (the page holds them all).
pub const MAX_CPUS: usize = 256;

/// Progress of one AP, written by the AP as it goes.
pub mod state {
    /// Not yet seen: the AP has not run the trampoline.
    pub const NOT_STARTED: u32 = 0;
    /// Found itself in the table (real mode).
    pub const REAL: u32 = 1;
    pub const PROTECTED: u32 = 2;
    pub const LONG: u32 = 3;
    /// In the kernel, set up and taking interrupts (written by Rust).
    pub const ONLINE: u32 = 4;

    pub fn name(state: u32) -> &'static str {
        match state {
            NOT_STARTED => "not started",
            REAL => "real mode",
            PROTECTED => "protected mode",
            LONG => "long mode",
            ONLINE => "online",
            _ => "an unknown state",
        }
    }
}

/// GDT selectors of the trampoline's own GDT.
pub const SEL_CODE32: u16 = 0x08;
pub const SEL_DATA: u16 = 0x10;
pub const SEL_CODE64: u16 = 0x18;

/// One AP's row in the table.
#[repr(C)]
pub struct CpuSlot {
    pub apic_id: u32,
    /// One of [`state`]; written by the AP.
    pub state: AtomicU32,
}

/// The parameter block, at [`PARAMS_OFFSET`] in the trampoline page.
#[repr(C)]
pub struct Params {
    /// LGDT operand: limit in bits 0..16, linear base in bits 16..48.
    pub gdtr: u64,
    /// Far pointer (offset in bits 0..32, selector in 32..48) to
    /// `trampoline_pm32`'s linear address.
    pub pm32_jump: u64,
    /// Far pointer to `trampoline_lm64`.
    pub lm64_jump: u64,
    /// Page-table root for the switch to long mode; below 4 GiB.
    pub cr3: u64,
    /// Kernel entry: `extern "C" fn(cpu_index: u64) -> !`.
    pub entry: u64,
    /// Virtual address of an array of initial stack pointers, by index.
    pub stacks: u64,
    /// CR4 bits to set (PAE, and PGE where present).
    pub cr4: u32,
    /// EFER bits to set (LME, and NXE where present).
    pub efer: u32,
    /// Rows in use in `cpus`.
    pub cpu_count: u32,
    /// APs that ran the trampoline at all.
    pub entered: AtomicU32,
    /// APs that were not in the table and halted.
    pub parked: AtomicU32,
    pub reserved: u32,
    /// Null, 32-bit code, data, 64-bit code.
    pub gdt: [u64; 4],
    pub cpus: [CpuSlot; MAX_CPUS],
}

const _: () = assert!(PARAMS_OFFSET + size_of::<Params>() <= PAGE_SIZE, "the parameter block runs off the page");
const _: () = assert!(PARAMS_OFFSET.is_multiple_of(8) && offset_of!(Params, gdt).is_multiple_of(8));

/// Linear address of a field within the page, as the assembly sees it.
const fn at(field: usize) -> usize {
    PARAMS_OFFSET + field
}

/// Segment descriptors: flat 32-bit code and data, 64-bit code.
const GDT_CODE32: u64 = 0x00cf_9a00_0000_ffff;
const GDT_DATA: u64 = 0x00cf_9200_0000_ffff;
const GDT_CODE64: u64 = 0x00af_9a00_0000_ffff;
/// CR0.PE; CR0.PG | CR0.WP.
const CR0_PE: u32 = 1;
const CR0_PG_WP: u32 = (1 << 31) | (1 << 16);
/// IA32_EFER.
const MSR_EFER: u32 = 0xc000_0080;

core::arch::global_asm!(
    include_str!("trampoline.S"),
    params = const PARAMS_OFFSET,
    p_gdtr = const at(offset_of!(Params, gdtr)),
    p_pm32_jump = const at(offset_of!(Params, pm32_jump)),
    p_lm64_jump = const at(offset_of!(Params, lm64_jump)),
    p_cr3 = const at(offset_of!(Params, cr3)),
    p_entry = const at(offset_of!(Params, entry)),
    p_stacks = const at(offset_of!(Params, stacks)),
    p_cr4 = const at(offset_of!(Params, cr4)),
    p_efer = const at(offset_of!(Params, efer)),
    p_cpu_count = const at(offset_of!(Params, cpu_count)),
    p_entered = const at(offset_of!(Params, entered)),
    p_parked = const at(offset_of!(Params, parked)),
    p_cpus = const at(offset_of!(Params, cpus)),
    state_real = const state::REAL,
    state_protected = const state::PROTECTED,
    state_long = const state::LONG,
    sel_data = const SEL_DATA,
    cr0_pe = const CR0_PE,
    cr0_pg_wp = const CR0_PG_WP,
    msr_efer = const MSR_EFER,
);

unsafe extern "C" {
    static trampoline_start: u8;
    static trampoline_pm32: u8;
    static trampoline_lm64: u8;
    static trampoline_end: u8;
}

fn offset_of_symbol(symbol: *const u8) -> usize {
    symbol as usize - (&raw const trampoline_start) as usize
}

/// The code to copy to the start of the page (everything before the
/// parameter block).
pub fn code() -> &'static [u8] {
    let len = offset_of_symbol(&raw const trampoline_end);
    assert_eq!(len, PARAMS_OFFSET, "trampoline code and parameter offset disagree");
    // SAFETY: trampoline_start..trampoline_end is one initialised section
    // of the kernel image, never written.
    unsafe { core::slice::from_raw_parts(&raw const trampoline_start, len) }
}

impl Params {
    /// Fills in the fixed parts for a trampoline copied to `page`.
    pub fn describe(&mut self, page: u32) {
        let linear = |symbol: *const u8| u64::from(page) + offset_of_symbol(symbol) as u64;
        self.gdt = [0, GDT_CODE32, GDT_DATA, GDT_CODE64];
        let gdt_base = u64::from(page) + at(offset_of!(Params, gdt)) as u64;
        self.gdtr = (size_of::<[u64; 4]>() as u64 - 1) | (gdt_base << 16);
        self.pm32_jump = linear(&raw const trampoline_pm32) | (u64::from(SEL_CODE32) << 32);
        self.lm64_jump = linear(&raw const trampoline_lm64) | (u64::from(SEL_CODE64) << 32);
    }
}
