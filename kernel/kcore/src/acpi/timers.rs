//! The two ACPI-described clocks the kernel can calibrate the TSC against
//! when CPUID does not give its frequency: the ACPI power-management timer
//! (from the FADT) and the HPET (from its own table); and the rest of what
//! the kernel reads from the FADT: the registers that reset the machine and
//! put it to sleep (S5 is power off), and where the DSDT is.
//!
//! | table | offset | field                         | used for                  |
//! |-------|--------|-------------------------------|---------------------------|
//! | FADT  | 40     | `DSDT` (u32)                  | the DSDT, ACPI 1.0        |
//! | FADT  | 46     | `SCI_INT` (u16)               | the SCI's interrupt line  |
//! | FADT  | 56     | `PM1a_EVT_BLK` (u32, I/O port) | PM1 status and enable (events) |
//! | FADT  | 64     | `PM1a_CNT_BLK` (u32, I/O port) | sleeping (S5: power off) |
//! | FADT  | 68     | `PM1b_CNT_BLK` (u32, I/O port) | its optional twin       |
//! | FADT  | 76     | `PM_TMR_BLK` (u32, I/O port)  | the PM timer, ACPI 1.0    |
//! | FADT  | 88     | `PM1_EVT_LEN` (u8, at least 4) | whether that block exists |
//! | FADT  | 89     | `PM1_CNT_LEN` (u8, at least 2) | whether the PM1 blocks exist |
//! | FADT  | 91     | `PM_TMR_LEN` (u8, must be 4)  | whether that block exists |
//! | FADT  | 112    | `Flags` (u32)                 | bit 8 `TMR_VAL_EXT`, bit 10 `RESET_REG_SUP`, bit 20 `HW_REDUCED_ACPI` |
//! | FADT  | 116    | `RESET_REG` (GAS)             | resetting the machine     |
//! | FADT  | 128    | `RESET_VALUE` (u8)            | what to write there       |
//! | FADT  | 140    | `X_DSDT` (u64)                | the DSDT, ACPI 2.0+       |
//! | FADT  | 148    | `X_PM1a_EVT_BLK` (GAS)        | PM1a events, ACPI 2.0+    |
//! | FADT  | 172    | `X_PM1a_CNT_BLK` (GAS)        | PM1a, ACPI 2.0+           |
//! | FADT  | 184    | `X_PM1b_CNT_BLK` (GAS)        | PM1b, ACPI 2.0+           |
//! | FADT  | 208    | `X_PM_TMR_BLK` (GAS)          | the PM timer, ACPI 2.0+   |
//! | FADT  | 244    | `SLEEP_CONTROL_REG` (GAS)     | sleeping, hardware-reduced ACPI (5.0+) |
//! | HPET  | 40     | `BASE_ADDRESS` (GAS)          | the HPET's registers      |
//!
//! (ACPI 6.5, 5.2.9 and table 5.6; the IA-PC HPET specification 1.0a,
//! table 3.) A firmware that fills in both the 32-bit and the extended
//! field should make them agree; where it does not, the extended one wins,
//! as the specification says and Linux (through ACPICA) does. A table too
//! short for a field simply lacks it: FADTs of ACPI 1.0 end at byte 116.
use super::{u32_at, u64_at, AcpiError, SdtHeader};

/// A Generic Address Structure (ACPI 6.5, 5.2.3.2): where a register is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericAddress {
    /// 0 system memory, 1 system I/O, others (PCI, embedded controller...)
    /// that the kernel does not use.
    pub space: u8,
    /// The register's width in bits (0 if the firmware did not say).
    pub bit_width: u8,
    /// The register's physical or port address.
    pub address: u64,
}

impl GenericAddress {
    /// `space`: system memory.
    pub const MEMORY: u8 = 0;
    /// `space`: system I/O ports.
    pub const IO: u8 = 1;
    /// Its size in bytes.
    pub const SIZE: usize = 12;

    fn parse(bytes: &[u8], offset: usize) -> Option<Self> {
        let gas = bytes.get(offset..offset + Self::SIZE)?;
        Some(Self { space: gas[0], bit_width: gas[1], address: u64_at(gas, 4) })
    }
}

/// Where the ACPI PM timer's counter register is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmTimerBlock {
    /// A 32-bit I/O port.
    Port(u16),
    /// A 32-bit memory-mapped register at this physical address.
    Memory(u64),
}

/// The ACPI power-management timer: a free-running counter at
/// [`PM_TIMER_HZ`], 24 bits wide unless `TMR_VAL_EXT` says 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmTimer {
    /// Its counter register.
    pub block: PmTimerBlock,
    /// The counter has 32 bits (else 24).
    pub wide: bool,
}

