//! The multiboot2 boot information, read with the `multiboot2` crate.
//!
//! GRUB leaves it in usable memory, which the frame allocator reserves, so
//! it stays valid (through the direct map) for the kernel's whole life.
use crate::mem::{phys_to_virt, PhysRange};
use ferrite_kcore::acpi::RootTable;
use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};
use spin::Once;

/// The framebuffer the loader set up, as its tag describes it.
#[derive(Debug, Clone, Copy)]
pub struct Framebuffer {
    pub phys: u64,
    pub pitch: u32,
    pub width: u32,
    pub height: u32,
    pub bpp: u8,
    pub kind: FramebufferKind,
}

#[derive(Debug, Clone, Copy)]
pub enum FramebufferKind {
    /// Direct colour: each channel's (position, size) in a pixel, red,
    /// green and blue.
    Rgb([(u8, u8); 3]),
    /// Indexed colour (a palette).
    Indexed,
    /// EGA text mode (width and height in characters).
    Text,
    /// A type multiboot2 does not define.
    Unknown,
}

pub struct BootInfo {
    info: BootInformation<'static>,
    phys: u64,
}

// SAFETY: the boot information is never written after boot; every CPU may
// read it.
unsafe impl Sync for BootInfo {}
// SAFETY: as above.
unsafe impl Send for BootInfo {}

static BOOT_INFO: Once<BootInfo> = Once::new();

/// What kind of memory a memory-map area is, as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaKind {
    /// Free RAM.
    Usable,
    /// RAM the firmware keeps (ACPI tables, ACPI NVS).
    FirmwareRam,
    /// Anything else: reserved, defective, holes for devices.
    Other,
}

/// Parses the boot information at physical address `phys`.
pub fn load(phys: u32) -> &'static BootInfo {
    BOOT_INFO.call_once(|| {
        let ptr = phys_to_virt(u64::from(phys)) as *const BootInformationHeader;
        // SAFETY: the loader passed this address with the multiboot2 magic
        // (checked in boot.S); the boot page tables map it at the direct-map
        // offset, and nothing writes it.
        match unsafe { BootInformation::load(ptr) } {
            Ok(info) => BootInfo { info, phys: u64::from(phys) },
            Err(e) => panic!("boot: the multiboot2 information at {phys:#x} is malformed: {e:?}"),
        }
    })
}

/// The boot information, once [`load`] has run.
pub fn get() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot information used before boot_info::load")
}

