//! Host tests for the ELF load planner: valid plans, the file header, each
//! program header rule, how segments relate to each other and to the entry
//! point, and robustness (truncation, seeded mutation, error text).
//!
//! Images are assembled by [`Image`], which describes a small but realistic
//! static executable field by field. Tests start from [`Image::valid`] and
//! change only what they are about, so a test that expects one error cannot
//! pass by accident because of another.

mod header;
mod layout;
mod plan;
mod robust;
mod segment;

use super::{plan, ElfError, LoadPlan, Segment, PAGE_SIZE, USER_END, USER_START};

// ELF constants are spelled out here rather than taken from the planner, so
// that a wrong value there cannot hide behind the same wrong value here.

/// `p_flags` bits. The planner treats `PF_R` as implied, but real linkers
/// always set it, so the builder does too.
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const R: u32 = PF_R;
const RW: u32 = PF_R | PF_W;
const RX: u32 = PF_R | PF_X;

/// Program header types.
const PT_NULL: u32 = 0;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PT_GNU_RELRO: u32 = 0x6474_e552;

/// `e_type` values.
const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const ET_CORE: u16 = 4;

/// The default layout, as `ld` lays out a small static program: the text
/// segment starts at file offset 0 and so also holds the headers, rodata
/// gets its own page, and data starts mid-page (its offset and address
/// agree modulo the page size, not more) with bss after it.
const TEXT_VADDR: u64 = 0x40_0000;
const TEXT_SIZE: u64 = 0x1800;
const RODATA_VADDR: u64 = 0x40_2000;
const RODATA_OFFSET: u64 = 0x2000;
const RODATA_SIZE: u64 = 0x300;
const DATA_VADDR: u64 = 0x40_3f80;
const DATA_OFFSET: u64 = 0x2f80;
const DATA_FILE_SIZE: u64 = 0x100;
const DATA_MEM_SIZE: u64 = 0x2000;
/// The image ends exactly where the data segment's file bytes do.
const IMAGE_LEN: usize = (DATA_OFFSET + DATA_FILE_SIZE) as usize;
const ENTRY: u64 = 0x40_1000;

/// The ELF64 header and program header sizes.
const EHDR: usize = 64;
const PHDR: usize = 56;

/// For the check-order tests: the error expected now, and the change to
/// `T` that gets past it.
type Fix<T> = (ElfError, fn(&mut T));

/// One program header, as written to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

impl Phdr {
    /// A `PT_LOAD` header with page alignment and `p_paddr == p_vaddr`.
    const fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Self {
        Self { p_type: PT_LOAD, flags, offset, vaddr, paddr: vaddr, filesz, memsz, align: PAGE_SIZE }
    }

    /// A header of type `p_type` with every other field zero.
    const fn of_type(p_type: u32) -> Self {
        Self { p_type, flags: 0, offset: 0, vaddr: 0, paddr: 0, filesz: 0, memsz: 0, align: 0 }
    }

    /// The segment the planner should produce for this `PT_LOAD` header.
    const fn segment(&self) -> Segment {
        Segment {
            vaddr: self.vaddr,
            mem_size: self.memsz,
            file_offset: self.offset,
            file_size: self.filesz,
            writable: self.flags & PF_W != 0,
            executable: self.flags & PF_X != 0,
        }
    }

    fn encode(&self) -> [u8; PHDR] {
        let mut out = [0; PHDR];
        put(&mut out, 0, &self.p_type.to_le_bytes());
        put(&mut out, 4, &self.flags.to_le_bytes());
        for (at, field) in [
            (8, self.offset),
            (16, self.vaddr),
            (24, self.paddr),
            (32, self.filesz),
            (40, self.memsz),
            (48, self.align),
        ] {
            put(&mut out, at, &field.to_le_bytes());
        }
        out
    }
}

/// The three `PT_LOAD` headers of the default image, in file order.
const TEXT: Phdr = Phdr::load(RX, 0, TEXT_VADDR, TEXT_SIZE, TEXT_SIZE);
const RODATA: Phdr = Phdr::load(R, RODATA_OFFSET, RODATA_VADDR, RODATA_SIZE, RODATA_SIZE);
const DATA: Phdr = Phdr::load(RW, DATA_OFFSET, DATA_VADDR, DATA_FILE_SIZE, DATA_MEM_SIZE);

/// An ELF image described field by field. [`Image::build`] writes exactly
/// these values, right or wrong; nothing is fixed up behind the test's back
/// except that bytes falling beyond `len` are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Image {
    ident: [u8; 16],
    e_type: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    ehsize: u16,
    phentsize: u16,
    /// `e_phnum`; the number of `phdrs` when `None`.
    phnum: Option<u16>,
    /// Written one after the other from `phoff`.
    phdrs: Vec<Phdr>,
    /// The length of the whole image.
    len: usize,
}

impl Image {
    /// A valid static executable: text (R+X, holding the headers), rodata
    /// (R) and data with bss (R+W), entry point in the text.
    fn valid() -> Self {
        let mut ident = [0; 16];
        ident[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        Self {
            ident,
            e_type: ET_EXEC,
            machine: 62,
            version: 1,
            entry: ENTRY,
            phoff: EHDR as u64,
            ehsize: EHDR as u16,
            phentsize: PHDR as u16,
            phnum: None,
            phdrs: vec![TEXT, RODATA, DATA],
            len: IMAGE_LEN,
        }
    }

    /// The same image with `change` applied, for one-line variations.
    fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self
    }

