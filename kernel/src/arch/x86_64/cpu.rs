//! CPU features (CPUID) and the control-register bits the kernel relies on.
use ferrite_kcore::clock::{CpuidClocks, CpuidFrequencies};
use raw_cpuid::CpuId;
use spin::Once;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

/// What the kernel needs to know about the CPU, read once from CPUID.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub vendor: [u8; 12],
    /// CPUID.01H:ECX[21].
    pub x2apic: bool,
    /// CPUID.01H:ECX[24]: the LAPIC timer has TSC-deadline mode.
    pub tsc_deadline: bool,
    /// CPUID.8000_0001H:EDX[20]: execute-disable.
    pub nx: bool,
    /// CPUID.8000_0001H:EDX[26]: 1 GiB pages.
    pub gib_pages: bool,
    /// CPUID.8000_0007H:EDX[8]: the TSC ticks at a constant rate.
    pub invariant_tsc: bool,
    /// CPUID.01H:EDX[13]: global pages.
    pub global_pages: bool,
    /// The TSC's (and maybe the APIC timer's) frequency as CPUID leaves
    /// 15H, 16H or 4000_0010H give it, if any (ferrite_kcore::clock).
    pub cpuid_clocks: Option<CpuidFrequencies>,
    /// CPUID.07H:EBX[7]: supervisor-mode execution prevention.
    pub smep: bool,
    /// CPUID.07H:EBX[20]: supervisor-mode access prevention.
    pub smap: bool,
    /// CPUID.8000_0001H:EDX[27]: `rdtscp`.
    pub rdtscp: bool,
    /// CPUID.07H:ECX[2]: user-mode instruction prevention (`sgdt`, `sidt`,
    /// `sldt`, `str` and `smsw` fault in ring 3).
    pub umip: bool,
    /// CPUID.01H:EDX[7]: the machine-check exception.
    pub mce: bool,
    /// CPUID.01H:ECX[26]: XSAVE and XCR0.
    pub xsave: bool,
    /// CPUID.(EAX=0DH,ECX=1):EAX[0] and [1]: XSAVEOPT and XSAVEC.
    pub xsaveopt: bool,
    pub xsavec: bool,
    /// The XCR0 bits the CPU supports (CPUID.(EAX=0DH,ECX=0):EDX:EAX).
    pub xcr0_supported: u64,
    /// The CPU starts its APs without the 10 ms wait after INIT that the
    /// MP specification asks of 1990s CPUs: Intel family 6 and later, AMD
    /// family 0Fh and later, or any CPU under a hypervisor (Linux's
    /// `smp_quirk_init_udelay` draws the same line).
    pub modern_init: bool,
    /// CPUID.01H:EDX[16]: the page attribute table.
    pub pat: bool,
    /// CPUID.8000_0008H:EAX[7:0]: how many bits a physical address has
    /// (36 where the leaf is missing, as the SDM says).
    pub phys_bits: u8,
}

static FEATURES: Once<Features> = Once::new();

pub fn features() -> &'static Features {
    FEATURES.call_once(detect)
}

/// The CPUID leaves that may give the TSC's rate: 15H and 16H on Intel
/// (elsewhere they are reserved or mean something else; Linux reads them
/// on Intel only), and the hypervisor's timing leaf.
fn cpuid_clocks(vendor: &[u8; 12], max_leaf: u32, info: Option<&raw_cpuid::FeatureInfo>) -> CpuidClocks {
    use core::arch::x86_64::__cpuid;
    let intel = vendor == b"GenuineIntel";
    let hypervisor = info.is_some_and(|i| i.has_hypervisor());
    CpuidClocks {
        leaf15: (intel && max_leaf >= 0x15).then(|| {
            let r = __cpuid(0x15);
            [r.eax, r.ebx, r.ecx]
        }),
        leaf16_base_mhz: (intel && max_leaf >= 0x16).then(|| __cpuid(0x16).eax & 0xffff),
        intel_family6_model: info.filter(|i| intel && i.family_id() == 6).map(|i| i.model_id()),
        hypervisor_khz: (hypervisor && __cpuid(0x4000_0000).eax >= 0x4000_0010).then(|| {
            let r = __cpuid(0x4000_0010);
            [r.eax, r.ebx]
        }),
    }
}

