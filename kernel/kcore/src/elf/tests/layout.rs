//! Rules between segments and about the entry point: no two segments may
//! share a page, the entry point must be executable, and the order in which
//! these and the per-header checks are applied.

use super::PT_INTERP;
use super::{
    accepted, refused, Image, Phdr, DATA, ENTRY, PT_GNU_STACK, R, RODATA, RW, RX, TEXT, TEXT_SIZE, TEXT_VADDR,
};
use crate::elf::{ElfError, PAGE_SIZE, USER_START};

/// The default data segment moved to `vaddr`, keeping its page offset.
fn data_at(vaddr: u64) -> Phdr {
    Phdr { vaddr, paddr: vaddr, ..DATA }
}

#[test]
fn sharing_a_page_is_refused_in_either_header_order() {
    // Data (header 2) moved into the last page of the text (header 0).
    let data = data_at(0x40_1f80);
    let image = Image::valid().with(|i| i.phdrs[2] = data);
    refused(&image, ElfError::Overlap { a: 0, b: 2 });
    // Listed the other way round, the indices still name the lower header
    // first.
    refused(&image.clone().with(|i| i.phdrs.reverse()), ElfError::Overlap { a: 0, b: 2 });
    let image = Image::valid().with(|i| i.phdrs = vec![RODATA, data, TEXT]);
    refused(&image, ElfError::Overlap { a: 1, b: 2 });
}

#[test]
fn touching_page_boundaries() {
    // Text ending exactly where rodata's page starts shares nothing; one
    // more byte of text lands in rodata's page.
    let text = |size| Image::valid().with(|i| (i.phdrs[0].filesz, i.phdrs[0].memsz) = (size, size));
    accepted(&text(0x2000));
    refused(&text(0x2001), ElfError::Overlap { a: 0, b: 1 });
    // Rodata starting one byte into the text's last page overlaps, the
    // next page does not.
    let rodata = |vaddr: u64| Image::valid().with(|i| i.phdrs[1] = Phdr { vaddr, offset: vaddr - 0x40_0000, ..RODATA });
    refused(&rodata(0x40_1fff), ElfError::Overlap { a: 0, b: 1 });
    accepted(&rodata(0x40_2000));
}

#[test]
fn bss_reaching_into_the_next_page() {
    // Data's bss ends at 0x405f80, inside page 0x405000.
    let above = |vaddr: u64| Image::valid().with(|i| i.phdrs.push(Phdr::load(R, vaddr % PAGE_SIZE, vaddr, 0x10, 0x10)));
    refused(&above(0x40_5ff0), ElfError::Overlap { a: 2, b: 3 });
    refused(&above(0x40_5000), ElfError::Overlap { a: 2, b: 3 });
    accepted(&above(0x40_6000));
}

#[test]
fn segment_inside_another() {
    let image = Image::valid().with(|i| i.phdrs[1] = Phdr { vaddr: 0x40_0800, offset: 0x800, ..RODATA });
    refused(&image, ElfError::Overlap { a: 0, b: 1 });
}

#[test]
fn the_same_segment_twice() {
    refused(&Image::valid().with(|i| i.phdrs.insert(1, TEXT)), ElfError::Overlap { a: 0, b: 1 });
    refused(&Image::valid().with(|i| i.phdrs.push(DATA)), ElfError::Overlap { a: 2, b: 3 });
}

#[test]
fn segment_spanning_several_others() {
    // Text's memory covers rodata's and data's pages. Which pair gets
    // reported is not promised, only that it is a real one.
    let image = Image::valid().with(|i| i.phdrs[0].memsz = 0x10_0000);
    let err = image.plan().unwrap_err();
    assert!(matches!(err, ElfError::Overlap { a: 0, b: 1 | 2 }), "{err:?}");
}

#[test]
fn entry_at_the_edges_of_the_text() {
    for entry in [TEXT_VADDR, ENTRY, TEXT_VADDR + TEXT_SIZE - 1] {
        assert_eq!(accepted(&Image::valid().with(|i| i.entry = entry)).entry, entry);
    }
    for entry in [TEXT_VADDR - 1, TEXT_VADDR + TEXT_SIZE] {
        refused(&Image::valid().with(|i| i.entry = entry), ElfError::EntryNotExecutable);
    }
}

#[test]
fn entry_in_a_non_executable_segment() {
    // Rodata, data, data's bss, and its last byte.
    for entry in [RODATA.vaddr, DATA.vaddr, DATA.vaddr + DATA.filesz, DATA.vaddr + DATA.memsz - 1] {
        refused(&Image::valid().with(|i| i.entry = entry), ElfError::EntryNotExecutable);
    }
}

#[test]
fn entry_outside_every_segment() {
    for entry in [0, USER_START - 1, 0x40_1900, 0x7fff_ffff_ffff, u64::MAX] {
        refused(&Image::valid().with(|i| i.entry = entry), ElfError::EntryNotExecutable);
    }
}

#[test]
fn entry_in_a_second_text_segment() {
    let more_text = Phdr::load(RX, 0x3000, 0x50_0000, 0x80, 0x80);
    let image = Image::valid().with(|i| {
        i.phdrs.push(more_text);
        i.entry = 0x50_007f;
    });
    assert_eq!(accepted(&image).segments.len(), 4);
}

#[test]
fn entry_in_zero_filled_executable_memory() {
    // The segment is its memory size, not its file size, so the zeros the
    // kernel fills in count as inside it. (Running them faults, harmlessly.)
    let image = Image::valid().with(|i| {
        i.phdrs[0].memsz = 0x1900;
        i.entry = TEXT_VADDR + 0x18ff;
    });
    accepted(&image);
}

#[test]
fn entry_only_in_something_that_is_not_loaded() {
    // An empty executable PT_LOAD and an executable non-LOAD header at the
    // entry point map nothing there.
    let empty = Phdr::load(RX, 0, 0x50_0000, 0, 0);
    let stack = Phdr { p_type: PT_GNU_STACK, ..Phdr::load(RX, 0, 0x50_0000, 0x1000, 0x1000) };
    for extra in [empty, stack] {
        let image = Image::valid().with(|i| {
            i.phdrs.push(extra);
            i.entry = 0x50_0000;
        });
        refused(&image, ElfError::EntryNotExecutable);
    }
}

#[test]
fn errors_between_segments_come_last() {
    // Nothing loadable is found before overlaps are looked for, and
    // overlaps before the entry point.
    let only_empty = Image::valid().with(|i| (i.phdrs, i.entry) = (vec![Phdr::load(RW | RX, 0, 0, 0, 0)], 0));
    refused(&only_empty, ElfError::NoLoadableSegment);
    let overlap_and_bad_entry = Image::valid().with(|i| {
        i.phdrs.push(TEXT);
        i.entry = 0;
    });
    refused(&overlap_and_bad_entry, ElfError::Overlap { a: 0, b: 3 });
}

#[test]
fn interpreter_and_bad_loads_in_header_order() {
    // Headers are checked in turn, so whichever comes first decides.
    let interp = Phdr { p_type: PT_INTERP, ..Phdr::load(R, 0x2000, 0x40_2000, 28, 28) };
    let bad = data_at(0);
    refused(&Image::valid().with(|i| i.phdrs.extend([interp, bad])), ElfError::Interpreter);
    refused(&Image::valid().with(|i| i.phdrs.extend([bad, interp])), ElfError::SegmentOutsideUserSpace { index: 3 });
    // An overlap is found only after every header, so the interpreter wins.
    refused(&Image::valid().with(|i| i.phdrs.extend([TEXT, interp])), ElfError::Interpreter);
}
