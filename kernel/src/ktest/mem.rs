//! Memory tests: frames, heap, mappings, and the protections the page
//! tables promise.
use super::{Test, TestResult};
use crate::arch::idt::vector;
use crate::arch::trap::{probe_exec, probe_read, probe_write, PageFaultError as Pf};
use crate::ensure;
use crate::mem::{frames, heap, paging, phys_to_virt, stack::KernelStack, PAGE_SIZE};
use alloc::boxed::Box;
use alloc::vec::Vec;
use ferrite_kcore::rng::XorShift64;

pub const TESTS: &[Test] = &[
    Test { name: "mem::frames_alloc_free_reuse", run: frames_alloc_free_reuse },
    Test { name: "mem::frames_double_free_refused", run: frames_double_free_refused },
    Test { name: "mem::heap_small_churn", run: heap_small_churn },
    Test { name: "mem::heap_large_blocks", run: heap_large_blocks },
    Test { name: "mem::map_unmap", run: map_unmap },
    Test { name: "mem::rodata_write_faults", run: rodata_write_faults },
    Test { name: "mem::text_write_faults", run: text_write_faults },
    Test { name: "mem::nx_exec_faults", run: nx_exec_faults },
    Test { name: "mem::null_page_unmapped", run: null_page_unmapped },
    Test { name: "mem::trampoline_page_reserved", run: trampoline_page_reserved },
    Test { name: "mem::stack_guard_pages", run: stack_guard_pages },
    Test { name: "mem::stack_cache", run: stack_cache },
    Test { name: "mem::only_ram_direct_mapped", run: only_ram_direct_mapped },
    Test { name: "mem::read_physical", run: read_physical },
];

fn frames_alloc_free_reuse() -> TestResult {
    const COUNT: usize = 256;
    // Both lists allocated before counting: growing the heap meanwhile would
    // take frames too.
    let mut got = Vec::with_capacity(COUNT);
    let mut sorted = Vec::with_capacity(COUNT);
    let before = frames::free_count();
    for _ in 0..COUNT {
        let f = frames::alloc().ok_or("out of frames")?;
        ensure!(f % PAGE_SIZE == 0, "frame {f:#x} is not page aligned");
        ensure!(f >= 1 << 20, "frame {f:#x} lies in the reserved first MiB");
        let k = crate::mem::frames::kernel_image();
        ensure!(!k.contains(f), "frame {f:#x} is inside the kernel image");
        got.push(f);
    }
    ensure!(frames::free_count() == before - COUNT as u64, "free count did not drop by {COUNT}");
    sorted.extend_from_slice(&got);
    sorted.sort_unstable();
    sorted.dedup();
    ensure!(sorted.len() == got.len(), "a frame was handed out twice");
    // Frames are usable memory: write through the direct map.
    for &f in &got {
        // SAFETY: the frame is ours and direct-mapped.
        unsafe { (phys_to_virt(f) as *mut u64).write_volatile(f) };
    }
    for &f in &got {
        // SAFETY: as above.
        ensure!(unsafe { (phys_to_virt(f) as *const u64).read_volatile() } == f, "frame {f:#x} lost its data");
    }
    let lowest = sorted[0];
    for f in got {
        frames::free(f);
    }
    ensure!(frames::free_count() == before, "free count not restored after freeing");
    let again = frames::alloc().ok_or("out of frames")?;
    frames::free(again);
    ensure!(again <= lowest, "freed frame {lowest:#x} not reused (got {again:#x})");
    Ok(())
}

fn frames_double_free_refused() -> TestResult {
    let f = frames::alloc().ok_or("out of frames")?;
    frames::free(f);
    let before = frames::free_count();
    ensure!(frames::try_free(f).is_err(), "a double free was accepted");
    ensure!(frames::free_count() == before, "a refused double free changed the count");
    Ok(())
}

