//! Device rights and the machine: `resource_narrow`, `resource_info`,
//! `ioport_enable`, `irq_bind`, `irq_ack`, `power`, `process_list`,
//! `process_open` and `system_info` (device.rs has the objects). Every
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
    let process = crate::proc::find(pid).ok_or(Error::NotFound)?;
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
    };
    let mut out = Vec::new();
    let bytes = core::mem::size_of::<SystemInfo>() + shown as usize * core::mem::size_of::<CpuInfo>();
    out.try_reserve_exact(bytes).map_err(|_| Error::NoMemory)?;
    put_words(
        &mut out,
        &[info.uptime_ns, info.memory_total, info.memory_free, info.heap_used, info.processes, info.threads, info.cpus],
    );
    for rank in 0..shown as u32 {
        let Some(cpu) = crate::smp::nth_online(rank) else { break };
        let c = crate::sched::cpu_info(cpu);
        put_words(&mut out, &[u64::from(rank), c.apic_id, c.switches, c.idle_ns, c.timer_ticks, c.ipis, c.queued]);
    }
    uaccess::copy_out(ptr, &out)?;
    Ok(u64::from(cpus))
}
