//! The file header and the program header table: every way they can be
//! wrong, and the boundaries of the table's size and position.

use super::{accepted, refused, Fix, Image, Phdr, EHDR, ET_CORE, ET_DYN, ET_REL, IMAGE_LEN, PHDR, PT_NOTE, PT_NULL};
use crate::elf::{ElfError, MAX_PROGRAM_HEADERS};

#[test]
fn shorter_than_the_header() {
    for len in [0, 1, 4, 16, EHDR - 1] {
        refused(&Image::valid().with(|i| i.len = len), ElfError::TooShort);
    }
}

#[test]
fn header_alone_is_not_too_short() {
    // 64 bytes hold a whole header; what is missing now is the table.
    refused(&Image::valid().with(|i| i.len = EHDR), ElfError::ProgramHeadersOutOfFile);
}

#[test]
fn bad_magic() {
    for byte in 0..4 {
        refused(&Image::valid().with(|i| i.ident[byte] ^= 0x20), ElfError::BadMagic);
    }
    refused(&Image::valid().with(|i| i.ident[..4].copy_from_slice(b"MZ\x90\0")), ElfError::BadMagic);
}

#[test]
fn not_64_bit() {
    // ELFCLASSNONE, ELFCLASS32 and an undefined class.
    for class in [0, 1, 3, 0xFF] {
        refused(&Image::valid().with(|i| i.ident[4] = class), ElfError::Not64Bit);
    }
}

#[test]
fn not_little_endian() {
    // ELFDATANONE, ELFDATA2MSB and an undefined encoding.
    for data in [0, 2, 3] {
        refused(&Image::valid().with(|i| i.ident[5] = data), ElfError::NotLittleEndian);
    }
}

#[test]
fn big_endian_executable() {
    // What a big-endian toolchain would write: the multi-byte fields are
    // byte-swapped too, but the encoding byte is what gets it refused.
    let image = Image::valid().with(|i| {
        i.ident[5] = 2;
        i.e_type = i.e_type.swap_bytes();
        i.machine = i.machine.swap_bytes();
        i.version = i.version.swap_bytes();
    });
    refused(&image, ElfError::NotLittleEndian);
}

#[test]
fn bad_ident_version() {
    for version in [0, 2, 0xFF] {
        refused(&Image::valid().with(|i| i.ident[6] = version), ElfError::BadVersion);
    }
}

#[test]
fn bad_e_version() {
    for version in [0, 2, 0x0100_0000, u32::MAX] {
        refused(&Image::valid().with(|i| i.version = version), ElfError::BadVersion);
    }
}

#[test]
fn os_abi_and_padding_are_not_checked() {
    // ELFOSABI_GNU, as some linkers write for static binaries, and junk in
    // EI_ABIVERSION and the padding.
    let image = Image::valid().with(|i| {
        i.ident[7] = 3;
        i.ident[8] = 7;
        i.ident[9..].fill(0xAA);
    });
    accepted(&image);
}

#[test]
fn not_an_executable() {
    for e_type in [0, ET_REL, ET_DYN, ET_CORE, 0xFE00, 0xFFFF, super::ET_EXEC.swap_bytes()] {
        refused(&Image::valid().with(|i| i.e_type = e_type), ElfError::NotExecutable);
    }
}

#[test]
fn position_independent_executable() {
    // The common PIE shape: ET_DYN, linked at 0. Refused for its type
    // before any segment is looked at.
    let image = Image::valid().with(|i| {
        i.e_type = ET_DYN;
        for p in &mut i.phdrs {
            p.vaddr -= 0x40_0000;
        }
    });
    refused(&image, ElfError::NotExecutable);
}

#[test]
fn wrong_machine() {
    // None, i386, AArch64, RISC-V, and x86-64 byte-swapped.
    for machine in [0, 3, 183, 243, 62u16.swap_bytes()] {
        refused(&Image::valid().with(|i| i.machine = machine), ElfError::WrongMachine);
    }
}

#[test]
fn bad_header_sizes() {
    // The ELF32 sizes (52 and 32), and one either side of the right ones.
    for ehsize in [0, 52, 63, 65, 0xFFFF] {
        refused(&Image::valid().with(|i| i.ehsize = ehsize), ElfError::BadHeaderSize);
    }
    for phentsize in [0, 32, 55, 57, 64, 0xFFFF] {
        refused(&Image::valid().with(|i| i.phentsize = phentsize), ElfError::BadHeaderSize);
    }
}

#[test]
fn phentsize_is_checked_even_without_program_headers() {
    refused(&Image::valid().with(|i| (i.phnum, i.phentsize) = (Some(0), 0)), ElfError::BadHeaderSize);
}

