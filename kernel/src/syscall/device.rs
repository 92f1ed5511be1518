//! Device rights, memory objects and the machine: `resource_narrow`,
//! `resource_info`, `ioport_enable`, `irq_bind`, `irq_ack`, `power`,
//! `process_list`, `process_open`, `system_info`, `mem_create` and
//! `mem_map` (device.rs and mem::shared have the objects). Every
//! handle is looked up with the kind and the right the call needs.
use super::{current_process, uaccess};
use crate::device::{self, IrqLine};
use crate::proc::handle::{Handle, Object};
use crate::sched::InterruptsOff;
use alloc::vec::Vec;
use ferrite_abi::{
    resource, rights, CpuInfo, Error, ProcessInfo, SystemInfo, POWER_OFF, POWER_RESET, PROCESS_LIST_MAX,
};

/// `resource_narrow(handle, base, len) -> handle`.
pub fn resource_narrow(handle: u64, base: u64, len: u64) -> Result<u64, Error> {
    let process = current_process();
    let narrowed = {
        let table = process.handles.lock();
        let source = table.get(handle)?;
        let Object::Resource(r) = source.object() else { return Err(Error::BadHandle) };
        Handle::new(Object::Resource(r.narrow(base, len)?), source.rights(), None)
    };
    process.add_handle(narrowed)
}

/// `resource_info(handle, ptr) -> 0`.
pub fn resource_info(handle: u64, ptr: u64) -> Result<u64, Error> {
    let r = current_process().handles.lock().lookup(handle, 0, |h| match h.object() {
        Object::Resource(r) => Some(*r),
        _ => None,
    })?;
    uaccess::copy_words_out(ptr, &[r.kind, r.base, r.len])?;
    Ok(0)
}

/// `ioport_enable(handle) -> 0`: the calling thread's CPU gets the ports
/// at once; the process's other threads at their next switch.
pub fn ioport_enable(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    let ports = process.handles.lock().resource(handle, resource::PORTS, rights::USE)?;
    if let Some(what) = crate::arch::power::kernel_port(ports.base as u32, ports.len as u32) {
        log::info!(
            "ports: pid {} refused ports {:#x}-{:#x}: {what} is the kernel's",
            process.id,
            ports.base,
            ports.base + ports.len - 1
        );
        return Err(Error::Busy);
    }
    process.io_ports.enable(&ports)?;
    let _irq = InterruptsOff::new();
    process.io_ports.switch_in(process.id);
    Ok(0)
}

/// `irq_bind(handle, notification, bits) -> interrupt handle`.
pub fn irq_bind(handle: u64, notification: u64, bits: u64) -> Result<u64, Error> {
    let process = current_process();
    let (line, target) = {
        let table = process.handles.lock();
        (table.resource(handle, resource::IRQ, rights::USE)?, table.notification(notification, rights::SIGNAL)?)
    };
    let (charge, room) = process.account.take_object::<IrqLine>()?;
    let bound = device::bind(&line, target, bits, process.id, charge)?;
    drop(room);
    process.add_handle(Handle::new(Object::Irq(bound), rights::IRQ, None))
}

/// `irq_ack(interrupt handle) -> 0`.
pub fn irq_ack(handle: u64) -> Result<u64, Error> {
    current_process().handles.lock().irq(handle, rights::USE)?.ack();
    Ok(0)
}

/// `power(system handle, action)`: off or reset. Returns only to refuse.
pub fn power(handle: u64, action: u64) -> Result<u64, Error> {
    let process = current_process();
    process.handles.lock().resource(handle, resource::SYSTEM, rights::USE)?;
    let pid = process.id;
    match action {
        POWER_OFF => {
            log::info!("power: process {pid} asks to power off");
            crate::arch::power::power_off(true)
        }
        POWER_RESET => {
            log::info!("power: process {pid} asks to reset");
            crate::arch::power::reset(None)
        }
        _ => Err(Error::BadArgument),
    }
}

/// The machine's resource, with USE: what the calls that tell about every
/// process and CPU need.
fn system(handle: u64) -> Result<(), Error> {
    current_process().handles.lock().resource(handle, resource::SYSTEM, rights::USE).map(|_| ())
}

// The records are written word by word, in field order: every field once.
const _: () = assert!(core::mem::size_of::<SystemInfo>() == 13 * 8);
const _: () = assert!(core::mem::size_of::<CpuInfo>() == 7 * 8);
const _: () = assert!(core::mem::size_of::<ProcessInfo>() == 6 * 8 + ferrite_abi::PROCESS_NAME_LEN);

