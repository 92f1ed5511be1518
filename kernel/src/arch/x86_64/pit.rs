//! The 8254 programmable interval timer, used once at boot as the reference
//! clock that calibrates the TSC and the local APIC timer.
//!
//! Channel 2 counts down in mode 0 with its gate controlled through port
//! 0x61; its output (bit 5 of port 0x61) goes high when the count reaches
//! zero. Unlike channel 0, this needs no interrupt.
use x86_64::instructions::port::Port;

/// The PIT's input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const MODE_COMMAND: u16 = 0x43;
const GATE_PORT: u16 = 0x61;
/// Port 0x61 bits: channel 2 gate, speaker enable, channel 2 output.
const GATE_BIT: u8 = 0x01;
const SPEAKER_BIT: u8 = 0x02;
const OUT2_BIT: u8 = 0x20;
/// Mode command: channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
const CHANNEL2_MODE0: u8 = 0b1011_0000;
/// Reads of port 0x61 before giving up on a PIT that never counts down
/// (about 1 µs each on real hardware: several seconds).
const SPIN_LIMIT: u64 = 5_000_000;

/// Waits `ticks` PIT ticks (at most 0xffff) on channel 2, calling `start`
/// when counting begins and returning what `stop` returns when it ends, or
/// `None` if the PIT never finished.
pub fn measure<T>(ticks: u16, start: impl FnOnce(), stop: impl FnOnce() -> T) -> Option<T> {
    let mut gate = Port::<u8>::new(GATE_PORT);
    let mut mode = Port::<u8>::new(MODE_COMMAND);
    let mut data = Port::<u8>::new(CHANNEL2_DATA);
    // SAFETY: the PIT and port 0x61 are legacy devices nothing else uses
    // during boot; the speaker stays off.
    unsafe {
        let g = gate.read();
        gate.write((g & !SPEAKER_BIT) & !GATE_BIT);
        mode.write(CHANNEL2_MODE0);
        data.write(ticks as u8);
        data.write((ticks >> 8) as u8);
        // The count starts when the gate rises.
        gate.write((g & !SPEAKER_BIT) | GATE_BIT);
    }
    start();
    for _ in 0..SPIN_LIMIT {
        // SAFETY: reading port 0x61 has no side effect.
        if unsafe { gate.read() } & OUT2_BIT != 0 {
            return Some(stop());
        }
    }
    None
}
