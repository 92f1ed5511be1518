//! Robustness: truncated images, seeded mutation fuzzing, and the error
//! text.
//!
//! The mutation tests run on every `cargo test`, on stable. Each case draws
//! from its own generator, seeded from the test's seed and the iteration
//! number, so a failure names one case seed that replays it alone (call the
//! same `*_case` function with it). The coverage-guided counterpart is the
//! `elf` target in `kernel/kcore/fuzz`.

use std::collections::BTreeSet;
use std::panic::catch_unwind;

use super::{check_plan, Image, Phdr, EHDR, PHDR, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_NOTE, R, RODATA, RW, RX, TEXT};
use super::{DATA, RODATA_OFFSET, TEXT_SIZE};
use crate::elf::{plan, ElfError, LoadPlan, PAGE_SIZE, USER_END, USER_START};
use crate::rng::XorShift64 as XorShift;

/// A compact image with 64 small `PT_LOAD` segments, so that the fuzzer
/// also works on a full table; each sits in its own two-page slot.
fn many_segments() -> Image {
    let data_start = (EHDR + 64 * PHDR).next_multiple_of(64) as u64;
    let phdrs = (0..64u64)
        .map(|k| {
            let offset = data_start + k * 16;
            let flags = [RX, R, RW][k as usize % 3];
            Phdr::load(flags, offset, 0x40_0000 + 2 * k * PAGE_SIZE + offset % PAGE_SIZE, 16, 16 + k)
        })
        .collect();
    Image::valid().with(|i| {
        i.phdrs = phdrs;
        i.len = data_start as usize + 64 * 16;
        i.entry = 0x40_0000 + data_start + 15;
    })
}

/// Valid images to mutate, each exercising a different shape.
fn seeds() -> Vec<Image> {
    let default = Image::valid();
    let table_at_end = default.clone().with(|i| {
        i.phoff = i.len as u64 + 1;
        i.len += 1 + 3 * PHDR;
    });
    let shuffled = default.clone().with(|i| {
        i.phdrs.reverse();
        i.phdrs.insert(1, Phdr { p_type: PT_NOTE, filesz: 0x20, memsz: 0x20, align: 4, ..RODATA });
        i.phdrs.push(Phdr { flags: RW, ..Phdr::of_type(PT_GNU_STACK) });
    });
    let tiny = default.clone().with(|i| {
        i.phdrs = vec![Phdr::load(RX, 0, 0x40_0000, 0x100, 0x100)];
        i.entry = 0x40_0080;
        i.len = 0x100;
    });
    vec![default, table_at_end, shuffled, tiny, many_segments()]
}

/// Runs the planner, turning a panic into a failure that names the case.
fn plan_case(bytes: &[u8], case: &str) -> Result<LoadPlan, ElfError> {
    let result = catch_unwind(|| plan(bytes)).unwrap_or_else(|_| panic!("{case}: plan panicked"));
    if let Ok(plan) = &result {
        check_plan(bytes, plan, case);
    }
    result
}

/// Which variant an error is, without its fields.
fn kind(error: &ElfError) -> String {
    format!("{error:?}").split([' ', '{']).next().unwrap_or_default().to_owned()
}

/// One of each error, in declaration order. The match below stops
/// compiling when a variant is added, as a reminder to list it here.
fn all_errors() -> Vec<ElfError> {
    use ElfError::*;
    let all = vec![
        TooShort,
        BadMagic,
        Not64Bit,
        NotLittleEndian,
        BadVersion,
        NotExecutable,
        WrongMachine,
        BadHeaderSize,
        ProgramHeadersOutOfFile,
        TooManySegments,
        NoLoadableSegment,
        SegmentOutsideFile { index: 3 },
        FileSizeExceedsMemSize { index: 12 },
        SegmentOutsideUserSpace { index: 0 },
        Misaligned { index: 63 },
        Overlap { a: 1, b: 5 },
        WritableAndExecutable { index: 7 },
        EntryNotExecutable,
        Interpreter,
        Overflow { index: 2 },
    ];
    for error in &all {
        match error {
            TooShort
            | BadMagic
            | Not64Bit
            | NotLittleEndian
            | BadVersion
            | NotExecutable
            | WrongMachine
            | BadHeaderSize
            | ProgramHeadersOutOfFile
            | TooManySegments
            | NoLoadableSegment
            | SegmentOutsideFile { .. }
            | FileSizeExceedsMemSize { .. }
            | SegmentOutsideUserSpace { .. }
            | Misaligned { .. }
            | Overlap { .. }
            | WritableAndExecutable { .. }
            | EntryNotExecutable
            | Interpreter
            | Overflow { .. } => {}
        }
    }
    all
}

