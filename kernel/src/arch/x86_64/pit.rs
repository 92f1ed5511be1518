//! The 8254 programmable interval timer, the last reference clock the boot
//! calibration tries (`refclock`): many recent machines gate it off.
//!
//! Channel 2 counts down from 0xffff with its gate held high through port
//! 0x61 (the speaker stays off); it needs no interrupt. The caller reads the
//! count itself, bracketed by TSC reads, rather than waiting for the
//! channel's output to rise: a wait is only as precise as the moment the
//! waiting CPU notices, and a virtual CPU on a busy host can notice late.
use x86_64::instructions::port::Port;

/// The PIT's input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const MODE_COMMAND: u16 = 0x43;
const GATE_PORT: u16 = 0x61;
/// Port 0x61 bits: channel 2 gate, speaker enable.
const GATE_BIT: u8 = 0x01;
const SPEAKER_BIT: u8 = 0x02;
/// Mode command: channel 2, lobyte/hibyte, mode 0, binary.
const CHANNEL2_MODE0: u8 = 0b1011_0000;
/// Mode command: latch channel 2's count.
const CHANNEL2_LATCH: u8 = 0b1000_0000;

/// Starts channel 2 counting down from 0xffff (about 55 ms to zero).
pub fn start_countdown() {
    let mut gate = Port::<u8>::new(GATE_PORT);
    let mut mode = Port::<u8>::new(MODE_COMMAND);
    let mut data = Port::<u8>::new(CHANNEL2_DATA);
    // SAFETY: the PIT and port 0x61 are legacy devices nothing else uses
    // during boot; the speaker stays off.
    unsafe {
        let g = gate.read() & !SPEAKER_BIT;
        gate.write(g & !GATE_BIT);
        mode.write(CHANNEL2_MODE0);
        data.write(0xff);
        data.write(0xff);
        // The count starts when the gate rises.
        gate.write(g | GATE_BIT);
    }
}

/// Channel 2's current count.
pub fn read_count() -> u16 {
    let mut mode = Port::<u8>::new(MODE_COMMAND);
    let mut data = Port::<u8>::new(CHANNEL2_DATA);
    // SAFETY: latching and reading the count has no other effect.
    unsafe {
        mode.write(CHANNEL2_LATCH);
        let lo = data.read();
        let hi = data.read();
        u16::from_le_bytes([lo, hi])
    }
}
