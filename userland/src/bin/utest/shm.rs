//! Shared memory (`mem_create`, `mem_map`) and device memory.
//!
//! `shm` runs leak-checked (twice, by the kernel's runner): an object's
//! frames must go back once the last handle and the last mapping are gone,
//! whichever goes last, in this process or a child.
//! `dev_memory` starts with the root resources: the framebuffer maps as
//! device memory; RAM, the kernel's own registers and unaligned ranges do
//! not.

use alloc::format;
use alloc::string::String;

use ferrite_abi::{map, rights, root, Error, Grant, SystemInfo, MAP_MAX};
use ferrite_user::sys;

use crate::harness::{Ctx, Outcome, Watchdog};

const PAGE: usize = 4096;
/// Pages of the object `shm` shares.
const PAGES: usize = 3;
/// What the parent writes, and what the child answers with.
const PARENT_WORD: u64 = 0x5eed_0f5a_4ed0_0000;
const CHILD_WORD: u64 = 0xc41d_0000_0000_0001;

fn read(at: *mut u8, offset: usize) -> u64 {
    // SAFETY: callers read inside a mapping they made of at least
    // `offset + 8` bytes, aligned; the other side writes whole words.
    unsafe { at.add(offset).cast::<u64>().read_volatile() }
}

fn write(at: *mut u8, offset: usize, value: u64) {
    // SAFETY: as in read, on a writable mapping.
    unsafe { at.add(offset).cast::<u64>().write_volatile(value) }
}

fn unmap(at: *mut u8, len: usize) -> Result<(), String> {
    // SAFETY: a mapping from mem_map, which nothing else uses.
    unsafe { sys::unmap(at, len) }.ctx("unmap")
}

/// `shm`: an object seen through two mappings here and one in a child;
/// the rights `mem_map` checks; the object outlives its handle while
/// mapped.
pub fn shm(_args: &str) -> Outcome {
    let _watchdog = Watchdog::start()?;
    check_eq!(sys::mem_create(0), Err(Error::BadLength), "mem_create(0)");
    check_eq!(sys::mem_create(MAP_MAX + 1), Err(Error::BadLength), "mem_create past MAP_MAX");
    let object = sys::mem_create((PAGES * PAGE - 100) as u64).ctx("mem_create")?;
    check_eq!(sys::handle_rights(object), Ok(rights::MEMORY), "a memory object's rights");
    let a = sys::mem_map(object, map::WRITE).ctx("mem_map writable")?;
    let b = sys::mem_map(object, 0).ctx("mem_map read-only")?;
    check!(a != b, "two mappings at one address");
    check_eq!(read(a, (PAGES - 1) * PAGE), 0, "fresh memory is zero");
    write(a, PAGE + 8, PARENT_WORD);
    check_eq!(read(b, PAGE + 8), PARENT_WORD, "the word through the second mapping");
    // Rights and flags.
    let read_only = sys::handle_derive(object, rights::MAP | rights::TRANSFER).ctx("derive read-only")?;
    check_eq!(sys::mem_map(read_only, map::WRITE), Err(Error::NoRights), "a writable mapping without WRITE");
    let no_map = sys::handle_derive(object, rights::TRANSFER).ctx("derive without MAP")?;
    check_eq!(sys::mem_map(no_map, 0), Err(Error::NoRights), "mem_map without MAP");
    check_eq!(sys::mem_map(object, map::WRITE_COMBINING), Err(Error::BadArgument), "write-combining RAM");
    check_eq!(sys::mem_map(object, 1 << 5), Err(Error::BadArgument), "unknown flags");
    let endpoint = sys::endpoint_create().ctx("endpoint_create")?;
    check_eq!(sys::mem_map(endpoint, 0), Err(Error::BadHandle), "mem_map of an endpoint");
    // A child maps it (through a read-write grant) and answers in it.
    let grant = [Grant { handle: object, rights: rights::MAP | rights::WRITE }];
    let child = sys::spawn_with("utest child_shm", &grant, None).ctx("spawn child_shm")?;
    check_eq!(sys::wait(child), Ok(0), "child_shm");
    check_eq!(read(b, 2 * PAGE), CHILD_WORD, "the child's word");
    // The handle goes first: the mappings still work.
    for h in [object, read_only, no_map, endpoint] {
        sys::handle_close(h).ctx("close")?;
    }
    check_eq!(read(a, PAGE + 8), PARENT_WORD, "the word after the handles are closed");
    unmap(a, PAGES * PAGE)?;
    // Part of the last mapping, then the rest: the frames go with the end.
    unmap(b, PAGE)?;
    check_eq!(read(b.wrapping_add(2 * PAGE), 0), CHILD_WORD, "the rest of the last mapping");
    unmap(b.wrapping_add(PAGE), 2 * PAGE)?;
    Ok(String::from("one object through three mappings in two processes; rights checked"))
}

