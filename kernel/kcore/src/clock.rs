//! What CPUID says about the TSC's and the local APIC timer's frequencies,
//! in the order Linux trusts it (`native_calibrate_tsc` and the hypervisor
//! timing leaf):
//!
//! 1. **Leaf 15h**: TSC = crystal × EBX / EAX, where ECX is the crystal's
//!    frequency. Some Intel parts leave ECX 0; for those the crystal comes
//!    from the model (the table below, which Linux used until it could
//!    derive it) or from leaf 16h's base frequency × EAX / EBX. The crystal
//!    also drives the local APIC timer, so its frequency is the timer's.
//! 2. **Leaf 16h** alone: the processor's base frequency in MHz, which is
//!    the TSC's nominal rate on the Intel parts that have the leaf (coarse:
//!    whole megahertz). Nothing about the APIC timer.
//! 3. **Leaf 4000_0010h** (VMware's timing leaf, which QEMU/KVM and other
//!    hypervisors also give): the TSC and the APIC bus in kHz.
//!
//! Anything else (AMD parts, most hypervisors under TCG) leaves the kernel
//! to calibrate against a reference clock.

/// The raw CPUID values that matter, gathered by the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidClocks {
    /// Leaf 15h's EAX (denominator), EBX (numerator), ECX (crystal Hz), if
    /// the CPU has the leaf.
    pub leaf15: Option<[u32; 3]>,
    /// Leaf 16h's EAX[15:0]: base frequency in MHz, if the CPU has the leaf.
    pub leaf16_base_mhz: Option<u32>,
    /// The model, for Intel family 6 parts (the crystal table's key).
    pub intel_family6_model: Option<u8>,
    /// Leaf 4000_0010h's EAX (TSC kHz) and EBX (APIC bus kHz), if a
    /// hypervisor has the leaf.
    pub hypervisor_khz: Option<[u32; 2]>,
}

/// Where a frequency came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuidSource {
    /// Leaf 15h with its crystal frequency.
    Leaf15,
    /// Leaf 15h with the crystal frequency known for the CPU model.
    Leaf15ModelCrystal,
    /// Leaf 15h with the crystal derived from leaf 16h.
    Leaf15BaseCrystal,
    /// Leaf 16h's base frequency.
    Leaf16,
    /// The hypervisor's timing leaf.
    Hypervisor,
}

impl CpuidSource {
    /// How the log names it.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Leaf15 => "CPUID 15h",
            Self::Leaf15ModelCrystal => "CPUID 15h and the crystal of this CPU model",
            Self::Leaf15BaseCrystal => "CPUID 15h with the crystal from 16h",
            Self::Leaf16 => "CPUID 16h (base frequency)",
            Self::Hypervisor => "the hypervisor's CPUID leaf 40000010h",
        }
    }
}

/// Frequencies CPUID gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidFrequencies {
    /// The TSC's, in Hz.
    pub tsc_hz: u64,
    /// The local APIC timer's input (before its divider), in Hz, if known.
    pub apic_hz: Option<u64>,
    /// Which leaf said so.
    pub source: CpuidSource,
}

/// The slowest and fastest TSC believed: outside these, CPUID is taken to
/// be lying (a hypervisor's placeholder, a firmware bug) and ignored.
pub const TSC_HZ_PLAUSIBLE: core::ops::RangeInclusive<u64> = 100_000_000..=20_000_000_000;

/// The crystal frequency of Intel family 6 models whose leaf 15h leaves ECX
/// 0 (Linux's table before 5.x derived it from leaf 16h): Skylake and Kaby
/// Lake client and desktop at 24 MHz, Goldmont D (Denverton) at 25 MHz,
/// Goldmont at 19.2 MHz.
pub fn crystal_of_model(model: u8) -> Option<u64> {
    match model {
        0x4e | 0x5e | 0x8e | 0x9e => Some(24_000_000),
        0x5f => Some(25_000_000),
        0x5c => Some(19_200_000),
        _ => None,
    }
}