#[test]
fn seeds_are_valid() {
    for (n, seed) in seeds().iter().enumerate() {
        plan_case(&seed.build(), &format!("seed {n}")).unwrap();
    }
}

#[test]
fn every_truncation_of_the_default_image() {
    // Which error each length gets follows from the layout: header, table,
    // then the end of each segment's file bytes in turn.
    const TABLE_END: u64 = (EHDR + 3 * PHDR) as u64;
    const RODATA_END: u64 = RODATA_OFFSET + RODATA.filesz;
    let full = Image::valid().build();
    assert_eq!(full.len() as u64, DATA.offset + DATA.filesz);
    for len in 0..full.len() {
        let expected = match len as u64 {
            0..64 => ElfError::TooShort,
            64..TABLE_END => ElfError::ProgramHeadersOutOfFile,
            TABLE_END..TEXT_SIZE => ElfError::SegmentOutsideFile { index: 0 },
            TEXT_SIZE..RODATA_END => ElfError::SegmentOutsideFile { index: 1 },
            _ => ElfError::SegmentOutsideFile { index: 2 },
        };
        assert_eq!(plan_case(&full[..len], &format!("length {len}")), Err(expected));
    }
}

#[test]
fn every_truncation_of_every_seed() {
    for (n, seed) in seeds().iter().enumerate() {
        let full = seed.build();
        for len in 0..full.len() {
            assert!(plan_case(&full[..len], &format!("seed {n} cut to {len}")).is_err(), "seed {n} cut to {len}");
        }
    }
}

/// A value for a 64-bit field: boundaries of the rules, values near the
/// current one, or noise.
fn interesting(rng: &mut XorShift, current: u64, image_len: usize) -> u64 {
    let len = image_len as u64;
    match rng.index(6) {
        0 => {
            let fixed = [0, 1, PAGE_SIZE - 1, PAGE_SIZE, USER_START - 1, USER_START, USER_END - 1, USER_END];
            fixed[rng.index(fixed.len())]
        }
        1 => [len.wrapping_sub(1), len, len + 1, 1 << 63, u64::MAX - PAGE_SIZE + 1, u64::MAX][rng.index(6)],
        2 => current.wrapping_add([1, 16, PAGE_SIZE, 0x10_0000][rng.index(4)]),
        3 => current.wrapping_sub([1, 16, PAGE_SIZE, 0x10_0000][rng.index(4)]),
        4 => current ^ (1 << rng.index(64)),
        _ => rng.next_u64(),
    }
}

/// Applies one to three field-level changes: header fields, whole headers
/// moved or copied, header fields set to interesting values.
fn mutate_fields(rng: &mut XorShift, image: &mut Image) {
    for _ in 0..1 + rng.index(3) {
        let n = image.phdrs.len();
        match rng.index(16) {
            0 => image.entry = entry_near_a_segment(rng, image),
            1 => image.phoff = interesting(rng, image.phoff, image.len),
            2 => image.phnum = Some([0, 1, 63, 64, 65, 0xFFFF, rng.next_u64() as u16][rng.index(7)]),
            3 => match rng.index(6) {
                0 => image.e_type = rng.below(5) as u16,
                1 => image.machine = [3, 62, 183][rng.index(3)],
                2 => image.version = rng.below(3) as u32,
                3 => image.ehsize = [52, 64, 65][rng.index(3)],
                4 => image.phentsize = [32, 56, 57][rng.index(3)],
                _ => image.ident[rng.index(8)] = rng.below(4) as u8,
            },
            4 => image.len = [rng.index(image.len + 1), image.len + rng.index(0x2000)][rng.index(2)],
            5 if n > 0 => {
                image.phdrs.remove(rng.index(n));
            }
            6 if n > 0 => {
                let copy = image.phdrs[rng.index(n)];
                image.phdrs.insert(rng.index(n + 1), copy);
            }
            7 if n > 1 => image.phdrs.swap(rng.index(n), rng.index(n)),
            8 if n > 0 => {
                image.phdrs[rng.index(n)].p_type = [PT_LOAD, PT_INTERP, PT_NOTE, rng.next_u64() as u32][rng.index(4)]
            }
            9 if n > 0 => image.phdrs[rng.index(n)].flags = rng.below(8) as u32,
            _ if n > 0 => {
                let len = image.len;
                let p = &mut image.phdrs[rng.index(n)];
                let field = match rng.index(5) {
                    0 => &mut p.offset,
                    1 => &mut p.vaddr,
                    2 => &mut p.filesz,
                    3 => &mut p.memsz,
                    _ => &mut p.align,
                };
                *field = interesting(rng, *field, len);
            }
            _ => image.phdrs.push(TEXT),
        }
    }
}