fn heap_small_churn() -> TestResult {
    let (used_before, _) = heap::usage();
    let mut rng = XorShift64::new(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<Vec<u8>> = Vec::new();
    for round in 0..20_000u32 {
        if live.len() < 500 && (!rng.next_u64().is_multiple_of(3) || live.is_empty()) {
            let len = (rng.next_u64() % 512) as usize + 1;
            live.push(alloc::vec![(round % 251) as u8; len]);
        } else {
            let i = (rng.next_u64() as usize) % live.len();
            let v = live.swap_remove(i);
            let fill = v[0];
            ensure!(v.iter().all(|&b| b == fill), "heap block corrupted");
        }
    }
    drop(live);
    let (used_after, _) = heap::usage();
    ensure!(used_after == used_before, "heap use {used_before} -> {used_after} bytes after churn");
    Ok(())
}

/// Large blocks, the largest first (so the smaller fit in its hole) and
/// none above an eighth of free memory: the heap never gives memory back,
/// and a small machine must not lose a third of itself to this test.
fn heap_large_blocks() -> TestResult {
    let (_, size_before) = heap::usage();
    let cap = (crate::mem::frames::free_count() * PAGE_SIZE / 8) as usize;
    let largest = [8usize, 4, 1].into_iter().find(|&mib| mib << 20 <= cap).unwrap_or(1);
    for mib in [8usize, 4, 1].into_iter().filter(|&mib| mib <= largest) {
        let len = mib << 20;
        let mut v: Vec<u64> = Vec::with_capacity(len / 8);
        for i in 0..len / 8 {
            v.push(i as u64 ^ 0x5a5a);
        }
        ensure!(v.iter().enumerate().all(|(i, &x)| x == i as u64 ^ 0x5a5a), "{mib} MiB block corrupted");
    }
    let (_, size_after) = heap::usage();
    ensure!(
        size_after > size_before || size_before >= largest << 20,
        "the heap did not grow for a {largest} MiB block"
    );
    let b = Box::new([7u8; 4096]);
    ensure!(b.iter().all(|&x| x == 7), "a page-sized box is wrong");
    Ok(())
}

/// A virtual page nothing else uses: the bottom of the MMIO region's
/// unused top (tests only).
const TEST_PAGE: u64 = crate::mem::MMIO_START + crate::mem::MMIO_MAX - PAGE_SIZE;

fn map_unmap() -> TestResult {
    let frame = frames::alloc().ok_or("out of frames")?;
    paging::map(TEST_PAGE, frame, paging::kernel_flags(true, false)).map_err(|e| alloc::format!("map: {e}"))?;
    ensure!(paging::translate(TEST_PAGE + 0x123) == Some(frame + 0x123), "translate disagrees with the mapping");
    ensure!(
        paging::map(TEST_PAGE, frame, paging::kernel_flags(true, false)).is_err(),
        "mapping a mapped page was accepted"
    );
    // SAFETY: TEST_PAGE maps our frame.
    unsafe { (TEST_PAGE as *mut u64).write_volatile(0xfe77_17e0) };
    // SAFETY: the same frame through the direct map.
    let seen = unsafe { (phys_to_virt(frame) as *const u64).read_volatile() };
    ensure!(seen == 0xfe77_17e0, "the direct map does not see the write ({seen:#x})");
    let back = paging::unmap(TEST_PAGE).map_err(|e| alloc::format!("unmap: {e}"))?;
    ensure!(back == frame, "unmap returned {back:#x}, not {frame:#x}");
    frames::free(frame);
    ensure!(paging::translate(TEST_PAGE).is_none(), "still mapped after unmap");
    // SAFETY: reading a test page: no side effects, and it should fault.
    match unsafe { probe_read(TEST_PAGE) } {
        Ok(()) => Err("reading an unmapped page did not fault".into()),
        Err(f)
            if f.vector == vector::PAGE_FAULT
                && f.address == TEST_PAGE
                && f.error_code & Pf::PROTECTION.bits() == 0 =>
        {
            Ok(())
        }
        Err(f) => Err(alloc::format!("wrong fault: {f:?}")),
    }
}

/// Expects a write fault on a present, read-only page at `addr`.
fn expect_write_protected(addr: u64, what: &str) -> TestResult {
    // SAFETY: if the page were writable the byte would be rewritten with
    // its own value, which changes nothing.
    let value = unsafe { (addr as *const u8).read_volatile() };
    // SAFETY: see above.
    match unsafe { probe_write(addr, value) } {
        Ok(()) => Err(alloc::format!("writing {what} at {addr:#x} did not fault")),
        Err(f) => {
            let want = Pf::PROTECTION | Pf::WRITE;
            ensure!(f.vector == vector::PAGE_FAULT, "expected a page fault, got vector {}", f.vector);
            ensure!(f.address == addr, "fault address {:#x}, expected {addr:#x}", f.address);
            ensure!(
                Pf::from_bits_retain(f.error_code).contains(want) && f.error_code & Pf::USER.bits() == 0,
                "error code {:#x}, expected a kernel write protection fault",
                f.error_code
            );
            Ok(())
        }
    }
}

static RODATA_PROBE: [u8; 16] = *b"ferrite rodata!\0";

fn rodata_write_faults() -> TestResult {
    let addr = core::hint::black_box(RODATA_PROBE.as_ptr()) as u64;
    let (start, end) = paging::rodata_range();
    ensure!((start..end).contains(&addr), "the probe is not in .rodata");
    expect_write_protected(addr, "rodata")
}

fn text_write_faults() -> TestResult {
    let addr = text_write_faults as fn() -> TestResult as usize as u64 + 1;
    let (start, end) = paging::text_range();
    ensure!((start..end).contains(&addr), "the probe is not in .text");
    expect_write_protected(addr, "kernel text")
}

fn trampoline_page_reserved() -> TestResult {
    let page = frames::trampoline_page().ok_or("no AP trampoline page was reserved")?;
    ensure!(page % PAGE_SIZE == 0 && page < 1 << 20, "trampoline page {page:#x} is not a page below 1 MiB");
    ensure!(!frames::is_free(page), "the trampoline page is free for allocation");
    Ok(())
}

fn nx_exec_faults() -> TestResult {
    if !crate::arch::cpu::features().nx {
        return Err("the CPU has no NX bit".into());
    }
    // The direct map is NX: put a `ret` there and try to run it.
    let frame = frames::alloc().ok_or("out of frames")?;
    let target = phys_to_virt(frame);
    // SAFETY: our frame, direct-mapped.
    unsafe { (target as *mut u8).write_volatile(0xc3) };
    // SAFETY: if it runs, the code is a lone `ret`.
    let result = unsafe { probe_exec(target) };
    frames::free(frame);
    match result {
        Ok(()) => Err("executing from an NX page did not fault".into()),
        Err(f) => {
            ensure!(f.vector == vector::PAGE_FAULT && f.address == target, "wrong fault: {f:?}");
            let bits = Pf::from_bits_retain(f.error_code);
            ensure!(
                bits.contains(Pf::PROTECTION | Pf::INSTRUCTION_FETCH),
                "error code {:#x} is not a protection fault on fetch",
                f.error_code
            );
            Ok(())
        }
    }
}

fn null_page_unmapped() -> TestResult {
    // SAFETY: page 0 holds nothing; the read should fault.
    match unsafe { probe_read(core::hint::black_box(0)) } {
        Ok(()) => Err("reading address 0 did not fault".into()),
        Err(f) => {
            ensure!(f.vector == vector::PAGE_FAULT && f.address == 0, "wrong fault: {f:?}");
            Ok(())
        }
    }
}

fn stack_guard_pages() -> TestResult {
    let guard = paging::boot_stack_guard();
    // SAFETY: the guard page is unmapped; the read should fault.
    match unsafe { probe_read(guard) } {
        Ok(()) => return Err("the boot stack's guard page is mapped".into()),
        Err(f) => ensure!(f.vector == vector::PAGE_FAULT && f.address == guard, "wrong fault: {f:?}"),
    }
    // The first stack in a fresh part of the region may allocate page
    // tables that stay; warm up so the count below sees only the stack.
    drop(KernelStack::new(16 * 1024).map_err(|e| alloc::format!("stack: {e}"))?);
    crate::mem::stack::trim();
    let frees = frames::free_count();
    let stack = KernelStack::new(16 * 1024).map_err(|e| alloc::format!("stack: {e}"))?;
    let below = stack.bottom() - 8;
    // SAFETY: the top of our own stack is mapped and ours.
    unsafe { ((stack.top() - 8) as *mut u64).write_volatile(1) };
    // SAFETY: below the stack is its guard; the read should fault.
    let r = unsafe { probe_read(below) };
    ensure!(r.is_err(), "the kernel stack's guard page is mapped");
    ensure!(
        crate::mem::stack::guard_page_owner(below).is_some(),
        "guard_page_owner does not know the kernel stack's guard"
    );
    drop(stack);
    // A dropped stack stays mapped in the cache until trimmed.
    crate::mem::stack::trim();
    ensure!(frames::free_count() == frees, "a dropped kernel stack leaked frames");
    Ok(())
}

/// A dropped stack is reused as it is (no frames, no shootdown); a full
/// cache is emptied with one shootdown and gives every frame back.
fn stack_cache() -> TestResult {
    use crate::mem::stack;
    const SIZE: usize = 12 * 1024;
    let new = || KernelStack::new(SIZE).map_err(|e| alloc::format!("stack: {e}"));
    // Warm up the page tables of the slots used below, then start empty.
    drop((0..80).map(|_| new()).collect::<Result<Vec<_>, _>>()?);
    stack::trim();
    // Allocated before counting: growing the heap takes frames too.
    let mut many = Vec::with_capacity(70);
    let frees = frames::free_count();
    let shootdowns = crate::arch::tlb::count();

    let first = new()?;
    let top = first.top();
    drop(first);
    let again = new()?;
    ensure!(again.top() == top, "a cached stack was not reused ({:#x}, then {:#x})", top, again.top());
    ensure!(frames::free_count() == frees - 3, "a reused stack took fresh frames");
    // SAFETY: the top of our own stack is mapped and ours.
    unsafe { ((again.top() - 8) as *mut u64).write_volatile(1) };
    drop(again);

    for _ in 0..70 {
        many.push(new()?);
    }
    drop(many);
    let used = crate::arch::tlb::count() - shootdowns;
    let expected = u64::from(crate::smp::online_count() > 1);
    ensure!(used == expected, "dropping 70 stacks took {used} shootdowns, expected {expected} (one cache flush)");
    stack::trim();
    ensure!(frames::free_count() == frees, "free frames: {frees} before, {} after", frames::free_count());
    Ok(())
}

/// Whether `page` is RAM the direct map covers: a usable or firmware-RAM
/// area, the boot information or a module.
fn is_ram(boot: &crate::boot_info::BootInfo, page: u64) -> bool {
    use crate::boot_info::AreaKind;
    boot.memory_areas().any(|(r, kind)| kind != AreaKind::Other && r.contains(page))
        || boot.range().contains(page)
        || boot.modules().any(|(_, r)| r.contains(page))
}

fn only_ram_direct_mapped() -> TestResult {
    use crate::boot_info::AreaKind;
    let boot = crate::boot_info::get();
    // Every page of the reserved areas and holes below the end of RAM (at
    // most a few thousand of them in QEMU's maps), and the first and last
    // page of those above.
    let ram_end = boot.memory_areas().filter(|(_, k)| *k != AreaKind::Other).map(|(r, _)| r.end).max().unwrap_or(0);
    let mut checked = 0u64;
    for (range, kind) in boot.memory_areas().filter(|(_, k)| *k == AreaKind::Other) {
        let first = crate::mem::align_down(range.start, PAGE_SIZE);
        let last = crate::mem::align_down(range.end - 1, PAGE_SIZE);
        let pages: Box<dyn Iterator<Item = u64>> = if range.end <= ram_end {
            Box::new((first..=last).step_by(PAGE_SIZE as usize))
        } else {
            Box::new([first, last].into_iter())
        };
        for page in pages.filter(|&p| !is_ram(boot, p)) {
            ensure!(
                paging::translate(phys_to_virt(page)).is_none(),
                "{kind:?} page {page:#x} (area {:#x}..{:#x}) is in the write-back direct map",
                range.start,
                range.end
            );
            checked += 1;
        }
    }
    // The first 2 MiB, with the legacy holes, in 4 KiB pages only.
    for page in (0..2u64 << 20).step_by(PAGE_SIZE as usize) {
        if let Some(size) = paging::page_size(phys_to_virt(page)) {
            ensure!(size == PAGE_SIZE, "physical page {page:#x} is direct-mapped by a {size:#x}-byte page");
        }
    }
    log::debug!("mem: {checked} non-RAM pages are outside the direct map");
    Ok(())
}

fn read_physical() -> TestResult {
    // RAM: the same bytes as the direct map.
    let frame = frames::alloc().ok_or("out of frames")?;
    let base = phys_to_virt(frame);
    // SAFETY: our frame, direct-mapped.
    unsafe { core::ptr::write_bytes(base as *mut u8, 0x5a, PAGE_SIZE as usize) };
    let mut buf = [0u8; 64];
    let res = paging::read_physical(frame + 8, &mut buf);
    frames::free(frame);
    ensure!(res.is_ok() && buf.iter().all(|&b| b == 0x5a), "read_physical of RAM: {res:?} {:?}", &buf[..8]);
    // Reserved memory outside the direct map (the BIOS area below 1 MiB
    // is reserved on PC memory maps) reads through the window, the same
    // twice (the window is remapped for each page), also across the end
    // of a page.
    let boot = crate::boot_info::get();
    if let Some(page) = (0xe0000..0x100000u64).step_by(PAGE_SIZE as usize).find(|&p| !is_ram(boot, p)) {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        ensure!(paging::read_physical(page + PAGE_SIZE - 16, &mut a).is_ok(), "reading reserved {page:#x} failed");
        ensure!(paging::read_physical(page + PAGE_SIZE - 16, &mut b).is_ok(), "second read of {page:#x} failed");
        ensure!(a == b, "two reads of reserved memory at {page:#x} differ");
    }
    ensure!(paging::read_physical(u64::MAX - 8, &mut buf).is_err(), "a read past the address space succeeded");
    ensure!(paging::read_physical(1 << 60, &mut buf).is_err(), "a read past the physical address width succeeded");
    Ok(())
}
