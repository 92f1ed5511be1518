//! Threads, processes and memory: `thread_spawn`, `thread_join`,
//! `set_affinity`, `map`, `unmap`, `spawn` and `wait`.
use super::{current_process, uaccess};
use crate::proc::handle::{Handle, Object};
use crate::proc::{self, user_entry_frame};
use crate::quota::Resource;
use crate::sched::{self, thread::ANY_CPU};
use alloc::sync::Arc;
use alloc::vec::Vec;
use ferrite_abi::{map, rights, Error, Limits, MAP_MAX, SPAWN_CMD_MAX, SPAWN_HANDLES_MAX, USER_END, USER_START};

/// `thread_spawn(entry, stack_top, arg) -> handle`.
pub fn thread_spawn(entry: u64, stack_top: u64, arg: u64) -> Result<u64, Error> {
    let user = USER_START..USER_END;
    if !user.contains(&entry) || !user.contains(&stack_top) {
        return Err(Error::BadAddress);
    }
    let process = current_process();
    // Like POSIX threads, a new thread starts with its creator's affinity.
    let affinity = sched::with_current(|t| t.affinity());
    let thread = process.prepare_thread(user_entry_frame(entry, stack_top, arg, 0, 0), affinity)?;
    // The handle first: a thread that no one could join must not start.
    let handle = process.add_handle(Handle::new(Object::Thread(thread.clone()), rights::THREAD, None))?;
    if let Err(e) = process.launch_thread(&thread) {
        let removed = process.handles.lock().remove(handle);
        drop(removed);
        return Err(e);
    }
    Ok(handle)
}

/// Removes `handle` from `process`'s table if it still names `object`
/// (another thread may have closed it, and reused the number, meanwhile).
fn close_if_same(process: &proc::Process, handle: u64, same: impl Fn(&Object) -> bool) {
    let removed = {
        let mut handles = process.handles.lock();
        match handles.get(handle) {
            Ok(h) if same(h.object()) => handles.remove(handle).ok(),
            _ => None,
        }
    };
    drop(removed);
}

/// `thread_join(handle) -> code`.
pub fn thread_join(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    let thread = process.handles.lock().thread(handle, rights::WAIT)?;
    if sched::with_current(|me| core::ptr::eq(me, &*thread)) {
        return Err(Error::BadArgument);
    }
    if !thread.wait_exited(|| process.dying()) {
        return Err(Error::PeerGone);
    }
    let code = thread.user().map_or(0, |u| u.exit_code.load(core::sync::atomic::Ordering::Acquire));
    close_if_same(&process, handle, |o| matches!(o, Object::Thread(t) if Arc::ptr_eq(t, &thread)));
    Ok(code)
}

/// `set_affinity(cpu)`: returns once the thread runs there. `cpu` counts
/// online CPUs (as `cpu` and `cpu_count` do), not the kernel's numbers.
pub fn set_affinity(cpu: u64) -> Result<u64, Error> {
    let target = if cpu == ferrite_abi::ANY_CPU {
        ANY_CPU
    } else {
        match u32::try_from(cpu).ok().and_then(crate::smp::nth_online) {
            Some(c) => c,
            None => return Err(Error::BadArgument),
        }
    };
    let me = sched::current();
    sched::set_affinity(&me, target);
    drop(me);
    while target != ANY_CPU && crate::percpu::cpu_index() != target {
        sched::yield_now();
    }
    Ok(0)
}

/// `map(len, flags) -> addr`.
pub fn map(len: u64, flags: u64) -> Result<u64, Error> {
    if flags & !map::WRITE != 0 {
        return Err(Error::BadArgument);
    }
    if len == 0 || len > MAP_MAX {
        return Err(Error::BadLength);
    }
    current_process().aspace.map_anon(len, flags & map::WRITE != 0).map_err(|_| Error::NoMemory)
}

/// `unmap(addr, len)`.
pub fn unmap(addr: u64, len: u64) -> Result<u64, Error> {
    if len == 0 {
        return Err(Error::BadLength);
    }
    uaccess::check_range(addr, len)?;
    current_process().aspace.unmap_anon(addr, len).map_err(|_| Error::BadAddress)?;
    Ok(0)
}

/// `spawn(cmd_ptr, cmd_len, grants_ptr, grants_len, limits_ptr) ->
/// process handle`.
pub fn spawn(cmd_ptr: u64, cmd_len: u64, grants_ptr: u64, grants_len: u64, limits_ptr: u64) -> Result<u64, Error> {
    if cmd_len > SPAWN_CMD_MAX || grants_len > SPAWN_HANDLES_MAX {
        return Err(Error::BadLength);
    }
    let command = uaccess::copy_in(cmd_ptr, cmd_len)?;
    // Two words a grant: the handle and the rights the child's copy gets.
    let grants = uaccess::copy_words(grants_ptr, grants_len * 2)?;
    let limits = match limits_ptr {
        0 => None,
        at => {
            let [memory, threads, processes, handles] = uaccess::copy_words(at, 4)?[..] else {
                return Err(Error::BadAddress);
            };
            Some(Limits { memory, threads, processes, handles })
        }
    };
    let command = core::str::from_utf8(&command).map_err(|_| Error::BadArgument)?;
    let (name, args) = match command.trim_start().split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (command.trim(), ""),
    };
    if name.is_empty() {
        return Err(Error::NotFound);
    }
    let process = current_process();
    let mut handles = Vec::new();
    handles.try_reserve_exact(grants.len() / 2).map_err(|_| Error::NoMemory)?;
    {
        let table = process.handles.lock();
        for grant in grants.as_chunks::<2>().0 {
            let [number, wanted] = *grant;
            let source = table.get(number)?;
            if !source.object().transferable() {
                return Err(Error::BadHandle);
            }
            if source.rights() & rights::TRANSFER == 0 {
                return Err(Error::NoRights);
            }
            if wanted != rights::SAME && wanted & !rights::ALL != 0 {
                return Err(Error::BadArgument);
            }
            handles.push(source.derive(wanted, None)?);
        }
    }
    proc::spawn_child(&process, name, args, handles, limits)
}

/// `wait(process handle) -> code`.
pub fn wait(handle: u64) -> Result<u64, Error> {
    let process = current_process();
    let child = process.handles.lock().process(handle, rights::WAIT)?;
    let code = child.wait(|| process.dying()).ok_or(Error::PeerGone)?;
    close_if_same(&process, handle, |o| matches!(o, Object::Process(p) if Arc::ptr_eq(p, &child)));
    Ok(code)
}

/// `kill(process handle) -> 0`.
pub fn kill(handle: u64) -> Result<u64, Error> {
    let child = current_process().handles.lock().process(handle, rights::KILL)?;
    if !child.has_exited() {
        log::debug!("user: process '{}' (pid {}) killed by pid {}", child.name, child.id, current_process().id);
    }
    child.kill(ferrite_abi::EXIT_KILLED);
    Ok(0)
}

/// `limits(ptr)`: the caller's limits, then what it (with its descendants)
/// holds, as two `Limits`.
pub fn limits(ptr: u64) -> Result<u64, Error> {
    let process = current_process();
    let account = &process.account;
    let limits = account.limits();
    let open = process.handles.lock().open() as u64;
    let words = [
        limits.memory,
        limits.threads,
        limits.processes,
        limits.handles,
        account.used(Resource::Memory),
        account.used(Resource::Threads),
        account.used(Resource::Processes),
        open,
    ];
    uaccess::copy_words_out(ptr, &words)?;
    Ok(0)
}