/// Appends `words` to `out`, little-endian.
fn put_words(out: &mut Vec<u8>, words: &[u64]) {
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// `process_list(system, ptr, max) -> count`: every record is made before
/// one copy out, so a bad range writes nothing of it.
pub fn process_list(handle: u64, ptr: u64, max: u64) -> Result<u64, Error> {
    system(handle)?;
    if max > PROCESS_LIST_MAX {
        return Err(Error::BadLength);
    }
    let (processes, total) = crate::proc::list(max as usize);
    let mut out = Vec::new();
    out.try_reserve_exact(processes.len() * core::mem::size_of::<ProcessInfo>()).map_err(|_| Error::NoMemory)?;
    for p in &processes {
        let i = p.info();
        put_words(&mut out, &[i.pid, i.parent, i.threads, i.memory, i.cpu_ns, i.ended]);
        out.extend_from_slice(&i.name);
    }
    // Dropped outside any lock: one may be the last reference.
    drop(processes);
    uaccess::copy_out(ptr, &out)?;
    Ok(total as u64)
}

/// `process_open(system, pid) -> process handle`.
pub fn process_open(handle: u64, pid: u64) -> Result<u64, Error> {
    system(handle)?;
    // Not one still being loaded (see `Process::started`).
    let process = crate::proc::find(pid).filter(|p| p.started()).ok_or(Error::NotFound)?;
    current_process().add_handle(Handle::new(Object::Process(process), rights::PROCESS, None))
}

/// `system_info(system, ptr, max) -> cpus`.
pub fn system_info(handle: u64, ptr: u64, max: u64) -> Result<u64, Error> {
    system(handle)?;
    let cpus = crate::smp::online_count();
    let shown = max.min(u64::from(cpus));
    let (heap_used, _) = crate::mem::heap::usage();
    let info = SystemInfo {
        uptime_ns: crate::time::uptime_ns(),
        memory_total: crate::mem::frames::usable_count() * crate::mem::PAGE_SIZE,
        memory_free: crate::mem::frames::free_count() * crate::mem::PAGE_SIZE,
        heap_used: heap_used as u64,
        processes: crate::proc::live_processes(),
        threads: crate::sched::thread::live_threads(),
        cpus: u64::from(cpus),
        ..framebuffer()
    };
    let mut out = Vec::new();
    let bytes = core::mem::size_of::<SystemInfo>() + shown as usize * core::mem::size_of::<CpuInfo>();
    out.try_reserve_exact(bytes).map_err(|_| Error::NoMemory)?;
    put_words(
        &mut out,
        &[
            info.uptime_ns,
            info.memory_total,
            info.memory_free,
            info.heap_used,
            info.processes,
            info.threads,
            info.cpus,
            info.framebuffer,
            info.framebuffer_len,
            info.framebuffer_width,
            info.framebuffer_height,
            info.framebuffer_pitch,
            info.framebuffer_bpp,
        ],
    );
    for rank in 0..shown as u32 {
        let Some(cpu) = crate::smp::nth_online(rank) else { break };
        let c = crate::sched::cpu_info(cpu);
        put_words(&mut out, &[u64::from(rank), c.apic_id, c.switches, c.idle_ns, c.timer_ticks, c.ipis, c.queued]);
    }
    uaccess::copy_out(ptr, &out)?;
    Ok(u64::from(cpus))
}

/// The framebuffer's fields of [`SystemInfo`].
fn framebuffer() -> SystemInfo {
    let Some(fb) = crate::boot_info::get().framebuffer() else { return SystemInfo::default() };
    SystemInfo {
        framebuffer: fb.phys,
        framebuffer_len: u64::from(fb.pitch) * u64::from(fb.height),
        framebuffer_width: u64::from(fb.width),
        framebuffer_height: u64::from(fb.height),
        framebuffer_pitch: u64::from(fb.pitch),
        framebuffer_bpp: u64::from(fb.bpp),
        ..SystemInfo::default()
    }
}

/// `mem_create(len) -> handle`.
pub fn mem_create(len: u64) -> Result<u64, Error> {
    if len == 0 || len > ferrite_abi::MAP_MAX {
        return Err(Error::BadLength);
    }
    let process = current_process();
    let pages = crate::mem::align_up(len, crate::mem::PAGE_SIZE) / crate::mem::PAGE_SIZE;
    let object = crate::mem::shared::MemObject::new(pages, &process.account)?;
    process.add_handle(Handle::new(Object::Memory(object), rights::MEMORY, None))
}

/// `mem_map(handle, flags) -> addr`.
pub fn mem_map(handle: u64, flags: u64) -> Result<u64, Error> {
    use crate::mem::aspace::{Access, Backing};
    use crate::mem::paging::{cache_flags, Cache};
    use crate::mem::PAGE_SIZE;
    use ferrite_abi::map;
    if flags & !(map::WRITE | map::WRITE_COMBINING) != 0 {
        return Err(Error::BadArgument);
    }
    let write = flags & map::WRITE != 0;
    let process = current_process();
    let object = process.handles.lock().lookup(handle, 0, |h| Some((h.object().clone(), h.rights())))?;
    let access = Access { write, execute: false };
    let mapped = match object {
        (Object::Memory(m), have) => {
            let need = rights::MAP | if write { rights::WRITE } else { 0 };
            if have & need != need {
                return Err(Error::NoRights);
            }
            if flags & map::WRITE_COMBINING != 0 {
                return Err(Error::BadArgument);
            }
            let frames = m.clone();
            process.aspace.map_foreign(
                m.pages(),
                |i| frames.frame(i),
                access,
                x86_64::structures::paging::PageTableFlags::empty(),
                Backing::Shared(m),
            )
        }
        (Object::Resource(r), have) if r.kind == resource::DEVICE_MEMORY => {
            if have & rights::USE == 0 {
                return Err(Error::NoRights);
            }
            let end = r.base.checked_add(r.len).ok_or(Error::BadArgument)?;
            if !r.base.is_multiple_of(PAGE_SIZE) || !r.len.is_multiple_of(PAGE_SIZE) || r.len > ferrite_abi::MAP_MAX {
                return Err(Error::BadArgument);
            }
            if !device::mappable(r.base, end) {
                return Err(Error::BadArgument);
            }
            if flags & map::WRITE_COMBINING == 0 && device::write_combining_only(r.base, end) {
                return Err(Error::BadArgument);
            }
            let cache = if flags & map::WRITE_COMBINING != 0 { Cache::WriteCombining } else { Cache::Uncached };
            let base = r.base;
            process.aspace.map_foreign(
                r.len / PAGE_SIZE,
                |i| base + i * PAGE_SIZE,
                access,
                cache_flags(cache),
                Backing::Device,
            )
        }
        _ => return Err(Error::BadHandle),
    };
    mapped.map_err(|_| Error::NoMemory)
}
