//! ELF64 load planning: deciding what to map for a static user program.
//!
//! User programs reach the kernel as multiboot2 modules: whole ELF files
//! that GRUB copied somewhere in physical memory. [`plan`] reads such an
//! image and answers "which bytes go at which user addresses, with which
//! permissions, and where does it start?" as a [`LoadPlan`]. Mapping pages,
//! copying bytes and zeroing bss stay in the kernel; this module only
//! decides, so that every rule can be tested on the host.
//!
//! References are to the System V ABI, chapter 4 ("Object Files") and
//! chapter 5 ("Program Loading"), and its AMD64 supplement.
//!
//! The image is untrusted input, and the plan is only returned if the
//! kernel can follow it blindly:
//!
//! - Only static x86-64 executables (`ET_EXEC`) are accepted. There is no
//!   dynamic linker to run and no relocation to apply, so position-
//!   independent (`ET_DYN`) files and anything with a `PT_INTERP` are
//!   refused rather than loaded wrong.
//! - Every address and size is computed with checked arithmetic; a sum that
//!   would wrap is [`ElfError::Overflow`], never a wrapped address.
//! - Each segment's file bytes lie inside the image, so the kernel can slice
//!   `image[file_offset..file_offset + file_size]` without a check, even
//!   when `file_size` is 0.
//! - Each segment lies in user space, [`USER_START`] to [`USER_END`]: page 0
//!   stays unmapped so null pointers fault, and nothing reaches the
//!   non-canonical hole or the kernel half.
//! - The kernel maps whole pages with one set of permissions each, so no
//!   two segments may touch the same page (a data segment sharing its first
//!   page with the end of the text would otherwise make code writable or
//!   data executable), and no segment may be both writable and executable
//!   (W^X). For the same reason a segment's address and file offset must be
//!   congruent modulo the page size, as the ABI requires.
//! - The entry point lies inside an executable segment.
//! - Nothing panics, loops without bound or indexes out of bounds on any
//!   input; the tests truncate valid images at every length and mutate
//!   them at random to keep it that way.
//!
//! The image is read with plain little-endian byte loads: a module can sit
//! at any address, so nothing here assumes the bytes are aligned.
//!
//! Unlike most of this crate, the plan allocates (a `Vec` of segments): user
//! programs are only loaded once the kernel heap exists, and a plan holds at
//! most [`MAX_PROGRAM_HEADERS`] segments.

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::fmt;

/// The page size the kernel maps user memory with.
pub const PAGE_SIZE: u64 = 4096;

/// Lowest and one-past-highest user virtual address a segment may occupy.
///
/// The first page is left unmapped so that a null pointer dereference in a
/// user program faults. The end is one page below the top of the lower
/// canonical half: code in that last page could end in a `syscall` whose
/// return address is non-canonical, which `sysret` cannot return to
/// safely. The kernel checks that these equal `ferrite_abi`'s.
pub const USER_START: u64 = 0x1000;
/// One past the highest user virtual address; see [`USER_START`].
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;

/// The most program headers an image may have. Real static executables
/// have fewer than a dozen; the bound keeps the work and the plan small and
/// rules out the extended numbering that `e_phnum == 0xFFFF` announces.
pub const MAX_PROGRAM_HEADERS: usize = 64;

/// Size of the ELF64 file header.
const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
const PHDR_SIZE: usize = 56;

/// `e_ident` values: magic, `ELFCLASS64`, `ELFDATA2LSB`, `EV_CURRENT`.
const MAGIC: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
/// `e_type` of an executable file (as opposed to relocatable, shared, core).
const ET_EXEC: u16 = 2;
/// `e_machine` of AMD64.
const EM_X86_64: u16 = 62;

/// Program header types that matter here; all others are ignored.
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;

/// Program header permission flags (`p_flags`). `PF_R` is implied.
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// One loadable segment: `file_size` bytes from `file_offset` in the image
/// go at `vaddr`, followed by zeros up to `mem_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment starts in user memory (`p_vaddr`); not
    /// necessarily page aligned.
    pub vaddr: u64,
    /// Bytes the segment occupies in memory (`p_memsz`); at least
    /// `file_size`, and the part beyond it is zero-filled (bss).
    pub mem_size: u64,
    /// Where the segment's bytes start in the image (`p_offset`).
    pub file_offset: u64,
    /// How many bytes come from the image (`p_filesz`).
    pub file_size: u64,
    /// The pages may be written (`PF_W`).
    pub writable: bool,
    /// The pages may be executed (`PF_X`). Never together with `writable`.
    pub executable: bool,
}