/// The PM timer's frequency (ACPI 6.5, 4.8.3.3): 3.579545 MHz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// What the kernel reads from the FADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fadt {
    /// The PM timer, if the machine has one.
    pub pm_timer: Option<PmTimer>,
    /// `HW_REDUCED_ACPI`: no fixed hardware (no PM timer, no PM1 blocks).
    pub hardware_reduced: bool,
    /// The reset register, where the firmware says it is supported.
    pub reset: Option<ResetRegister>,
    /// The PM1a control register, where `SLP_TYP` and `SLP_EN` put the
    /// machine to sleep (ACPI 6.5, 4.8.3.2.1); none on hardware-reduced
    /// ACPI. Only in system memory or I/O space.
    pub pm1a_control: Option<GenericAddress>,
    /// The PM1b control register, which must be written with PM1a where
    /// it exists (its `SLP_TYP` value may differ).
    pub pm1b_control: Option<GenericAddress>,
    /// The sleep control register of hardware-reduced ACPI (ACPI 6.5,
    /// 4.8.3.7), if the FADT names one, in system memory or I/O space.
    pub sleep_control: Option<GenericAddress>,
    /// The DSDT's physical address, if the FADT gives one.
    pub dsdt: Option<u64>,
    /// The PM1a event block (status register, then enable register, each
    /// half of its length); none on hardware-reduced ACPI.
    pub pm1a_event: Option<GenericAddress>,
    /// The interrupt line of the SCI (an ISA IRQ on PCs, level-triggered,
    /// active low as the ACPI specification says or as the MADT overrides);
    /// none on hardware-reduced ACPI.
    pub sci_irq: Option<u16>,
}

/// The FADT's reset register and the value that resets the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetRegister {
    /// Where it is: system memory, system I/O or PCI configuration space
    /// (`space` 2: device and function in the address's bits 32-47, the
    /// register's offset in bits 0-15, on bus 0).
    pub register: GenericAddress,
    /// The value to write.
    pub value: u8,
}

impl GenericAddress {
    /// `space`: PCI configuration space.
    pub const PCI_CONFIG: u8 = 2;
}

/// `table`'s own bytes (as far as its length field and the slice reach),
/// once its header says it is the `signature` table.
fn own_bytes<'a>(table: &'a [u8], signature: &[u8; 4]) -> Result<&'a [u8], AcpiError> {
    let header = SdtHeader::parse(table)?;
    if header.signature != *signature {
        return Err(AcpiError::BadSignature { expected: *signature, found: header.signature });
    }
    Ok(&table[..(header.length as usize).min(table.len())])
}

/// FADT field offsets.
const DSDT: usize = 40;
const SCI_INT: usize = 46;
const PM1A_EVT_BLK: usize = 56;
const PM1_EVT_LEN: usize = 88;
const X_PM1A_EVT_BLK: usize = 148;
const PM1A_CNT_BLK: usize = 64;
const PM1B_CNT_BLK: usize = 68;
const PM_TMR_BLK: usize = 76;
const PM1_CNT_LEN: usize = 89;
const PM_TMR_LEN: usize = 91;
const FLAGS: usize = 112;
const X_DSDT: usize = 140;
const X_PM1A_CNT_BLK: usize = 172;
const X_PM1B_CNT_BLK: usize = 184;
const X_PM_TMR_BLK: usize = 208;
const RESET_REG: usize = 116;
const RESET_VALUE: usize = 128;
const SLEEP_CONTROL_REG: usize = 244;
/// FADT flag bits.
const TMR_VAL_EXT: u32 = 1 << 8;
const RESET_REG_SUP: u32 = 1 << 10;
const HW_REDUCED_ACPI: u32 = 1 << 20;