/// An entry point at, just inside or just past the edges of a segment, so
/// that the entry check is reached with values worth checking.
fn entry_near_a_segment(rng: &mut XorShift, image: &Image) -> u64 {
    let Some(p) = image.phdrs.get(rng.index(image.phdrs.len().max(1))) else { return rng.next_u64() };
    let end = p.vaddr.wrapping_add(p.memsz);
    [p.vaddr, p.vaddr.wrapping_sub(1), end, end.wrapping_sub(1), p.vaddr.wrapping_add(rng.below(p.memsz.max(1)))]
        [rng.index(5)]
}

/// One field-mutation case, entirely determined by `case_seed`.
fn field_case(case_seed: u64) -> (Image, Result<LoadPlan, ElfError>) {
    let mut rng = XorShift::new(case_seed);
    let seeds = seeds();
    let mut image = seeds[rng.index(seeds.len())].clone();
    mutate_fields(&mut rng, &mut image);
    let result = plan_case(&image.build(), &format!("field_case({case_seed:#x})"));
    (image, result)
}

/// The seed of iteration `i` of a test seeded with `seed`.
fn case_seed(seed: u64, i: u64) -> u64 {
    seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[test]
fn mutated_fields() {
    const SEED: u64 = 0xE1F6_4000_5EED_0001;
    const ITERATIONS: u64 = 30_000;
    let mut seen = BTreeSet::new();
    let mut ok = 0;
    for i in 0..ITERATIONS {
        match field_case(case_seed(SEED, i)).1 {
            Ok(_) => ok += 1,
            Err(e) => {
                seen.insert(kind(&e));
            }
        }
    }
    // Enough inputs must get all the way through, and every rule must be
    // broken at some point, or the mutator is not reaching the planner.
    assert!(ok > ITERATIONS / 20, "seed {SEED:#x}: only {ok} accepted");
    let missing: Vec<String> = all_errors().iter().map(kind).filter(|k| !seen.contains(k)).collect();
    assert!(missing.is_empty(), "seed {SEED:#x}: never produced {missing:?}");
}

/// Bytes the byte mutator likes to write.
const INTERESTING_BYTES: [u8; 10] = [0, 1, 2, 3, 4, 7, 0x10, 0x40, 0x7F, 0xFF];

/// One byte-mutation case, entirely determined by `case_seed`: one to four
/// changes to the built image, mostly in the header and program header
/// table where every byte matters.
fn byte_case(case_seed: u64) -> (Vec<u8>, Result<LoadPlan, ElfError>) {
    let mut rng = XorShift::new(case_seed);
    let seeds = seeds();
    let image = &seeds[rng.index(seeds.len())];
    let table = image.phoff as usize..image.phoff as usize + image.phdrs.len() * PHDR;
    let mut bytes = image.build();
    for _ in 0..1 + rng.index(4) {
        let len = bytes.len();
        if len == 0 {
            bytes.push(rng.next_u64() as u8);
            continue;
        }
        let at = match rng.index(4) {
            0 => rng.index(EHDR),
            1 | 2 => table.start + rng.index(table.len().max(1)),
            _ => rng.index(len),
        }
        .min(len - 1);
        match rng.index(8) {
            0 | 1 => bytes[at] ^= 1 << rng.index(8),
            2 | 3 => bytes[at] = INTERESTING_BYTES[rng.index(INTERESTING_BYTES.len())],
            4 => {
                // A whole little-endian field, often one of the rules'
                // boundaries.
                let value = interesting(&mut rng, 0, len).to_le_bytes();
                let n = [2, 4, 8][rng.index(3)].min(len - at);
                bytes[at..at + n].copy_from_slice(&value[..n]);
            }
            5 => bytes.truncate(rng.index(len + 1)),
            6 => {
                // Copy one program header over another.
                let slots = table.len() / PHDR;
                let (from, to) = (table.start + rng.index(slots) * PHDR, table.start + rng.index(slots) * PHDR);
                if to + PHDR <= len && from + PHDR <= len {
                    bytes.copy_within(from..from + PHDR, to);
                }
            }
            _ => {
                if rng.chance(2) {
                    bytes.insert(at, rng.next_u64() as u8);
                } else {
                    bytes.remove(at);
                }
            }
        }
    }
    let result = plan_case(&bytes, &format!("byte_case({case_seed:#x})"));
    (bytes, result)
}

#[test]
fn mutated_bytes() {
    const SEED: u64 = 0xB17E_5EED_0E1F_0002;
    const ITERATIONS: u64 = 30_000;
    let mut ok = 0;
    for i in 0..ITERATIONS {
        if byte_case(case_seed(SEED, i)).1.is_ok() {
            ok += 1;
        }
    }
    assert!(ok > ITERATIONS / 20, "seed {SEED:#x}: only {ok} accepted");
}

#[test]
fn random_program_headers_behind_a_good_header() {
    // Tables of pure noise drawn from interesting values, under a header
    // that passes every check.
    const SEED: u64 = 0x0A1D_0FF0_0D00_0003;
    for i in 0..5_000 {
        let case = case_seed(SEED, i);
        let mut rng = XorShift::new(case);
        let len = 0x1000 + rng.index(0x4000);
        let phdrs: Vec<Phdr> = (0..1 + rng.index(8))
            .map(|_| Phdr {
                p_type: [PT_LOAD, PT_LOAD, PT_NOTE, PT_INTERP][rng.index(4)],
                flags: rng.below(8) as u32,
                offset: interesting(&mut rng, 0x1000, len),
                vaddr: interesting(&mut rng, 0x40_0000, len),
                paddr: rng.next_u64(),
                filesz: interesting(&mut rng, 0x100, len),
                memsz: interesting(&mut rng, 0x100, len),
                align: interesting(&mut rng, PAGE_SIZE, len),
            })
            .collect();
        let image = Image::valid().with(|i| {
            i.entry = interesting(&mut rng, phdrs[0].vaddr, len);
            (i.phdrs, i.len) = (phdrs, len);
        });
        let _ = plan_case(&image.build(), &format!("noise case {case:#x}"));
    }
}

#[test]
fn error_text_is_one_line() {
    let errors = all_errors();
    let texts: BTreeSet<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), errors.len(), "two errors read the same");
    for text in &texts {
        assert!(!text.trim().is_empty(), "empty text");
        assert!(!text.contains(['\n', '\r']), "{text:?} is not one line");
    }
}

#[test]
fn error_text_names_the_headers() {
    assert_eq!(ElfError::SegmentOutsideFile { index: 3 }.to_string(), "segment 3 lies outside the file");
    assert!(ElfError::Overlap { a: 1, b: 5 }.to_string().contains("segments 1 and 5"));
    for error in all_errors() {
        let text = error.to_string();
        match error {
            ElfError::SegmentOutsideFile { index }
            | ElfError::FileSizeExceedsMemSize { index }
            | ElfError::SegmentOutsideUserSpace { index }
            | ElfError::Misaligned { index }
            | ElfError::WritableAndExecutable { index }
            | ElfError::Overflow { index } => assert!(text.contains(&format!("segment {index} ")), "{text}"),
            ElfError::TooManySegments => assert!(text.contains("64"), "{text}"),
            _ => {}
        }
    }
}
