//! How long each CPU keeps interrupts off: the `irq_off_max` benchmark
//! figure.
//!
//! While tracing is on ([`start`]), every place where the kernel turns
//! interrupts off with them on before (`InterruptsOff`, `IrqSpinlock`,
//! trap entry from a context with interrupts on, the system-call path's
//! own `disable`) stamps the time and where it happened, and every place
//! that turns them back on measures the stretch and keeps the longest, per
//! CPU. A stretch that spans a context switch is the CPU's, as it should
//! be: the CPU is deaf from the first stamp to the next enable, whichever
//! thread does it. Tracing is off but in `bench` boots, and then each hook
//! costs one load and a branch.
use crate::percpu;
use core::panic::Location;
use core::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Interrupts have just gone off, at `site`.
#[inline]
pub fn off(site: &'static Location<'static>) {
    if ENABLED.load(Ordering::Relaxed) {
        let cpu = percpu::current();
        cpu.irq_off_since.store(super::cpu::rdtsc(), Ordering::Relaxed);
        cpu.irq_off_from.store(site as *const Location<'static> as u64, Ordering::Relaxed);
    }
}

/// Interrupts are about to go back on.
#[inline]
pub fn on() {
    if ENABLED.load(Ordering::Relaxed) {
        let cpu = percpu::current();
        let since = cpu.irq_off_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            let took = super::cpu::rdtsc().saturating_sub(since);
            if took > cpu.irq_off_max.load(Ordering::Relaxed) {
                cpu.irq_off_max.store(took, Ordering::Relaxed);
                cpu.irq_off_max_from.store(cpu.irq_off_from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// Starts tracing, every CPU's longest stretch forgotten.
pub fn start() {
    for cpu in crate::smp::online_cpus().iter() {
        let c = percpu::get(cpu);
        c.irq_off_max.store(0, Ordering::Relaxed);
        c.irq_off_since.store(0, Ordering::Relaxed);
    }
    ENABLED.store(true, Ordering::SeqCst);
}

/// Stops tracing; returns the longest stretch on any CPU (TSC ticks), the
/// CPU, and where it began.
pub fn stop() -> (u64, u32, Option<&'static Location<'static>>) {
    ENABLED.store(false, Ordering::SeqCst);
    let mut worst = (0, 0, None);
    for cpu in crate::smp::online_cpus().iter() {
        let c = percpu::get(cpu);
        let ticks = c.irq_off_max.load(Ordering::Relaxed);
        if ticks > worst.0 {
            let from = c.irq_off_max_from.load(Ordering::Relaxed) as *const Location<'static>;
            // SAFETY: only `off` writes it, with a `&'static Location`.
            worst = (ticks, cpu, unsafe { from.as_ref() });
        }
    }
    worst
}