/// Reads what the kernel needs from a FADT (`FACP`), given as its bytes
/// (the length field is trusted only as far as `table` reaches). A FADT
/// too short for the flags is an error; fields past its end are absent.
pub fn parse_fadt(table: &[u8]) -> Result<Fadt, AcpiError> {
    let table = own_bytes(table, b"FACP")?;
    if table.len() < FLAGS + 4 {
        return Err(AcpiError::Truncated { what: "FADT", need: FLAGS + 4, have: table.len() });
    }
    let flags = u32_at(table, FLAGS);
    let hardware_reduced = flags & HW_REDUCED_ACPI != 0;
    let extended = GenericAddress::parse(table, X_PM_TMR_BLK).filter(|gas| gas.address != 0);
    let block = match extended {
        Some(GenericAddress { space: GenericAddress::IO, address, .. }) => {
            u16::try_from(address).ok().map(PmTimerBlock::Port)
        }
        Some(GenericAddress { space: GenericAddress::MEMORY, address, .. }) => Some(PmTimerBlock::Memory(address)),
        // Another address space: not a timer the kernel can read.
        Some(_) => None,
        None => match (u32_at(table, PM_TMR_BLK), table[PM_TMR_LEN]) {
            (0, _) => None,
            (port, 4) => u16::try_from(port).ok().map(PmTimerBlock::Port),
            // A block of the wrong length is no PM timer (ACPI: it must be 4).
            _ => None,
        },
    };
    let pm_timer =
        if hardware_reduced { None } else { block.map(|block| PmTimer { block, wide: flags & TMR_VAL_EXT != 0 }) };
    // Only where the firmware says it works, in a space the kernel can
    // write, at an address that is not 0.
    let reset = match (GenericAddress::parse(table, RESET_REG), table.get(RESET_VALUE)) {
        (Some(register), Some(&value))
            if flags & RESET_REG_SUP != 0
                && register.address != 0
                && matches!(
                    register.space,
                    GenericAddress::MEMORY | GenericAddress::IO | GenericAddress::PCI_CONFIG
                ) =>
        {
            Some(ResetRegister { register, value })
        }
        _ => None,
    };
    // Hardware-reduced ACPI has no PM1 blocks, whatever the fields say.
    let (pm1a_control, pm1b_control, pm1a_event) = if hardware_reduced {
        (None, None, None)
    } else {
        (
            pm1_block(table, X_PM1A_CNT_BLK, PM1A_CNT_BLK, PM1_CNT_LEN, 2),
            pm1_block(table, X_PM1B_CNT_BLK, PM1B_CNT_BLK, PM1_CNT_LEN, 2),
            pm1_block(table, X_PM1A_EVT_BLK, PM1A_EVT_BLK, PM1_EVT_LEN, 4),
        )
    };
    let sci_irq = Some(u16::from_le_bytes([table[SCI_INT], table[SCI_INT + 1]])).filter(|_| !hardware_reduced);
    let sleep_control = GenericAddress::parse(table, SLEEP_CONTROL_REG).filter(GenericAddress::is_writable);
    let x_dsdt = table.get(X_DSDT..X_DSDT + 8).map(|_| u64_at(table, X_DSDT)).filter(|&a| a != 0);
    let dsdt = x_dsdt.or(Some(u64::from(u32_at(table, DSDT))).filter(|&a| a != 0));
    Ok(Fadt { pm_timer, hardware_reduced, reset, pm1a_control, pm1b_control, sleep_control, dsdt, pm1a_event, sci_irq })
}

impl GenericAddress {
    /// Names a register the kernel can reach: in system memory or I/O
    /// space, at an address that is not 0.
    fn is_writable(&self) -> bool {
        self.address != 0 && matches!(self.space, GenericAddress::MEMORY | GenericAddress::IO)
    }
}

/// A PM1 block: the extended field at `extended` where it is there and
/// not 0, else the 32-bit port at `legacy` with the bytes the length field
/// at `len_at` gives (which must be at least `min`: 2 for a control block,
/// whose register has 16 bits, 4 for an event block, which has two).
fn pm1_block(table: &[u8], extended: usize, legacy: usize, len_at: usize, min: u8) -> Option<GenericAddress> {
    match GenericAddress::parse(table, extended).filter(|gas| gas.address != 0) {
        Some(gas) => Some(gas).filter(GenericAddress::is_writable),
        None => match (u32_at(table, legacy), table[len_at]) {
            (0, _) => None,
            (_, len) if len < min => None,
            (port, len) => u16::try_from(port).ok().map(|port| GenericAddress {
                space: GenericAddress::IO,
                bit_width: len.saturating_mul(8),
                address: u64::from(port),
            }),
        },
    }
}

/// The SPCR's (Serial Port Console Redirection, Microsoft's table) base
/// address field: where the firmware's console UART is.
const SPCR_BASE: usize = 40;

/// Reads where the console UART the firmware names in its SPCR table is.
pub fn parse_spcr(table: &[u8]) -> Result<GenericAddress, AcpiError> {
    let table = own_bytes(table, b"SPCR")?;
    GenericAddress::parse(table, SPCR_BASE).ok_or(AcpiError::Truncated {
        what: "SPCR",
        need: SPCR_BASE + GenericAddress::SIZE,
        have: table.len(),
    })
}

/// HPET table field offsets.
const HPET_BASE: usize = 40;
/// The HPET table's fixed length (header, event timer block ID, base
/// address, HPET number, minimum tick, page protection).
const HPET_LEN: usize = 56;

/// Reads the physical address of the HPET's registers from its table
/// (`HPET`). The registers must be in memory space (the specification
/// allows nothing else) at a non-zero, 8-byte aligned address (its
/// registers are 64 bits wide).
pub fn parse_hpet(table: &[u8]) -> Result<u64, AcpiError> {
    let table = own_bytes(table, b"HPET")?;
    let Some(base) = GenericAddress::parse(table, HPET_BASE).filter(|_| table.len() >= HPET_LEN) else {
        return Err(AcpiError::Truncated { what: "HPET table", need: HPET_LEN, have: table.len() });
    };
    if base.space != GenericAddress::MEMORY || base.address == 0 || base.address % 8 != 0 {
        return Err(AcpiError::BadRegister { table: *b"HPET", space: base.space, address: base.address });
    }
    Ok(base.address)
}