/// The TSC frequency (and the APIC timer's where known) from CPUID, or
/// `None` if no leaf gives a plausible one.
pub fn from_cpuid(c: &CpuidClocks) -> Option<CpuidFrequencies> {
    let plausible = |f: CpuidFrequencies| TSC_HZ_PLAUSIBLE.contains(&f.tsc_hz).then_some(f);
    let leaf15 = c.leaf15.and_then(|[den, num, crystal]| {
        if den == 0 || num == 0 {
            return None;
        }
        let (crystal, source) = if crystal != 0 {
            (u64::from(crystal), CpuidSource::Leaf15)
        } else if let Some(hz) = c.intel_family6_model.and_then(crystal_of_model) {
            (hz, CpuidSource::Leaf15ModelCrystal)
        } else {
            let base = u64::from(c.leaf16_base_mhz.filter(|&mhz| mhz != 0)?) * 1_000_000;
            (base * u64::from(den) / u64::from(num), CpuidSource::Leaf15BaseCrystal)
        };
        let tsc_hz = crystal * u64::from(num) / u64::from(den);
        plausible(CpuidFrequencies { tsc_hz, apic_hz: Some(crystal), source })
    });
    let leaf16 = || {
        let mhz = c.leaf16_base_mhz.filter(|&mhz| mhz != 0)?;
        plausible(CpuidFrequencies { tsc_hz: u64::from(mhz) * 1_000_000, apic_hz: None, source: CpuidSource::Leaf16 })
    };
    let hypervisor = || {
        let [tsc_khz, bus_khz] = c.hypervisor_khz?;
        let apic_hz = (bus_khz != 0).then(|| u64::from(bus_khz) * 1000);
        plausible(CpuidFrequencies { tsc_hz: u64::from(tsc_khz) * 1000, apic_hz, source: CpuidSource::Hypervisor })
    };
    leaf15.or_else(leaf16).or_else(hypervisor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf15_with_its_crystal() {
        // A 38.4 MHz crystal and a ratio of 2:125 (an Ice Lake's 2.4 GHz).
        let c = CpuidClocks { leaf15: Some([2, 125, 38_400_000]), ..Default::default() };
        let f = from_cpuid(&c).unwrap();
        assert_eq!(
            f,
            CpuidFrequencies { tsc_hz: 2_400_000_000, apic_hz: Some(38_400_000), source: CpuidSource::Leaf15 }
        );
    }

    #[test]
    fn leaf15_without_crystal_uses_the_model_table() {
        // A Kaby Lake (model 0x9e): ECX 0, ratio 2:300 of 24 MHz = 3.6 GHz.
        let c = CpuidClocks {
            leaf15: Some([2, 300, 0]),
            leaf16_base_mhz: Some(3600),
            intel_family6_model: Some(0x9e),
            ..Default::default()
        };
        let f = from_cpuid(&c).unwrap();
        assert_eq!((f.tsc_hz, f.apic_hz, f.source), (3_600_000_000, Some(24_000_000), CpuidSource::Leaf15ModelCrystal));
        // Goldmont's 19.2 MHz.
        let c = CpuidClocks { leaf15: Some([1, 100, 0]), intel_family6_model: Some(0x5c), ..Default::default() };
        assert_eq!(from_cpuid(&c).unwrap().tsc_hz, 1_920_000_000);
    }

    #[test]
    fn leaf15_without_crystal_derives_it_from_leaf16() {
        // An unknown model: crystal = 2000 MHz × 2 / 166.
        let c = CpuidClocks {
            leaf15: Some([2, 166, 0]),
            leaf16_base_mhz: Some(2000),
            intel_family6_model: Some(0xa5),
            ..Default::default()
        };
        let f = from_cpuid(&c).unwrap();
        assert_eq!(f.source, CpuidSource::Leaf15BaseCrystal);
        assert_eq!(f.apic_hz, Some(2_000_000_000 * 2 / 166));
        assert_eq!(f.tsc_hz, 2_000_000_000 * 2 / 166 * 166 / 2);
    }

    #[test]
    fn a_zero_ratio_falls_through() {
        // Leaf 15h present but empty (EBX 0 means "not enumerated").
        let c = CpuidClocks { leaf15: Some([0, 0, 0]), leaf16_base_mhz: Some(2900), ..Default::default() };
        let f = from_cpuid(&c).unwrap();
        assert_eq!((f.tsc_hz, f.apic_hz, f.source), (2_900_000_000, None, CpuidSource::Leaf16));
        let c = CpuidClocks { leaf15: Some([3, 0, 24_000_000]), ..Default::default() };
        assert_eq!(from_cpuid(&c), None);
    }

    #[test]
    fn leaf15_without_any_crystal_falls_through_to_the_hypervisor() {
        let c = CpuidClocks {
            leaf15: Some([2, 100, 0]),
            hypervisor_khz: Some([2_500_000, 1_000_000]),
            ..Default::default()
        };
        let f = from_cpuid(&c).unwrap();
        assert_eq!((f.tsc_hz, f.apic_hz, f.source), (2_500_000_000, Some(1_000_000_000), CpuidSource::Hypervisor));
    }

    #[test]
    fn the_hypervisor_leaf_may_not_know_the_bus() {
        let c = CpuidClocks { hypervisor_khz: Some([3_000_000, 0]), ..Default::default() };
        assert_eq!(from_cpuid(&c).unwrap().apic_hz, None);
    }

    #[test]
    fn implausible_values_are_ignored() {
        // A 1 MHz "TSC" (a hypervisor placeholder) and leaf 16h of 0 MHz.
        let c = CpuidClocks { hypervisor_khz: Some([1000, 0]), leaf16_base_mhz: Some(0), ..Default::default() };
        assert_eq!(from_cpuid(&c), None);
        // A ratio that makes 24 MHz into 48 THz.
        let c =
            CpuidClocks { leaf15: Some([1, 2_000_000, 24_000_000]), leaf16_base_mhz: Some(3000), ..Default::default() };
        assert_eq!(from_cpuid(&c).unwrap().source, CpuidSource::Leaf16);
    }

    #[test]
    fn nothing_known_is_none() {
        assert_eq!(from_cpuid(&CpuidClocks::default()), None);
    }
}
