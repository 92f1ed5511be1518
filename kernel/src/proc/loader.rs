//! Loading programs: a boot module (a static ELF executable) into a new
//! process.
//!
//! ferrite_kcore::elf decides what to map and refuses malformed files (one
//! log line says why, and the caller gets `BadProgram`); this module only
//! follows the plan: fresh zeroed pages for each segment with its
//! permissions, the file's bytes copied in, then the stack with the
//! argument string at its top, and the first thread's registers as the ABI
//! describes (ferrite_abi, "Program entry").
use super::handle::Handle;
use super::Process;
use crate::arch::gdt::{USER_CODE, USER_DATA};
use crate::arch::syscall::SYSCALL_FRAME;
use crate::arch::trap::TrapFrame;
use crate::mem::aspace::{Access, STACK_TOP};
use crate::mem::{align_down, PAGE_SIZE};
use crate::quota::Account;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ferrite_abi::{Error, STACK_SIZE};
use ferrite_kcore::elf;
use x86_64::registers::rflags::RFlags;

/// RFLAGS a thread starts user mode with: interrupts on (and bit 1, which
/// is always set).
pub fn initial_rflags() -> u64 {
    (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(1 << 1)).bits()
}

/// A frame that enters user mode at `rip` with stack `rsp` and the three
/// argument registers; every other register zero.
pub fn user_entry_frame(rip: u64, rsp: u64, rdi: u64, rsi: u64, rdx: u64) -> TrapFrame {
    TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi,
        rsi,
        rdx,
        rcx: 0,
        rbx: 0,
        rax: 0,
        // It leaves like a system call returns (arch::user::enter).
        vector: SYSCALL_FRAME,
        error_code: 0,
        rip,
        cs: u64::from(USER_CODE.0),
        rflags: initial_rflags(),
        rsp,
        ss: u64::from(USER_DATA.0),
    }
}

/// Makes the process for module `name` (not yet started) and the frame its
/// first thread starts from.
pub(super) fn load(
    name: &str,
    args: &str,
    handles: Vec<Handle>,
    account: Arc<Account>,
    parent: Option<(u64, &Arc<Account>)>,
) -> Result<(Arc<Process>, TrapFrame), Error> {
    let image = crate::boot_info::get().module(name).ok_or(Error::NotFound)?;
    let plan = elf::plan(image).map_err(|e| {
        log::warn!("user: module '{name}' refused: {e}");
        Error::BadProgram
    })?;
    let process = Process::new(name, account, parent)?;
    let aspace = &process.aspace;
    for segment in &plan.segments {
        let (first, end) = segment.pages();
        let access = Access { write: segment.writable, execute: segment.executable };
        aspace.map_zeroed(first, (end - first) / PAGE_SIZE, access).map_err(|_| Error::NoMemory)?;
        // The plan guarantees the bytes lie inside the image.
        let start = segment.file_offset as usize;
        let bytes = &image[start..start + segment.file_size as usize];
        aspace.write(segment.vaddr, bytes).map_err(|_| Error::NoMemory)?;
    }
    let stack_bottom = STACK_TOP - STACK_SIZE;
    let stack = Access { write: true, execute: false };
    aspace.map_zeroed(stack_bottom, STACK_SIZE / PAGE_SIZE, stack).map_err(|_| Error::NoMemory)?;
    // The argument string sits at the top of the stack; the stack pointer
    // starts 16-aligned below it.
    let args_at = STACK_TOP - args.len() as u64;
    aspace.write(args_at, args.as_bytes()).map_err(|_| Error::NoMemory)?;
    let rsp = align_down(args_at, 16);
    let given = handles.len() as u64;
    for handle in handles {
        process.add_handle(handle)?;
    }
    log::debug!(
        "user: loaded '{name}' as pid {}, entry {:#x}, {} segments",
        process.id,
        plan.entry,
        plan.segments.len()
    );
    let frame = user_entry_frame(plan.entry, rsp, args_at, args.len() as u64, given);
    Ok((process, frame))
}

/// Starts init: the first boot module, with no arguments and the root
/// resources (device.rs, ferrite_abi::root).
/// Without one, or if it cannot start, the kernel says so and idles on.
pub fn start_init() {
    let Some(name) = crate::boot_info::get().first_module_name() else {
        log::warn!("user: no boot modules, so no init; idling");
        return;
    };
    match super::spawn(name, "", crate::device::root_handles()) {
        Ok(process) => log::info!("user: started init '{name}' as pid {}", process.id),
        Err(e) => log::error!("user: cannot start init '{name}': {e:?}"),
    }
}
