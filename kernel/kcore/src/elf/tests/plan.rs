//! Valid images and exactly what they plan: which headers become segments,
//! which are skipped or ignored, and in what order the segments come out.

use super::{
    accepted, refused, Image, Phdr, DATA, ENTRY, IMAGE_LEN, PF_W, PF_X, PT_DYNAMIC, PT_GNU_RELRO, PT_GNU_STACK,
    PT_INTERP, PT_LOAD, PT_NOTE, PT_NULL, PT_PHDR, PT_TLS, R, RODATA, RW, RX, TEXT,
};
use crate::elf::{plan, ElfError, LoadPlan, Segment, MAX_PROGRAM_HEADERS, PAGE_SIZE};

/// The plan of the default image, written out by hand.
fn default_plan() -> LoadPlan {
    let seg = |vaddr, mem_size, file_offset, file_size, writable, executable| Segment {
        vaddr,
        mem_size,
        file_offset,
        file_size,
        writable,
        executable,
    };
    LoadPlan {
        entry: 0x40_1000,
        segments: vec![
            seg(0x40_0000, 0x1800, 0, 0x1800, false, true),
            seg(0x40_2000, 0x300, 0x2000, 0x300, false, false),
            seg(0x40_3f80, 0x2000, 0x2f80, 0x100, true, false),
        ],
    }
}

/// Headers that are not `PT_LOAD` or `PT_INTERP`, with fields that would
/// break every rule if they were loaded.
fn junk_headers() -> Vec<Phdr> {
    [PT_NULL, PT_DYNAMIC, PT_NOTE, PT_PHDR, PT_TLS, PT_GNU_STACK, PT_GNU_RELRO, 0x7000_0000, 0xFFFF_FFFF]
        .into_iter()
        .map(|p_type| Phdr {
            p_type,
            flags: RW | RX,
            offset: u64::MAX - 1,
            vaddr: 0,
            paddr: u64::MAX,
            filesz: u64::MAX,
            memsz: 1,
            align: 3,
        })
        .collect()
}

#[test]
fn default_image() {
    assert_eq!(accepted(&Image::valid()), default_plan());
}

#[test]
fn image_need_not_be_aligned_in_memory() {
    // Multiboot modules start wherever GRUB put them.
    let mut buffer = vec![0];
    buffer.extend(Image::valid().build());
    assert_eq!(plan(&buffer[1..]), Ok(default_plan()));
}

#[test]
fn bytes_after_the_last_segment_are_ignored() {
    // Section headers, symbols and the like follow the segments in a real file.
    assert_eq!(accepted(&Image::valid().with(|i| i.len += 5000)), default_plan());
}

#[test]
fn empty_load_segments_are_skipped() {
    // Nothing else about an empty segment matters: it maps nothing.
    let empty =
        Phdr { p_type: PT_LOAD, flags: RW | RX, offset: u64::MAX, vaddr: 0, paddr: 0, filesz: 0, memsz: 0, align: 3 };
    let image = Image::valid().with(|i| {
        i.phdrs.insert(0, empty);
        i.phdrs.insert(2, Phdr::load(R, 0x2000, 0x40_2000, 0, 0));
        i.phdrs.push(empty);
    });
    assert_eq!(accepted(&image), default_plan());
}

#[test]
fn other_header_types_are_ignored() {
    let image = Image::valid().with(|i| {
        let junk = junk_headers();
        i.phdrs.splice(1..1, junk[..4].iter().copied());
        i.phdrs.extend_from_slice(&junk[4..]);
    });
    assert_eq!(accepted(&image), default_plan());
}

#[test]
fn realistic_note_stack_and_tls_headers() {
    // As `ld` writes them for a static binary with a build ID and TLS.
    let image = Image::valid().with(|i| {
        i.phdrs.push(Phdr { p_type: PT_NOTE, flags: R, filesz: 0x24, memsz: 0x24, align: 4, ..RODATA });
        i.phdrs.push(Phdr { p_type: PT_TLS, filesz: 0x10, memsz: 0x40, align: 8, ..DATA });
        i.phdrs.push(Phdr { flags: RW, align: 16, ..Phdr::of_type(PT_GNU_STACK) });
    });
    assert_eq!(accepted(&image), default_plan());
}

