//! Reading ACPI tables from physical memory. Parsing is
//! ferrite_kcore::acpi's (host tested and fuzzed); this file only reads
//! physical memory for it: through the direct map where the tables are in
//! RAM, else through an uncached window (SeaBIOS puts them in a reserved
//! area; other firmware anywhere, above 4 GiB too).
use crate::mem::paging;
use alloc::vec::Vec;
use ferrite_kcore::acpi::{self, AcpiError, PhysMemory, RootTable};

/// Reads physical memory wherever it is ([`paging::read_physical`]).
pub struct DirectMap;

impl PhysMemory for DirectMap {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        paging::read_physical(phys, buf).map_err(|_| AcpiError::Unreadable(phys))
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
