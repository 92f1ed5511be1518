//! Which CPUs exist: the ACPI MADT, found through the RSDP that GRUB
//! passed in the boot information. Parsing is ferrite_kcore::acpi's (host
//! tested and fuzzed); this file only reads physical memory for it.
use crate::mem::{paging, phys_to_virt, PAGE_SIZE};
use alloc::vec;
use ferrite_kcore::acpi::{self, AcpiError, Madt, PhysMemory, RootTable};

/// Reads physical memory through the direct map, refusing anything the
/// direct map does not cover instead of faulting on it.
struct DirectMap;

impl PhysMemory for DirectMap {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        let end = phys.checked_add(buf.len() as u64).ok_or(AcpiError::Unreadable(phys))?;
        let mut page = crate::mem::align_down(phys, PAGE_SIZE);
        while page < end {
            if paging::translate(phys_to_virt(page)).is_none() {
                return Err(AcpiError::Unreadable(page));
            }
            page += PAGE_SIZE;
        }
        // SAFETY: every page of the range is mapped (checked above) and
        // firmware tables are plain memory.
        unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(phys) as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

/// The MADT, or why it could not be read.
pub fn read(root: RootTable) -> Result<Madt<{ crate::percpu::MAX_CPUS }>, AcpiError> {
    let (phys, len) = acpi::find_table(&DirectMap, root, b"APIC")?;
    let mut table = vec![0u8; len as usize];
    DirectMap.read(phys, &mut table)?;
    acpi::parse_madt(&table)
}
