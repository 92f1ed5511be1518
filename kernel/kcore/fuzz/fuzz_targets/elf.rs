//! Coverage-guided fuzzing of the ELF load planner with arbitrary bytes:
//!
//! 1. the bytes as a whole image, handed to `plan`;
//! 2. the bytes as the program header table (and the rest of the file)
//!    behind a fixed, valid ELF header, so that the fuzzer spends its time
//!    on the segment rules instead of rediscovering the header.
//!
//! Nothing may panic, and a plan that comes back must keep every promise
//! `LoadPlan` makes, checked here independently of the planner.
#![no_main]

use ferrite_kcore::elf::{plan, LoadPlan, MAX_PROGRAM_HEADERS, PAGE_SIZE, USER_END, USER_START};
use libfuzzer_sys::fuzz_target;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// An ELF64 x86-64 `ET_EXEC` header whose program header table starts right
/// after it, with `phnum` entries and the given entry point.
fn header(phnum: u16, entry: u64) -> [u8; EHDR_SIZE] {
    let mut h = [0; EHDR_SIZE];
    h[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    h[16..18].copy_from_slice(&2u16.to_le_bytes());
    h[18..20].copy_from_slice(&62u16.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..32].copy_from_slice(&entry.to_le_bytes());
    h[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    h[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    h[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    h[56..58].copy_from_slice(&phnum.to_le_bytes());
    h
}

/// Everything a plan promises about `image`.
fn check(image: &[u8], plan: &LoadPlan) {
    assert!(!plan.segments.is_empty());
    assert!(plan.segments.len() <= MAX_PROGRAM_HEADERS);
    for s in &plan.segments {
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        assert!(s.vaddr >= USER_START);
        assert!(s.vaddr.checked_add(s.mem_size).is_some_and(|end| end <= USER_END));
        let start = usize::try_from(s.file_offset).unwrap();
        assert!(image.get(start..start + s.file_size as usize).is_some());
        assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE);
        assert!(!(s.writable && s.executable));
    }
    for pair in plan.segments.windows(2) {
        // Sorted, and the next one starts on a page after this one ends.
        let end = (pair[0].vaddr + pair[0].mem_size).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        assert!(end <= pair[1].vaddr / PAGE_SIZE * PAGE_SIZE);
    }
    assert!(plan.segments.iter().any(|s| s.executable && (s.vaddr..s.vaddr + s.mem_size).contains(&plan.entry)));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = plan(data) {
        check(data, &plan);
    }

    // The first 8 bytes choose the entry point; the rest follows the
    // header, the table first.
    let Some((entry, rest)) = data.split_first_chunk::<8>() else { return };
    let phnum = (rest.len() / PHDR_SIZE).min(MAX_PROGRAM_HEADERS) as u16;
    let mut image = header(phnum, u64::from_le_bytes(*entry)).to_vec();
    image.extend_from_slice(rest);
    if let Ok(plan) = plan(&image) {
        check(&image, &plan);
    }
});