impl Segment {
    /// First page (vaddr rounded down) and one past the last page
    /// (vaddr+mem_size rounded up).
    ///
    /// Exact for every segment [`plan`] returns, since those end at or below
    /// [`USER_END`]. For a hand-made segment that reaches the top of the
    /// address space the end saturates at the last page boundary instead of
    /// wrapping or panicking.
    pub fn pages(&self) -> (u64, u64) {
        let end = self.vaddr.saturating_add(self.mem_size);
        (page_down(self.vaddr), page_up(end).unwrap_or(page_down(u64::MAX)))
    }
}

/// What to map for a program: its segments and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    /// The user address of the first instruction (`e_entry`); inside an
    /// executable segment.
    pub entry: u64,
    /// The non-empty `PT_LOAD` segments, sorted by `vaddr`; no two share a
    /// page.
    pub segments: Vec<Segment>,
}

/// Why an image was refused. `index` fields count program headers from 0,
/// as `readelf -l` lists them. The [`Display`](fmt::Display) text is one
/// line, meant for the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// The image is shorter than the 64-byte ELF header.
    TooShort,
    /// The image does not start with `\x7fELF`.
    BadMagic,
    /// The image is not ELF64 (`EI_CLASS` is not `ELFCLASS64`).
    Not64Bit,
    /// The image is not little-endian (`EI_DATA` is not `ELFDATA2LSB`).
    NotLittleEndian,
    /// `EI_VERSION` or `e_version` is not `EV_CURRENT`.
    BadVersion,
    /// `e_type` is not `ET_EXEC`: a relocatable object, a shared object or
    /// position-independent executable (`ET_DYN`), a core file, or garbage.
    NotExecutable,
    /// `e_machine` is not x86-64.
    WrongMachine,
    /// `e_ehsize` is not 64 or `e_phentsize` is not 56, the ELF64 sizes:
    /// the file describes structures this parser does not know.
    BadHeaderSize,
    /// The program header table does not lie inside the image (or its end
    /// does not fit in 64 bits).
    ProgramHeadersOutOfFile,
    /// More than [`MAX_PROGRAM_HEADERS`] program headers.
    TooManySegments,
    /// No `PT_LOAD` segment with a non-zero memory size: nothing to run.
    NoLoadableSegment,
    /// A segment's file bytes run past the end of the image.
    SegmentOutsideFile {
        /// The program header.
        index: usize,
    },
    /// A segment's `p_filesz` exceeds its `p_memsz`.
    FileSizeExceedsMemSize {
        /// The program header.
        index: usize,
    },
    /// A segment reaches below [`USER_START`] or beyond [`USER_END`].
    SegmentOutsideUserSpace {
        /// The program header.
        index: usize,
    },
    /// A segment's address and file offset differ modulo the page size (or
    /// modulo its `p_align`), or its `p_align` is not a power of two.
    Misaligned {
        /// The program header.
        index: usize,
    },
    /// Two segments share at least one page.
    Overlap {
        /// The first program header (the lower index).
        a: usize,
        /// The second program header.
        b: usize,
    },
    /// A segment is both writable and executable.
    WritableAndExecutable {
        /// The program header.
        index: usize,
    },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable,
    /// The image names a program interpreter (`PT_INTERP`): it is a
    /// dynamically linked executable, which the kernel cannot run.
    Interpreter,
    /// A segment's `p_offset + p_filesz` or `p_vaddr + p_memsz` does not fit
    /// in 64 bits.
    Overflow {
        /// The program header.
        index: usize,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort => write!(f, "image is shorter than an ELF64 header"),
            Self::BadMagic => write!(f, "image is not an ELF file (bad magic)"),
            Self::Not64Bit => write!(f, "ELF file is not 64-bit"),
            Self::NotLittleEndian => write!(f, "ELF file is not little-endian"),
            Self::BadVersion => write!(f, "ELF file has an unknown version"),
            Self::NotExecutable => write!(f, "ELF file is not a static executable (ET_EXEC)"),
            Self::WrongMachine => write!(f, "ELF file is not for x86-64"),
            Self::BadHeaderSize => write!(f, "ELF header or program header size is not that of ELF64"),
            Self::ProgramHeadersOutOfFile => write!(f, "program header table lies outside the file"),
            Self::TooManySegments => write!(f, "more than {MAX_PROGRAM_HEADERS} program headers"),
            Self::NoLoadableSegment => write!(f, "no loadable segment"),
            Self::SegmentOutsideFile { index } => write!(f, "segment {index} lies outside the file"),
            Self::FileSizeExceedsMemSize { index } => {
                write!(f, "segment {index} has more bytes in the file than in memory")
            }
            Self::SegmentOutsideUserSpace { index } => write!(f, "segment {index} lies outside user space"),
            Self::Misaligned { index } => {
                write!(f, "segment {index} is misaligned: address and file offset differ modulo the page size")
            }
            Self::Overlap { a, b } => write!(f, "segments {a} and {b} share a page"),
            Self::WritableAndExecutable { index } => write!(f, "segment {index} is both writable and executable"),
            Self::EntryNotExecutable => write!(f, "entry point is not in an executable segment"),
            Self::Interpreter => write!(f, "dynamically linked executable (has an interpreter)"),
            Self::Overflow { index } => write!(f, "segment {index} overflows the 64-bit address space"),
        }
    }
}

