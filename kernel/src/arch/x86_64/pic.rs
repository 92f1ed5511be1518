//! The legacy 8259 PICs: remapped off the exception vectors and masked.
//!
//! Ferrite takes interrupts through the local APIC only. Even masked, an
//! 8259 can raise a spurious IRQ 7 or 15 (a line that dropped before the
//! CPU acknowledged it); those are recognised by the in-service register
//! and ignored.
use super::idt::vector;
use pic8259::ChainedPics;
use x86_64::instructions::port::Port;

const PIC1_COMMAND: u16 = 0x20;
const PIC2_COMMAND: u16 = 0xa0;
/// OCW3: read the in-service register on the next read of the command port.
const OCW3_READ_ISR: u8 = 0x0b;
/// Non-specific end of interrupt.
const EOI: u8 = 0x20;

static PICS: crate::sync::IrqSpinlock<ChainedPics> =
    // SAFETY: the offsets map the PICs onto vectors reserved for them.
    crate::sync::IrqSpinlock::new(unsafe { ChainedPics::new(vector::PIC_BASE, vector::PIC_BASE + 8) });

/// Remaps both PICs to `vector::PIC_BASE` and masks every line.
pub fn init_and_mask() {
    let mut pics = PICS.lock();
    // SAFETY: programs the PIC ports only; interrupts are off.
    unsafe {
        pics.initialize();
        pics.write_masks(0xff, 0xff);
    }
}

fn in_service(command_port: u16) -> u8 {
    let mut port = Port::<u8>::new(command_port);
    // SAFETY: OCW3 selects the ISR for the next read; no other effect.
    unsafe {
        port.write(OCW3_READ_ISR);
        port.read()
    }
}

/// An interrupt arrived on PIC line `irq` (all lines are masked).
pub fn interrupt(irq: u8) {
    match irq {
        7 if in_service(PIC1_COMMAND) & 0x80 == 0 => {} // spurious: no EOI
        15 if in_service(PIC2_COMMAND) & 0x80 == 0 => {
            // Spurious on the slave, but the master saw a real IRQ 2.
            // SAFETY: EOI to the master PIC's command port.
            unsafe { Port::<u8>::new(PIC1_COMMAND).write(EOI) };
        }
        _ => {
            log::warn!("pic: interrupt from masked line {irq}; ignored");
            // SAFETY: acknowledges the line just delivered.
            unsafe { PICS.lock().notify_end_of_interrupt(vector::PIC_BASE + irq) };
        }
    }
}