    fn build(&self) -> Vec<u8> {
        // Recognisable filler, as if code and data were there; the planner
        // must not care what it is.
        let mut bytes: Vec<u8> = (0..self.len).map(|i| (i as u8).wrapping_mul(0x9d) | 1).collect();
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        let mut header = [0; EHDR];
        put(&mut header, 0, &self.ident);
        put(&mut header, 16, &self.e_type.to_le_bytes());
        put(&mut header, 18, &self.machine.to_le_bytes());
        put(&mut header, 20, &self.version.to_le_bytes());
        put(&mut header, 24, &self.entry.to_le_bytes());
        put(&mut header, 32, &self.phoff.to_le_bytes());
        // e_shoff, e_flags stay 0: no section headers, no flags.
        put(&mut header, 52, &self.ehsize.to_le_bytes());
        put(&mut header, 54, &self.phentsize.to_le_bytes());
        put(&mut header, 56, &phnum.to_le_bytes());
        put(&mut header, 58, &64u16.to_le_bytes()); // e_shentsize, unused
        put(&mut bytes, 0, &header);
        for (i, phdr) in self.phdrs.iter().enumerate() {
            if let Some(at) = usize::try_from(self.phoff).ok().and_then(|o| o.checked_add(i * PHDR)) {
                put(&mut bytes, at, &phdr.encode());
            }
        }
        bytes
    }

    /// What the planner makes of the built image.
    fn plan(&self) -> Result<LoadPlan, ElfError> {
        plan(&self.build())
    }
}

/// Copies `src` to `dst` at `at`, dropping whatever does not fit.
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    let Some(tail) = dst.get_mut(at..) else { return };
    let n = tail.len().min(src.len());
    tail[..n].copy_from_slice(&src[..n]);
}

/// The plan of an image that must be valid; its invariants are checked too.
fn accepted(image: &Image) -> LoadPlan {
    let bytes = image.build();
    let plan = plan(&bytes).unwrap_or_else(|e| panic!("refused ({e}): {image:#x?}"));
    check_plan(&bytes, &plan, "accepted");
    plan
}

/// Asserts that `image` is refused with exactly `error`.
#[track_caller]
fn refused(image: &Image, error: ElfError) {
    assert_eq!(image.plan(), Err(error), "{image:#x?}");
}

/// Everything [`LoadPlan`] promises, checked the slow way, independently
/// of how the planner got there; `context` says which case failed.
fn check_plan(image: &[u8], plan: &LoadPlan, context: &str) {
    assert!(!plan.segments.is_empty(), "{context}: no segments");
    for (i, s) in plan.segments.iter().enumerate() {
        assert!(s.mem_size > 0, "{context}: segment {i} is empty");
        assert!(s.file_size <= s.mem_size, "{context}: segment {i} file bigger than memory");
        assert!(s.vaddr >= USER_START, "{context}: segment {i} below user space");
        let end = s.vaddr.checked_add(s.mem_size);
        assert!(end.is_some_and(|end| end <= USER_END), "{context}: segment {i} beyond user space");
        let file = usize::try_from(s.file_offset).ok().and_then(|o| image.get(o..o.checked_add(s.file_size as usize)?));
        assert!(file.is_some(), "{context}: segment {i} file bytes outside the image");
        assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE, "{context}: segment {i} misaligned");
        assert!(!(s.writable && s.executable), "{context}: segment {i} W+X");
    }
    for (i, pair) in plan.segments.windows(2).enumerate() {
        // Sorted and page-disjoint in one go: the next segment's first
        // page starts at or after this one's last page ends.
        let this_end = (pair[0].vaddr + pair[0].mem_size).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let next_start = pair[1].vaddr / PAGE_SIZE * PAGE_SIZE;
        assert!(this_end <= next_start, "{context}: segments {i} and {} unsorted or share a page", i + 1);
    }
    let runs = |s: &Segment| s.executable && (s.vaddr..s.vaddr + s.mem_size).contains(&plan.entry);
    assert!(plan.segments.iter().any(runs), "{context}: entry {:#x} not executable", plan.entry);
    assert_eq!(plan.segments, loads_of(image), "{context}: segments are not the image's PT_LOADs");
    assert_eq!(plan.entry, u64::from_le_bytes(image[24..32].try_into().unwrap()), "{context}: entry");
}

/// The non-empty `PT_LOAD` headers of an image the planner accepted,
/// decoded by the tests' own reader and sorted by address: what the plan
/// must consist of.
fn loads_of(image: &[u8]) -> Vec<Segment> {
    let u16_at = |at: usize| u16::from_le_bytes(image[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
    let phoff = u64_at(32) as usize;
    let mut loads: Vec<Segment> = (0..usize::from(u16_at(56)))
        .map(|i| phoff + i * PHDR)
        .filter(|&at| u32_at(at) == PT_LOAD && u64_at(at + 40) != 0)
        .map(|at| {
            let (flags, offset, vaddr) = (u32_at(at + 4), u64_at(at + 8), u64_at(at + 16));
            Phdr::load(flags, offset, vaddr, u64_at(at + 32), u64_at(at + 40)).segment()
        })
        .collect();
    loads.sort_by_key(|s| s.vaddr);
    loads
}