/// Validates `image` as a static x86-64 ELF64 executable and returns what to map.
///
/// The checks run in a fixed order and the first failure is returned: the
/// file header, then the program header table, then each program header in
/// turn, then the segments against each other, then the entry point. See
/// the module documentation for the rules and why they exist.
pub fn plan(image: &[u8]) -> Result<LoadPlan, ElfError> {
    let (entry, phdrs) = check_header(image)?;
    let mut segments: Vec<(usize, Segment)> = Vec::new();
    for (index, raw) in phdrs.iter().enumerate() {
        let p_type = u32_at(raw, 0);
        match p_type {
            PT_INTERP => return Err(ElfError::Interpreter),
            PT_LOAD => {
                if let Some(segment) = check_load(image, index, raw)? {
                    segments.push((index, segment));
                }
            }
            // PT_DYNAMIC in an ET_EXEC file, notes, PT_GNU_STACK (the kernel
            // never makes stacks executable), PT_GNU_RELRO, PT_TLS, PT_PHDR
            // and unknown types place nothing in memory the kernel must map.
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }

    // After a stable sort by address, a segment that shares a page with any
    // later one shares a page with the next one, so neighbours suffice.
    segments.sort_by_key(|&(_, segment)| segment.vaddr);
    for pair in segments.windows(2) {
        if let [(i, first), (j, second)] = *pair {
            if second.pages().0 < first.pages().1 {
                return Err(ElfError::Overlap { a: i.min(j), b: i.max(j) });
            }
        }
    }

    let runs_entry = |s: &Segment| s.executable && entry >= s.vaddr && entry - s.vaddr < s.mem_size;
    if !segments.iter().any(|(_, s)| runs_entry(s)) {
        return Err(ElfError::EntryNotExecutable);
    }
    Ok(LoadPlan { entry, segments: segments.into_iter().map(|(_, s)| s).collect() })
}

/// Checks the ELF header and returns the entry point and the program header
/// table, each entry exactly [`PHDR_SIZE`] bytes.
fn check_header(image: &[u8]) -> Result<(u64, &[[u8; PHDR_SIZE]]), ElfError> {
    let header = image.first_chunk::<EHDR_SIZE>().ok_or(ElfError::TooShort)?;
    let ident: [u8; 16] = array_at(header, 0);
    if ident[..4] != MAGIC {
        return Err(ElfError::BadMagic);
    }
    if ident[4] != ELFCLASS64 {
        return Err(ElfError::Not64Bit);
    }
    if ident[5] != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian);
    }
    // EI_OSABI (ident[7]) is not checked: static executables run the same
    // whether the linker wrote "System V" or "GNU/Linux" there.
    if ident[6] != EV_CURRENT || u32_at(header, 20) != u32::from(EV_CURRENT) {
        return Err(ElfError::BadVersion);
    }
    if u16_at(header, 16) != ET_EXEC {
        return Err(ElfError::NotExecutable);
    }
    if u16_at(header, 18) != EM_X86_64 {
        return Err(ElfError::WrongMachine);
    }
    if usize::from(u16_at(header, 52)) != EHDR_SIZE || usize::from(u16_at(header, 54)) != PHDR_SIZE {
        return Err(ElfError::BadHeaderSize);
    }
    let count = usize::from(u16_at(header, 56));
    if count > MAX_PROGRAM_HEADERS {
        return Err(ElfError::TooManySegments);
    }
    let table = usize::try_from(u64_at(header, 32))
        .ok()
        .and_then(|start| image.get(start..)?.get(..count.checked_mul(PHDR_SIZE)?))
        .ok_or(ElfError::ProgramHeadersOutOfFile)?;
    // `table` is exactly `count` entries long, so nothing is left over.
    Ok((u64_at(header, 24), table.as_chunks::<PHDR_SIZE>().0))
}