#[test]
fn interpreter_is_refused_wherever_it_is() {
    let interp = Phdr { p_type: PT_INTERP, flags: R, filesz: 28, memsz: 28, align: 1, ..RODATA };
    for at in 0..=3 {
        refused(&Image::valid().with(|i| i.phdrs.insert(at, interp)), ElfError::Interpreter);
    }
    // Even an empty one is a request for a dynamic linker.
    refused(&Image::valid().with(|i| i.phdrs.push(Phdr::of_type(PT_INTERP))), ElfError::Interpreter);
}

#[test]
fn headers_in_any_order_give_sorted_segments() {
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for order in orders {
        let image = Image::valid().with(|i| i.phdrs = order.iter().map(|&k| [TEXT, RODATA, DATA][k]).collect());
        assert_eq!(accepted(&image), default_plan(), "order {order:?}");
    }
}

#[test]
fn text_only() {
    let plan = accepted(&Image::valid().with(|i| i.phdrs = vec![TEXT]));
    assert_eq!(plan, LoadPlan { entry: ENTRY, segments: vec![TEXT.segment()] });
}

#[test]
fn bss_only_segment() {
    // A segment with no file bytes at all, e.g. a separate .bss.
    let bss = Phdr::load(RW, 0, 0x60_0000, 0, 0x10_0000);
    let plan = accepted(&Image::valid().with(|i| i.phdrs.push(bss)));
    assert_eq!(plan.segments.last(), Some(&bss.segment()));
}

#[test]
fn unaligned_text_start() {
    // Address and offset agree modulo the page size; neither is aligned.
    let text = Phdr::load(RX, 0x123, 0x40_0123, 0x100, 0x100);
    let plan = accepted(&Image::valid().with(|i| (i.phdrs, i.entry) = (vec![text], 0x40_0123)));
    assert_eq!(plan.segments, [text.segment()]);
}

#[test]
fn as_many_segments_as_headers() {
    // MAX_PROGRAM_HEADERS one-page segments, every other one executable,
    // listed from the highest address down.
    let phdrs: Vec<Phdr> = (0..MAX_PROGRAM_HEADERS as u64)
        .rev()
        .map(|k| Phdr::load(if k % 2 == 0 { RX } else { RW }, k * PAGE_SIZE, 0x40_0000 + k * PAGE_SIZE, 8, PAGE_SIZE))
        .collect();
    let image = Image::valid().with(|i| {
        i.phdrs = phdrs.clone();
        i.len = MAX_PROGRAM_HEADERS * PAGE_SIZE as usize;
        i.entry = 0x40_0000 + 62 * PAGE_SIZE + 7;
    });
    let plan = accepted(&image);
    let mut sorted = phdrs;
    sorted.reverse();
    assert_eq!(plan.segments, sorted.iter().map(Phdr::segment).collect::<Vec<_>>());
}

#[test]
fn writable_only_and_execute_only_flags() {
    // PF_R is implied: W without R is writable data, X without R is text.
    let image = Image::valid().with(|i| {
        i.phdrs[0].flags = PF_X;
        i.phdrs[2].flags = PF_W;
        i.phdrs[1].flags = 0;
    });
    assert_eq!(accepted(&image), default_plan());
}

#[test]
fn physical_addresses_are_ignored() {
    let image = Image::valid().with(|i| i.phdrs.iter_mut().for_each(|p| p.paddr = u64::MAX));
    assert_eq!(accepted(&image), default_plan());
}

#[test]
fn image_len_matches_the_default_layout() {
    // Guards the constants the boundary tests rely on.
    assert_eq!(IMAGE_LEN as u64, DATA.offset + DATA.filesz);
    assert_eq!(Image::valid().build().len(), IMAGE_LEN);
}

#[test]
fn segment_pages() {
    let seg =
        |vaddr, mem_size| Segment { vaddr, mem_size, file_offset: 0, file_size: 0, writable: false, executable: false };
    assert_eq!(seg(0x40_0000, 0x1000).pages(), (0x40_0000, 0x40_1000));
    assert_eq!(seg(0x40_0fff, 2).pages(), (0x40_0000, 0x40_2000));
    assert_eq!(seg(0x40_0010, 0x10).pages(), (0x40_0000, 0x40_1000));
    assert_eq!(seg(0x40_1000, 0).pages(), (0x40_1000, 0x40_1000));
    // Hand-made segments reaching the top saturate instead of wrapping.
    let top = u64::MAX - (PAGE_SIZE - 1);
    assert_eq!(seg(top + 5, 10).pages(), (top, top));
    assert_eq!(seg(u64::MAX, u64::MAX).pages(), (top, top));
    assert_eq!(seg(top - PAGE_SIZE, PAGE_SIZE).pages(), (top - PAGE_SIZE, top));
}