fn detect() -> Features {
    let cpuid = CpuId::new();
    let mut vendor = [0u8; 12];
    if let Some(v) = cpuid.get_vendor_info() {
        let s = v.as_str().as_bytes();
        let n = s.len().min(12);
        vendor[..n].copy_from_slice(&s[..n]);
    }
    let info = cpuid.get_feature_info();
    let extended = cpuid.get_extended_feature_info();
    let ext = cpuid.get_extended_processor_and_feature_identifiers();
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    let cpuid_clocks = ferrite_kcore::clock::from_cpuid(&cpuid_clocks(&vendor, max_leaf, info.as_ref()));
    let leaf7 = cpuid.get_extended_feature_info();
    let xsave_leaf = |sub: u32| core::arch::x86_64::__cpuid_count(0xd, sub);
    let xsave = info.as_ref().is_some_and(|i| i.has_xsave()) && max_leaf >= 0xd;
    let (xsaveopt, xsavec, xcr0_supported) = if xsave {
        let one = xsave_leaf(1).eax;
        let zero = xsave_leaf(0);
        (one & 1 != 0, one & 2 != 0, u64::from(zero.edx) << 32 | u64::from(zero.eax))
    } else {
        (false, false, 0)
    };
    let phys_bits = cpuid.get_processor_capacity_feature_info().map_or(36, |c| c.physical_address_bits());
    Features {
        pat: info.as_ref().is_some_and(|i| i.has_pat()),
        phys_bits,
        umip: leaf7.as_ref().is_some_and(|e| e.has_umip()),
        mce: info.as_ref().is_some_and(|i| i.has_mce()),
        xsave,
        xsaveopt,
        xsavec,
        xcr0_supported,
        vendor,
        x2apic: info.as_ref().is_some_and(|i| i.has_x2apic()),
        tsc_deadline: info.as_ref().is_some_and(|i| i.has_tsc_deadline()),
        global_pages: info.as_ref().is_some_and(|i| i.has_pge()),
        nx: ext.as_ref().is_some_and(|e| e.has_execute_disable()),
        gib_pages: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
        invariant_tsc: cpuid.get_advanced_power_mgmt_info().is_some_and(|p| p.has_invariant_tsc()),
        cpuid_clocks,
        smep: extended.as_ref().is_some_and(|e| e.has_smep()),
        smap: extended.as_ref().is_some_and(|e| e.has_smap()),
        rdtscp: ext.as_ref().is_some_and(|e| e.has_rdtscp()),
        modern_init: info.as_ref().is_some_and(|i| {
            let family = i.family_id();
            i.has_hypervisor()
                || (&vendor == b"GenuineIntel" && family >= 6)
                || (&vendor == b"AuthenticAMD" && family >= 0xf)
        }),
    }
}

pub fn log_features() {
    let f = features();
    log::info!(
        "cpu: {} x2apic={} tsc-deadline={} nx={} 1g-pages={} invariant-tsc={} global-pages={} smep={} smap={} umip={} xsave={} cpuid-tsc-hz={}",
        core::str::from_utf8(&f.vendor).unwrap_or("?"),
        f.x2apic,
        f.tsc_deadline,
        f.nx,
        f.gib_pages,
        f.invariant_tsc,
        f.global_pages,
        f.smep,
        f.smap,
        f.umip,
        f.xsave,
        f.cpuid_clocks.map_or(0, |c| c.tsc_hz)
    );
}

