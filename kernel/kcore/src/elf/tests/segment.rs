//! The rules each `PT_LOAD` header must meet on its own: sizes, file
//! bounds, overflow, user-space bounds, alignment and W^X, each at its
//! boundary, and the order in which they are checked.

use super::{accepted, refused, Fix, Image, Phdr, DATA, DATA_OFFSET, IMAGE_LEN, RW, RX, TEXT};
use super::{PF_W, PF_X, PT_LOAD};
use crate::elf::{ElfError, PAGE_SIZE, USER_END, USER_START};

/// The default image with the data segment (header 2) changed.
fn with_data(change: impl FnOnce(&mut Phdr)) -> Image {
    Image::valid().with(|i| change(&mut i.phdrs[2]))
}

/// The default image with the text segment (header 0) changed; the entry
/// point follows the segment's start.
fn with_text(change: impl FnOnce(&mut Phdr)) -> Image {
    Image::valid().with(|i| {
        change(&mut i.phdrs[0]);
        i.entry = i.phdrs[0].vaddr;
    })
}

/// Header 2 refused with this error constructor.
fn data_refused(change: impl FnOnce(&mut Phdr), error: fn(usize) -> ElfError) {
    refused(&with_data(change), error(2));
}

#[test]
fn file_bytes_ending_at_the_image_end() {
    // The default data segment's file bytes end exactly at the image end.
    accepted(&Image::valid());
    refused(&Image::valid().with(|i| i.len -= 1), ElfError::SegmentOutsideFile { index: 2 });
    data_refused(|p| p.filesz += 1, |index| ElfError::SegmentOutsideFile { index });
}

#[test]
fn empty_file_part_must_still_start_inside_the_image() {
    // So that the kernel can slice image[offset..offset + 0] blindly.
    let bss = |offset: u64| Phdr::load(RW, offset, 0x60_0000 + offset % PAGE_SIZE, 0, PAGE_SIZE);
    accepted(&Image::valid().with(|i| i.phdrs.push(bss(IMAGE_LEN as u64))));
    let past = Image::valid().with(|i| i.phdrs.push(bss(IMAGE_LEN as u64 + 1)));
    refused(&past, ElfError::SegmentOutsideFile { index: 3 });
}

#[test]
fn segment_far_outside_the_file() {
    for offset in [IMAGE_LEN as u64 + 0xf80, 1 << 40, u64::MAX - 0x107f] {
        let image = with_data(|p| p.offset = offset - offset % PAGE_SIZE + DATA_OFFSET % PAGE_SIZE);
        refused(&image, ElfError::SegmentOutsideFile { index: 2 });
    }
}

#[test]
fn file_size_exceeds_mem_size() {
    data_refused(|p| p.filesz = p.memsz + 1, |index| ElfError::FileSizeExceedsMemSize { index });
    let image = Image::valid().with(|i| i.phdrs[1].memsz -= 1);
    refused(&image, ElfError::FileSizeExceedsMemSize { index: 1 });
    // Equal sizes are the normal case for text and rodata.
    accepted(&with_data(|p| p.memsz = p.filesz));
}

#[test]
fn file_bytes_in_an_empty_segment() {
    // Not an empty segment but a malformed header, so not skipped.
    let odd = Phdr::load(RW, 0, 0x60_0000, 1, 0);
    refused(&Image::valid().with(|i| i.phdrs.insert(1, odd)), ElfError::FileSizeExceedsMemSize { index: 1 });
}

#[test]
fn file_end_overflow() {
    // p_offset + p_filesz one past, and far past, 2^64 (the offsets keep
    // the data segment's page offset, so nothing else is wrong).
    for offset in [0u64.wrapping_sub(DATA.filesz), u64::MAX - 0x7f] {
        data_refused(|p| p.offset = offset, |index| ElfError::Overflow { index });
    }
    // Exactly 2^64 - 1 does not overflow; it is just outside the file.
    data_refused(|p| p.offset = u64::MAX - p.filesz, |index| ElfError::SegmentOutsideFile { index });
}

#[test]
fn mem_end_overflow() {
    data_refused(|p| p.vaddr = 0u64.wrapping_sub(DATA.memsz), |index| ElfError::Overflow { index });
    data_refused(|p| p.vaddr = u64::MAX - 0x7f, |index| ElfError::Overflow { index });
    data_refused(|p| p.memsz = u64::MAX, |index| ElfError::Overflow { index });
    // Exactly 2^64 - 1 does not overflow; it is just outside user space.
    data_refused(|p| p.vaddr = u64::MAX - p.memsz, |index| ElfError::SegmentOutsideUserSpace { index });
}

#[test]
fn lowest_user_address() {
    let plan = accepted(&with_text(|p| p.vaddr = USER_START));
    assert_eq!(plan.segments[0].vaddr, USER_START);
    for vaddr in [USER_START - 1, 1, 0] {
        let image = with_text(|p| (p.vaddr, p.offset) = (vaddr, vaddr));
        refused(&image, ElfError::SegmentOutsideUserSpace { index: 0 });
    }
}

#[test]
fn highest_user_address() {
    // The data segment's bss ends exactly at USER_END, then one byte beyond.
    let at_top = |memsz: u64| with_data(|p| (p.vaddr, p.memsz) = (USER_END - 0x1080, memsz));
    let plan = accepted(&at_top(0x1080));
    let top = plan.segments.last().unwrap();
    assert_eq!(top.vaddr + top.mem_size, USER_END);
    refused(&at_top(0x1081), ElfError::SegmentOutsideUserSpace { index: 2 });
}

