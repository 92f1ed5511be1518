//! Device rights: `resource_narrow`, `resource_info`, `ioport_enable`,
//! `irq_bind`, `irq_ack` and `power` (device.rs has the objects). Every
//! handle is looked up with the kind and the right the call needs.
use super::{current_process, uaccess};
use crate::device::{self, IrqLine};
use crate::proc::handle::{Handle, Object};
use crate::sched::InterruptsOff;
use ferrite_abi::{resource, rights, Error, POWER_OFF, POWER_RESET};

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