impl BootInfo {
    pub fn cmdline(&self) -> &'static str {
        let info: &'static BootInformation<'static> = &BOOT_INFO.get().expect("boot info loaded").info;
        info.command_line_tag().and_then(|t| t.cmdline().ok()).unwrap_or("")
    }

    pub fn loader_name(&self) -> &str {
        self.info.boot_loader_name_tag().and_then(|t| t.name().ok()).unwrap_or("an unnamed loader")
    }

    /// The framebuffer, if the loader set one up.
    pub fn framebuffer(&self) -> Option<Framebuffer> {
        use multiboot2::FramebufferType;
        let tag = match self.info.framebuffer_tag()? {
            Ok(tag) => tag,
            Err(_) => {
                let kind = FramebufferKind::Unknown;
                return Some(Framebuffer { phys: 0, pitch: 0, width: 0, height: 0, bpp: 0, kind });
            }
        };
        let kind = match tag.buffer_type() {
            Ok(FramebufferType::RGB { red, green, blue }) => {
                FramebufferKind::Rgb([red, green, blue].map(|c| (c.position, c.size)))
            }
            Ok(FramebufferType::Indexed { .. }) => FramebufferKind::Indexed,
            Ok(FramebufferType::Text) => FramebufferKind::Text,
            Err(_) => FramebufferKind::Unknown,
        };
        Some(Framebuffer {
            phys: tag.address(),
            pitch: tag.pitch(),
            width: tag.width(),
            height: tag.height(),
            bpp: tag.bpp(),
            kind,
        })
    }

    /// The physical range of the boot information itself.
    pub fn range(&self) -> PhysRange {
        PhysRange::new(self.phys, self.phys + self.info.total_size() as u64)
    }

    /// Every memory-map area, as (range, kind). Empty if the loader gave no
    /// memory map (the caller treats that as fatal).
    pub fn memory_areas(&self) -> impl Iterator<Item = (PhysRange, AreaKind)> + '_ {
        self.info.memory_map_tag().into_iter().flat_map(|t| t.memory_areas().iter()).map(|a| {
            let kind = match a.typ() {
                MemoryAreaType::Available => AreaKind::Usable,
                MemoryAreaType::AcpiAvailable | MemoryAreaType::ReservedHibernate => AreaKind::FirmwareRam,
                _ => AreaKind::Other,
            };
            (PhysRange::new(a.start_address(), a.end_address()), kind)
        })
    }

    /// The boot module whose name (the first word of its command line) is
    /// `name`, as bytes in the direct map.
    pub fn module(&self, name: &str) -> Option<&'static [u8]> {
        self.modules().find(|(cmdline, _)| cmdline.split_whitespace().next() == Some(name)).map(|(_, range)| {
            // SAFETY: module memory is reserved from the frame allocator and
            // direct-mapped (mem::paging), and nothing writes it.
            unsafe { core::slice::from_raw_parts(phys_to_virt(range.start) as *const u8, range.len() as usize) }
        })
    }

    /// The name of the first boot module (init), if there is one.
    pub fn first_module_name(&self) -> Option<&str> {
        self.modules().next().and_then(|(cmdline, _)| cmdline.split_whitespace().next())
    }

    /// Boot modules: (name, physical range). A module whose end lies below
    /// its start is reported and skipped.
    pub fn modules(&self) -> impl Iterator<Item = (&str, PhysRange)> + '_ {
        self.info.module_tags().filter_map(|m| {
            let name = m.cmdline().unwrap_or("?");
            let (start, end) = (u64::from(m.start_address()), u64::from(m.end_address()));
            if end < start {
                log::warn!("boot: module '{name}' ends ({end:#x}) before it starts ({start:#x}); ignored");
                return None;
            }
            Some((name, PhysRange::new(start, end)))
        })
    }

    /// The ACPI root table named by the loader's copy of the RSDP: the
    /// XSDT from the ACPI 2.0+ tag if it is present and valid, else the
    /// RSDT from the 1.0 tag. An RSDP with a bad checksum is reported and
    /// not used.
    pub fn acpi_root(&self) -> Option<RootTable> {
        if let Some(t) = self.info.rsdp_v2_tag() {
            if t.checksum_is_valid() && t.xsdt_address() != 0 {
                return Some(RootTable::Xsdt(t.xsdt_address() as u64));
            }
            log::warn!("acpi: the ACPI 2.0 RSDP from the loader is invalid (checksum or XSDT address)");
        }
        if let Some(t) = self.info.rsdp_v1_tag() {
            if t.checksum_is_valid() {
                return Some(RootTable::Rsdt(t.rsdt_address() as u64));
            }
            log::warn!("acpi: the ACPI 1.0 RSDP from the loader has a bad checksum");
        }
        None
    }

    pub fn log_summary(&self) {
        let mut usable = 0u64;
        let mut highest = 0u64;
        let mut areas = 0;
        for (range, kind) in self.memory_areas() {
            areas += 1;
            log::debug!("boot: memory {:#014x}..{:#014x} {:?}", range.start, range.end, kind);
            if kind == AreaKind::Usable {
                usable += range.len();
                highest = highest.max(range.end);
            }
        }
        log::info!("boot: memory map: {areas} areas, {} MiB usable, highest usable address {highest:#x}", usable >> 20);
        let mut modules = 0;
        for (name, range) in self.modules() {
            modules += 1;
            log::info!("boot: module '{name}' at {:#x}..{:#x}", range.start, range.end);
        }
        if modules == 0 {
            log::info!("boot: no modules");
        }
        match self.acpi_root() {
            Some(RootTable::Xsdt(a)) => log::info!("boot: ACPI 2.0+ RSDP, XSDT at {a:#x}"),
            Some(RootTable::Rsdt(a)) => log::info!("boot: ACPI 1.0 RSDP, RSDT at {a:#x}"),
            None => log::warn!("boot: no valid ACPI RSDP from the loader"),
        }
        match self.framebuffer() {
            Some(fb) => log::info!(
                "boot: framebuffer {}x{} {} bpp ({:?}) at {:#x}, pitch {}",
                fb.width,
                fb.height,
                fb.bpp,
                fb.kind,
                fb.phys,
                fb.pitch
            ),
            None => log::info!("boot: no framebuffer"),
        }
    }
}