#[test]
fn beyond_user_space() {
    // The last user page, the non-canonical hole, the kernel half.
    for vaddr in [USER_END, 0x0000_8000_0000_0000, 0xffff_8000_0000_0000, 0xffff_ffff_8000_0000] {
        let image = with_data(|p| p.vaddr = vaddr + DATA_OFFSET % PAGE_SIZE);
        refused(&image, ElfError::SegmentOutsideUserSpace { index: 2 });
    }
}

#[test]
fn no_alignment_constraint() {
    // p_align 0 and 1 both mean "none"; the page congruence still holds here.
    for align in [0, 1] {
        accepted(&Image::valid().with(|i| i.phdrs.iter_mut().for_each(|p| p.align = align)));
    }
}

#[test]
fn page_congruence_applies_whatever_p_align_says() {
    for align in [0, 1, 2, 16] {
        let image = with_data(|p| (p.align, p.vaddr) = (align, p.vaddr + 16));
        refused(&image, ElfError::Misaligned { index: 2 });
    }
}

#[test]
fn alignment_not_a_power_of_two() {
    // Data's address and offset differ by 0x401000 = 0x1000 * 5 * 5 * 41, so
    // they agree modulo each of these: only the power-of-two rule is broken.
    for align in [5, 41, 0x5000, 0x1000 * 25 * 41] {
        assert_eq!(DATA.vaddr % align, DATA.offset % align);
        data_refused(|p| p.align = align, |index| ElfError::Misaligned { index });
    }
    for align in [3, 0x1800, 0x3000, u64::MAX] {
        data_refused(|p| p.align = align, |index| ElfError::Misaligned { index });
    }
}

#[test]
fn larger_alignment_must_hold_too() {
    // Text at 0x400000, offset 0 is congruent modulo 2 MiB; data (offset
    // 0x2f80 at 0x403f80) is congruent modulo the page only.
    accepted(&Image::valid().with(|i| i.phdrs[0].align = 0x20_0000));
    data_refused(|p| p.align = 0x20_0000, |index| ElfError::Misaligned { index });
    // The largest power of two makes address and offset equal outright.
    refused(&Image::valid().with(|i| i.phdrs[0].align = 1 << 63), ElfError::Misaligned { index: 0 });
}

#[test]
fn offset_off_by_one() {
    data_refused(|p| p.offset -= 1, |index| ElfError::Misaligned { index });
    data_refused(|p| p.vaddr -= 1, |index| ElfError::Misaligned { index });
    // Off by a whole page is fine: only the page offset has to agree.
    accepted(&with_data(|p| p.vaddr += PAGE_SIZE));
}

#[test]
fn writable_and_executable() {
    for flags in [PF_W | PF_X, RW | RX, 0xFFFF_FFFF] {
        refused(&Image::valid().with(|i| i.phdrs[0].flags = flags), ElfError::WritableAndExecutable { index: 0 });
        data_refused(|p| p.flags = flags, |index| ElfError::WritableAndExecutable { index });
    }
}

#[test]
fn one_header_checks_come_in_order() {
    // A data header wrong in every way; each fix reveals the next check.
    let mut image = with_data(|p| {
        *p = Phdr {
            p_type: PT_LOAD,
            flags: RW | RX,
            offset: u64::MAX,
            vaddr: 0x10,
            paddr: 0,
            filesz: 2,
            memsz: 1,
            align: 3,
        };
    });
    let fixes: [Fix<Phdr>; 7] = [
        (ElfError::FileSizeExceedsMemSize { index: 2 }, |p| p.memsz = u64::MAX),
        (ElfError::Overflow { index: 2 }, |p| p.offset = u64::MAX - 2),
        (ElfError::SegmentOutsideFile { index: 2 }, |p| p.offset = 0x2f83),
        (ElfError::Overflow { index: 2 }, |p| p.memsz = 0x1000),
        (ElfError::SegmentOutsideUserSpace { index: 2 }, |p| p.vaddr = 0x40_4000),
        (ElfError::Misaligned { index: 2 }, |p| (p.vaddr, p.align) = (0x40_4f83, 1)),
        (ElfError::WritableAndExecutable { index: 2 }, |p| p.flags = RW),
    ];
    for (error, fix) in fixes {
        refused(&image, error);
        fix(&mut image.phdrs[2]);
    }
    accepted(&image);
}

#[test]
fn headers_are_checked_in_turn() {
    // The first bad header is reported, whatever the later ones hold.
    let image = Image::valid().with(|i| {
        i.phdrs[0].flags |= PF_W;
        i.phdrs[2].filesz = u64::MAX;
    });
    refused(&image, ElfError::WritableAndExecutable { index: 0 });
    let image = Image::valid().with(|i| {
        i.phdrs[1].offset = 1 << 40;
        i.phdrs[2].vaddr = 0;
    });
    refused(&image, ElfError::SegmentOutsideFile { index: 1 });
    // Per-header errors come before errors between headers.
    let image = Image::valid().with(|i| {
        i.phdrs[1] = TEXT;
        i.phdrs[2].align = 3;
    });
    refused(&image, ElfError::Misaligned { index: 2 });
}
