//! Byte streams over IPC: how the drivers and the shell pass text in the
//! four words of a message.
//!
//! Word 0 holds an operation ([`OP_WRITE`], [`OP_INPUT`]) in its low 32
//! bits and the number of bytes in its high 32; words 1-3 hold up to
//! [`CHUNK`] bytes, little-endian. Longer text goes in several messages.
//! A receiver never trusts the length: [`unpack`] clamps it.
//!
//! The keyboard driver also turns keys into the bytes a serial terminal
//! would send ([`key_bytes`]), so that the shell reads both sources the
//! same way.

use crate::scancode::Key;

/// Bytes one message carries.
pub const CHUNK: usize = 24;
/// To the serial driver: write these bytes (the reply's word 0 is how
/// many were taken).
pub const OP_WRITE: u64 = 1;
/// From a driver to the shell: bytes typed.
pub const OP_INPUT: u64 = 2;
/// To the serial driver: reply once every byte written before has left
/// the transmitter (no bytes).
pub const OP_DRAIN: u64 = 3;
/// The badge of the serial driver's input handle.
pub const SOURCE_SERIAL: u64 = 1;
/// The badge of the keyboard driver's input handle.
pub const SOURCE_KEYBOARD: u64 = 2;
/// What the serial driver signals on the notification its parent may give
/// it (as handle 4) once it serves.
pub const READY_SERIAL: u64 = 1 << 0;
/// What the keyboard driver signals there once it serves.
pub const READY_KEYBOARD: u64 = 1 << 1;

/// A message with `op` and the first [`CHUNK`] bytes (at most) of
/// `bytes`, and how many it took.
pub fn pack(op: u64, bytes: &[u8]) -> ([u64; 4], usize) {
    let n = bytes.len().min(CHUNK);
    let mut raw = [0u8; CHUNK];
    raw[..n].copy_from_slice(&bytes[..n]);
    let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    ([(op & 0xffff_ffff) | ((n as u64) << 32), word(0), word(1), word(2)], n)
}

/// The operation, the bytes and their number (at most [`CHUNK`], whatever
/// the sender claimed).
pub fn unpack(msg: &[u64; 4]) -> (u64, [u8; CHUNK], usize) {
    let mut raw = [0u8; CHUNK];
    for (i, w) in msg[1..].iter().enumerate() {
        raw[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let n = usize::try_from(msg[0] >> 32).unwrap_or(CHUNK).min(CHUNK);
    (msg[0] & 0xffff_ffff, raw, n)
}

/// The bytes a terminal sends for `key`, into `out`; how many (0 for a
/// key that sends nothing).
pub fn key_bytes(key: Key, out: &mut [u8; 4]) -> usize {
    let seq: &[u8] = match key {
        Key::Char(c) if c.is_ascii() => {
            out[0] = c as u8;
            return 1;
        }
        Key::Char(_) => &[],
        Key::Ctrl(c) if c.is_ascii_lowercase() => {
            out[0] = c as u8 - b'a' + 1;
            return 1;
        }
        Key::Ctrl(_) => &[],
        Key::Enter => b"\r",
        Key::Backspace => b"\x7f",
        Key::Tab => b"\t",
        Key::Escape => b"\x1b",
        Key::Up => b"\x1b[A",
        Key::Down => b"\x1b[B",
        Key::Right => b"\x1b[C",
        Key::Left => b"\x1b[D",
        Key::Home => b"\x1b[H",
        Key::End => b"\x1b[F",
        Key::Delete => b"\x1b[3~",
    };
    out[..seq.len()].copy_from_slice(seq);
    seq.len()
}

#[cfg(test)]
mod tests;
