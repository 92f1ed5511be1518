//! CPU features (CPUID) and the control-register bits the kernel relies on.
use raw_cpuid::CpuId;
use spin::Once;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

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
    /// TSC frequency reported by CPUID leaf 15H/16H, if any.
    pub tsc_hz_cpuid: Option<u64>,
    /// CPUID.07H:EBX[7]: supervisor-mode execution prevention.
    pub smep: bool,
    /// CPUID.07H:EBX[20]: supervisor-mode access prevention.
    pub smap: bool,
    /// CPUID.8000_0001H:EDX[27]: `rdtscp`.
    pub rdtscp: bool,
    /// The CPU starts its APs without the 10 ms wait after INIT that the
    /// MP specification asks of 1990s CPUs: Intel family 6 and later, AMD
    /// family 0Fh and later, or any CPU under a hypervisor (Linux's
    /// `smp_quirk_init_udelay` draws the same line).
    pub modern_init: bool,
}

static FEATURES: Once<Features> = Once::new();

pub fn features() -> &'static Features {
    FEATURES.call_once(detect)
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
    let tsc_hz_cpuid = cpuid.get_tsc_info().and_then(|t| t.tsc_frequency()).or_else(|| {
        cpuid
            .get_processor_frequency_info()
            .map(|f| u64::from(f.processor_base_frequency()) * 1_000_000)
            .filter(|&hz| hz != 0)
    });
    Features {
        vendor,
        x2apic: info.as_ref().is_some_and(|i| i.has_x2apic()),
        tsc_deadline: info.as_ref().is_some_and(|i| i.has_tsc_deadline()),
        global_pages: info.as_ref().is_some_and(|i| i.has_pge()),
        nx: ext.as_ref().is_some_and(|e| e.has_execute_disable()),
        gib_pages: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
        invariant_tsc: cpuid.get_advanced_power_mgmt_info().is_some_and(|p| p.has_invariant_tsc()),
        tsc_hz_cpuid,
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
        "cpu: {} x2apic={} tsc-deadline={} nx={} 1g-pages={} invariant-tsc={} global-pages={} smep={} smap={} cpuid-tsc-hz={:?}",
        core::str::from_utf8(&f.vendor).unwrap_or("?"),
        f.x2apic,
        f.tsc_deadline,
        f.nx,
        f.gib_pages,
        f.invariant_tsc,
        f.global_pages,
        f.smep,
        f.smap,
        f.tsc_hz_cpuid
    );
}

/// Turns on what the kernel's page tables assume: EFER.NXE (so NX bits are
/// not reserved bits), CR0.WP (the kernel honours read-only pages too) and
/// CR4.PGE (global kernel mappings survive CR3 reloads).
pub fn enable_paging_features() {
    let f = features();
    if f.nx {
        // SAFETY: setting NXE only makes the NX bit meaningful.
        unsafe { Efer::update(|e| e.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
    // SAFETY: the kernel never writes its own read-only pages on purpose.
    unsafe { Cr0::update(|c| c.insert(Cr0Flags::WRITE_PROTECT)) };
    if f.global_pages {
        // SAFETY: global pages only keep kernel TLB entries across CR3 writes.
        unsafe { Cr4::update(|c| c.insert(Cr4Flags::PAGE_GLOBAL)) };
    }
}

/// Prepares this CPU for user mode:
/// - SSE for user code (CR4.OSFXSR and OSXMMEXCPT: the OS saves the state
///   with FXSAVE and takes SIMD exceptions as #XM; CR0.EM clear and MP set,
///   so x87 and SSE instructions run instead of trapping);
/// - SMEP (the kernel never executes user pages) and SMAP (it touches user
///   pages only inside its copy routine, with RFLAGS.AC set) where the CPU
///   has them.
pub fn enable_user_features() {
    let f = features();
    // SAFETY: the kernel itself uses no x87/SSE instructions; these bits
    // only let user code use them, with the state saved on every switch.
    unsafe {
        Cr0::update(|c| {
            c.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            c.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|c| c.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
    let mut protect = Cr4Flags::empty();
    if f.smep {
        protect |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if f.smap {
        protect |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
        super::user::SMAP_ON.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: the kernel runs no code from user pages, and reads user pages
    // only in arch::user's copy routine, which sets RFLAGS.AC around it.
    unsafe { Cr4::update(|c| c.insert(protect)) };
}

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