/// Checks the `PT_LOAD` program header `raw`, number `index`, against the
/// image and user space. Returns `None` for an empty segment, which maps
/// nothing.
fn check_load(image: &[u8], index: usize, raw: &[u8; PHDR_SIZE]) -> Result<Option<Segment>, ElfError> {
    let flags = u32_at(raw, 4);
    let segment = Segment {
        vaddr: u64_at(raw, 16),
        mem_size: u64_at(raw, 40),
        file_offset: u64_at(raw, 8),
        file_size: u64_at(raw, 32),
        writable: flags & PF_W != 0,
        executable: flags & PF_X != 0,
    };
    let align = u64_at(raw, 48);

    // Checked even for an empty segment: a file size with no memory behind
    // it is a malformed file, not an empty segment.
    if segment.file_size > segment.mem_size {
        return Err(ElfError::FileSizeExceedsMemSize { index });
    }
    if segment.mem_size == 0 {
        return Ok(None);
    }

    let file_end = segment.file_offset.checked_add(segment.file_size).ok_or(ElfError::Overflow { index })?;
    if file_end > image.len() as u64 {
        return Err(ElfError::SegmentOutsideFile { index });
    }
    let mem_end = segment.vaddr.checked_add(segment.mem_size).ok_or(ElfError::Overflow { index })?;
    if segment.vaddr < USER_START || mem_end > USER_END {
        return Err(ElfError::SegmentOutsideUserSpace { index });
    }

    // p_align of 0 or 1 means "no constraint"; otherwise it must be a power
    // of two and the address must match the offset modulo it (System V ABI,
    // "Program Header"). The page size always applies, because the kernel
    // maps the segment page by page.
    if align > 1 && (!align.is_power_of_two() || segment.vaddr % align != segment.file_offset % align) {
        return Err(ElfError::Misaligned { index });
    }
    if segment.vaddr % PAGE_SIZE != segment.file_offset % PAGE_SIZE {
        return Err(ElfError::Misaligned { index });
    }

    if segment.writable && segment.executable {
        return Err(ElfError::WritableAndExecutable { index });
    }
    Ok(Some(segment))
}

/// `addr` rounded down to a page boundary.
const fn page_down(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

/// `addr` rounded up to a page boundary, or `None` if that does not fit.
const fn page_up(addr: u64) -> Option<u64> {
    match addr.checked_add(PAGE_SIZE - 1) {
        Some(sum) => Some(page_down(sum)),
        None => None,
    }
}

/// The little-endian `u16` at `offset` of a fixed-size record.
fn u16_at<const N: usize>(bytes: &[u8; N], offset: usize) -> u16 {
    u16::from_le_bytes(array_at(bytes, offset))
}

/// The little-endian `u32` at `offset` of a fixed-size record.
fn u32_at<const N: usize>(bytes: &[u8; N], offset: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, offset))
}

/// The little-endian `u64` at `offset` of a fixed-size record.
fn u64_at<const N: usize>(bytes: &[u8; N], offset: usize) -> u64 {
    u64::from_le_bytes(array_at(bytes, offset))
}

/// The `L` bytes at `offset` of a fixed-size record. Every caller passes a
/// constant offset that lies inside the record (a 64-byte header or a
/// 56-byte program header), so this never indexes out of bounds.
fn array_at<const N: usize, const L: usize>(bytes: &[u8; N], offset: usize) -> [u8; L] {
    let mut out = [0u8; L];
    out.copy_from_slice(&bytes[offset..offset + L]);
    out
}