/// Maps the object (handle 0) writable, checks the parent's word, writes
/// its own.
pub fn child_shm(_args: &str) -> Outcome {
    let at = sys::mem_map(0, map::WRITE).ctx("mem_map")?;
    check_eq!(read(at, PAGE + 8), PARENT_WORD, "the parent's word");
    write(at, 2 * PAGE, CHILD_WORD);
    Ok(String::new())
}

/// `dev_memory`: the framebuffer (if the loader set one up) maps
/// write-combining (and only so) and takes writes; RAM, the I/O APIC's
/// registers, all of physical memory and unaligned ranges are refused.
pub fn dev_memory(_args: &str) -> Outcome {
    let (info, _): (SystemInfo, u64) = sys::system_info(root::SYSTEM, &mut []).ctx("system_info")?;
    let refuse = |base: u64, len: u64, what: &str| -> Result<(), String> {
        let r = sys::resource_narrow(root::DEVICE_MEMORY, base, len).ctx("resource_narrow")?;
        check_eq!(sys::mem_map(r, map::WRITE).map(|_| ()), Err(Error::BadArgument), "mapping {what}");
        sys::handle_close(r).ctx("close")
    };
    refuse(0x10_0000, 0x1000, "RAM at 1 MiB")?;
    refuse(0xfec0_0000, 0x1000, "the I/O APIC the kernel drives")?;
    refuse(0x10_0800, 0x1000, "an unaligned range")?;
    check_eq!(sys::mem_map(root::DEVICE_MEMORY, 0).map(|_| ()), Err(Error::BadArgument), "all physical memory");
    let no_use = sys::handle_derive(root::DEVICE_MEMORY, rights::TRANSFER).ctx("derive without USE")?;
    check_eq!(sys::mem_map(no_use, 0).map(|_| ()), Err(Error::NoRights), "mem_map without USE");
    if info.framebuffer_len == 0 {
        return Ok(String::from("no framebuffer; RAM and the kernel's registers refused"));
    }
    let len = info.framebuffer_len.next_multiple_of(PAGE as u64);
    let fb = sys::resource_narrow(root::DEVICE_MEMORY, info.framebuffer, len).ctx("narrow to the framebuffer")?;
    check_eq!(
        sys::mem_map(fb, map::WRITE).map(|_| ()),
        Err(Error::BadArgument),
        "the framebuffer uncached (the kernel's mapping is write-combining)"
    );
    let at = sys::mem_map(fb, map::WRITE | map::WRITE_COMBINING).ctx("map the framebuffer")?;
    // The bottom row: a grey line the console has not drawn yet.
    let row = (info.framebuffer_height - 1) * info.framebuffer_pitch;
    let bytes = (info.framebuffer_width * info.framebuffer_bpp / 8) as usize;
    for x in (0..bytes.saturating_sub(8)).step_by(8) {
        write(at, row as usize + x, 0x0080_8080_0080_8080);
    }
    check_eq!(read(at, row as usize), 0x0080_8080_0080_8080, "a pixel written to the framebuffer");
    unmap(at, len as usize)?;
    sys::handle_close(fb).ctx("close")?;
    Ok(format!(
        "the {}x{} framebuffer mapped write-combining; RAM and the kernel's registers refused",
        info.framebuffer_width, info.framebuffer_height
    ))
}
