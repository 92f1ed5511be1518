//! Reading ACPI tables from physical memory. Parsing is
//! ferrite_kcore::acpi's (host tested and fuzzed); this file only reads
//! physical memory for it, through the direct map.
use crate::mem::{paging, phys_to_virt, PAGE_SIZE};
use alloc::vec::Vec;
use ferrite_kcore::acpi::{self, AcpiError, PhysMemory, RootTable};

/// Reads physical memory through the direct map, refusing anything the
/// direct map does not cover instead of faulting on it.
pub struct DirectMap;

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

/// A copy of the (checksummed) table with `signature`.
pub fn read_table(root: RootTable, signature: &[u8; 4]) -> Result<Vec<u8>, AcpiError> {
    let (phys, len) = acpi::find_table(&DirectMap, root, signature)?;
    let mut table = alloc::vec![0u8; len as usize];
    DirectMap.read(phys, &mut table)?;
    Ok(table)
}

/// A copy of the table at `phys`, which must carry `signature`, a sane
/// length and a valid checksum: for tables that other tables point to
/// (the DSDT, from the FADT) rather than the root table.
pub fn read_table_at(phys: u64, signature: &[u8; 4]) -> Result<Vec<u8>, AcpiError> {
    let mut header = [0u8; acpi::SdtHeader::SIZE];
    DirectMap.read(phys, &mut header)?;
    let header = acpi::SdtHeader::parse(&header)?;
    if header.signature != *signature {
        return Err(AcpiError::BadSignature { expected: *signature, found: header.signature });
    }
    if (header.length as usize) < acpi::SdtHeader::SIZE || header.length > acpi::MAX_TABLE_LEN {
        return Err(AcpiError::BadLength { signature: *signature, length: header.length });
    }
    let mut table = alloc::vec![0u8; header.length as usize];
    DirectMap.read(phys, &mut table)?;
    if !acpi::checksum_ok(&table) {
        return Err(AcpiError::BadChecksum { signature: *signature, phys });
    }
    Ok(table)
}
