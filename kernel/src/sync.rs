//! Locks for kernel data that interrupt handlers also touch.
//!
//! [`IrqSpinlock`] disables interrupts on the local CPU for as long as it is
//! held, so an interrupt handler that takes the same lock can never spin on a
//! holder that it interrupted. Interrupts are restored to their previous
//! state when the guard drops, so these locks nest.
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use x86_64::instructions::interrupts;

pub struct IrqSpinlock<T> {
    inner: spin::Mutex<T>,
}

pub struct IrqSpinlockGuard<'a, T> {
    guard: ManuallyDrop<spin::MutexGuard<'a, T>>,
    interrupts_were_enabled: bool,
}

impl<T> IrqSpinlock<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }

    #[track_caller]
    pub fn lock(&self) -> IrqSpinlockGuard<'_, T> {
        let interrupts_were_enabled = interrupts::are_enabled();
        interrupts::disable();
        if interrupts_were_enabled {
            crate::arch::irqtrace::off(core::panic::Location::caller());
        }
        let guard = loop {
            if let Some(g) = self.inner.try_lock() {
                break g;
            }
            // With interrupts off this CPU cannot take a shootdown IPI, and
            // the holder may be waiting for exactly that (arch tlb.rs).
            crate::arch::tlb::service();
            core::hint::spin_loop();
        };
        IrqSpinlockGuard { guard: ManuallyDrop::new(guard), interrupts_were_enabled }
    }

    /// Runs `f` on the value if the lock is free now, without waiting.
    pub fn try_with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let interrupts_were_enabled = interrupts::are_enabled();
        interrupts::disable();
        let r = self.inner.try_lock().map(|g| f(&g));
        if interrupts_were_enabled {
            interrupts::enable();
        }
        r
    }

    /// Releases the lock whoever holds it.
    ///
    /// # Safety
    /// Only for paths that will never return to the holder: the panic and
    /// fatal-exception paths, which must print even if they interrupted a
    /// CPU in the middle of a write.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: the caller guarantees the holder never runs again.
        unsafe { self.inner.force_unlock() }
    }
}

impl<T> Deref for IrqSpinlockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqSpinlockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for IrqSpinlockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here; the lock is released before
        // interrupts come back on so that no handler finds it held.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        if self.interrupts_were_enabled {
            crate::arch::irqtrace::on();
            interrupts::enable();
        }
    }
}