/// Loads complete CR0 and CR4 values on this CPU (and EFER.NXE, and XCR0),
/// rather than adding bits to what the loader, the firmware or INIT left
/// (after INIT, CR0 has caching disabled and no NE). Called first thing on
/// every CPU, the boot CPU included:
///
/// - CR0: protected mode and paging (PE, PG); ET; NE, so that an unmasked
///   x87 exception raises #MF instead of going out on a FERR# pin; WP, so
///   the kernel honours read-only pages too; MP with EM and TS clear, so
///   x87 and SSE instructions run (the kernel saves the state on every
///   switch); AM, so that a user program that sets RFLAGS.AC gets
///   alignment checks, as on Linux; caching on (CD and NW clear).
/// - CR4: PAE (long mode), PGE where present (global kernel mappings
///   survive CR3 writes), OSFXSR and OSXMMEXCPT (FXSAVE-managed SSE state,
///   SIMD exceptions as #XM), OSXSAVE where XSAVE exists (the state is
///   managed with XSAVE: arch::user), MCE where present (a machine check
///   is an exception, not a shutdown), and where the CPU has them SMEP (the
///   kernel never executes user pages), SMAP (it touches them only in its
///   copy routine, with RFLAGS.AC set) and UMIP (user code cannot read
///   the GDT, IDT, LDT and TR bases or the machine status word).
///   Nothing else: no VME, PVI, TSD, DE, PCE, FSGSBASE or PCID.
/// - The PAT, where present: [`PAT`].
pub fn init_control_registers() {
    let f = features();
    if f.nx {
        // SAFETY: setting NXE only makes the NX bit meaningful.
        unsafe { Efer::update(|e| e.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
    let cr0 = Cr0Flags::PROTECTED_MODE_ENABLE
        | Cr0Flags::MONITOR_COPROCESSOR
        | Cr0Flags::EXTENSION_TYPE
        | Cr0Flags::NUMERIC_ERROR
        | Cr0Flags::WRITE_PROTECT
        | Cr0Flags::ALIGNMENT_MASK
        | Cr0Flags::PAGING;
    // SAFETY: paging and protected mode stay on (we run with them); the
    // other bits only change how the kernel's and users' instructions are
    // checked, as described above, and caching going on is always safe.
    unsafe { Cr0::write(cr0) };
    let mut cr4 = Cr4Flags::PHYSICAL_ADDRESS_EXTENSION | Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE;
    for (has, flag) in [
        (f.global_pages, Cr4Flags::PAGE_GLOBAL),
        (f.xsave, Cr4Flags::OSXSAVE),
        (f.mce, Cr4Flags::MACHINE_CHECK_EXCEPTION),
        (f.smep, Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        (f.smap, Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
        (f.umip, Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION),
    ] {
        if has {
            cr4 |= flag;
        }
    }
    if f.smap {
        super::user::SMAP_ON.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    if f.pat {
        // SAFETY: only entry 1 changes, and on the boot CPU no page
        // selects it yet. An AP already runs on the kernel's tables, whose
        // framebuffer pages (global) select it: the CR4 writes below flush
        // every TLB entry, global ones too, after the PAT is in place (as
        // the SDM asks after a PAT change); the framebuffer is never read,
        // so no cache line has the old type. Every CPU gets the same table.
        unsafe { Msr::new(IA32_PAT).write(PAT) };
    }
    // SAFETY: PAE stays on (long mode needs it) and nothing else the
    // kernel relies on goes off; the rest is described above. Writing CR4
    // without PGE first flushes global TLB entries too.
    unsafe {
        Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
        Cr4::write(cr4);
    }
    if f.xsave {
        super::user::init_xcr0();
    }
}

const IA32_PAT: u32 = 0x277;

/// The page attribute table every CPU loads: the power-on table (entries
/// 0-3 and 4-7 alike: write-back, write-through, UC-, uncached) except
/// entry 1 (PWT set, PCD and PAT clear), which is write-combining, as on
/// Linux. Entry 3 (PCD and PWT) stays uncached for device registers.
const PAT: u64 = 0x0007_0406_0007_0106;

/// Reads the TSC at the start of a timed stretch: `lfence` first, so no
/// earlier instruction is still running when it is read (SDM vol. 2,
/// RDTSC).
#[inline]
pub fn timer_start() -> u64 {
    rdtsc()
}

/// Reads the TSC at the end of a timed stretch: `rdtscp` waits for every
/// earlier instruction, and the `lfence` after it keeps later ones from
/// starting before the read. Without `rdtscp`, `lfence; rdtsc`.
#[inline]
pub fn timer_end() -> u64 {
    if !features().rdtscp {
        return rdtsc();
    }
    let (low, high): (u32, u32);
    // SAFETY: rdtscp and lfence have no memory effects (rcx gets the TSC
    // auxiliary value, which is discarded).
    unsafe {
        core::arch::asm!("rdtscp", "lfence", out("eax") low, out("edx") high, out("ecx") _, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// Reads the time-stamp counter, ordered after earlier loads (`lfence`).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: lfence and rdtsc have no memory effects.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        core::arch::x86_64::_rdtsc()
    }
}
