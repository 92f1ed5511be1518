//! Which CPUs exist: the ACPI MADT, found through the RSDP that GRUB
//! passed in the boot information (read by [`crate::acpi`], parsed by
//! ferrite_kcore::acpi).
use ferrite_kcore::acpi::{self, AcpiError, Madt, RootTable};

/// The MADT, or why it could not be read.
pub fn read(root: RootTable) -> Result<Madt<{ crate::percpu::MAX_CPUS }>, AcpiError> {
    acpi::parse_madt(&crate::acpi::read_table(root, b"APIC")?)
}