#[test]
fn table_ending_exactly_at_the_image_end() {
    // Move the table behind the data segment's bytes, at the very end, as
    // some linkers place it. The text segment no longer covers it.
    let image = Image::valid().with(|i| {
        i.phoff = IMAGE_LEN as u64;
        i.len = IMAGE_LEN + 3 * PHDR;
    });
    accepted(&image);
    refused(&image.clone().with(|i| i.len -= 1), ElfError::ProgramHeadersOutOfFile);
}

#[test]
fn unaligned_table() {
    // Nothing requires the table to be aligned, and the planner reads it
    // byte by byte.
    let image = Image::valid().with(|i| {
        i.phoff = IMAGE_LEN as u64 + 3;
        i.len = IMAGE_LEN + 3 + 3 * PHDR;
    });
    accepted(&image);
}

#[test]
fn table_outside_the_image() {
    for phoff in [IMAGE_LEN as u64 - 1, IMAGE_LEN as u64, IMAGE_LEN as u64 + 1, 1 << 32, 1 << 63, u64::MAX] {
        refused(&Image::valid().with(|i| i.phoff = phoff), ElfError::ProgramHeadersOutOfFile);
    }
}

#[test]
fn table_end_would_overflow() {
    // e_phoff plus the table's size wraps around in 64 bits; a wrapped end
    // would land inside the image.
    for phoff in [u64::MAX - 3 * PHDR as u64 + 1, u64::MAX - PHDR as u64, u64::MAX - 1] {
        refused(&Image::valid().with(|i| i.phoff = phoff), ElfError::ProgramHeadersOutOfFile);
    }
}

#[test]
fn empty_table() {
    // With no entries, any offset up to the image end holds the table, so
    // what is wrong is that nothing is loaded; one past the end is not.
    let empty = |phoff| Image::valid().with(|i| (i.phdrs, i.phoff) = (Vec::new(), phoff));
    for phoff in [0, EHDR as u64, IMAGE_LEN as u64] {
        refused(&empty(phoff), ElfError::NoLoadableSegment);
    }
    refused(&empty(IMAGE_LEN as u64 + 1), ElfError::ProgramHeadersOutOfFile);
}

#[test]
fn phnum_larger_than_the_table_written() {
    // e_phnum says 4 but only 3 headers were written: the fourth is the
    // filler bytes after them, which happen to decode as an unknown type.
    // The count is believed; the bytes are inside the image.
    let plan = accepted(&Image::valid().with(|i| i.phnum = Some(4)));
    assert_eq!(plan.segments.len(), 3);
}

#[test]
fn most_program_headers() {
    // Exactly the maximum is fine, one more is refused before the table
    // is even located.
    let full = Image::valid().with(|i| i.phdrs.resize(MAX_PROGRAM_HEADERS, Phdr::of_type(PT_NOTE)));
    assert_eq!(accepted(&full).segments.len(), 3);
    let over = full.clone().with(|i| i.phdrs.push(Phdr::of_type(PT_NULL)));
    refused(&over, ElfError::TooManySegments);
    refused(&over.clone().with(|i| i.phoff = u64::MAX), ElfError::TooManySegments);
}

#[test]
fn extended_numbering_is_too_many() {
    // PN_XNUM (0xFFFF) announces that the real count is in section 0.
    refused(&Image::valid().with(|i| i.phnum = Some(0xFFFF)), ElfError::TooManySegments);
}

#[test]
fn header_checks_come_in_order() {
    // With everything wrong at once, the earliest check wins; fixing it
    // reveals the next. This is the order the documentation promises.
    let mut image = Image::valid().with(|i| {
        i.ident[0] = 0;
        i.ident[4] = 1;
        i.ident[5] = 2;
        i.ident[6] = 0;
        i.e_type = ET_DYN;
        i.machine = 3;
        i.ehsize = 52;
        i.phnum = Some(MAX_PROGRAM_HEADERS as u16 + 1);
    });
    let fixes: [Fix<Image>; 9] = [
        (ElfError::BadMagic, |i| i.ident[0] = 0x7F),
        (ElfError::Not64Bit, |i| i.ident[4] = 2),
        (ElfError::NotLittleEndian, |i| i.ident[5] = 1),
        (ElfError::BadVersion, |i| i.ident[6] = 1),
        (ElfError::NotExecutable, |i| i.e_type = super::ET_EXEC),
        (ElfError::WrongMachine, |i| i.machine = 62),
        (ElfError::BadHeaderSize, |i| i.ehsize = EHDR as u16),
        (ElfError::TooManySegments, |i| (i.phnum, i.phoff) = (None, u64::MAX)),
        (ElfError::ProgramHeadersOutOfFile, |i| i.phoff = EHDR as u64),
    ];
    for (error, fix) in fixes {
        refused(&image, error);
        fix(&mut image);
    }
    accepted(&image);
}
