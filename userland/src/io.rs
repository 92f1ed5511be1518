//! Console output: [`print!`](crate::print) and [`println!`](crate::println).
//!
//! Text is formatted into a buffer on the stack and written with as few
//! `write` calls as possible: a line up to [`WRITE_MAX`] bytes, its newline
//! included, is one call, and the kernel never interleaves one call's bytes
//! with other output. So lines from different threads and processes never
//! mix, which the boot tests rely on.
#![forbid(unsafe_code)]

use core::fmt;

use ferrite_abi::WRITE_MAX;

use crate::sys;

const BUF_LEN: usize = WRITE_MAX as usize;

/// Writes all of `bytes`, in pieces of at most [`WRITE_MAX`]. Stops at the
/// first error (there is nowhere to report it).
pub fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let piece = &bytes[..bytes.len().min(BUF_LEN)];
        match sys::write(piece) {
            Ok(n) if n > 0 => bytes = &bytes[(n as usize).min(bytes.len())..],
            _ => return,
        }
    }
}

/// Collects formatted text and writes it when full or flushed.
struct Buffer {
    bytes: [u8; BUF_LEN],
    len: usize,
}

impl Buffer {
    fn flush(&mut self) {
        write_all(&self.bytes[..self.len]);
        self.len = 0;
    }
}

impl fmt::Write for Buffer {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        while !s.is_empty() {
            if self.len == BUF_LEN {
                self.flush();
            }
            let n = s.len().min(BUF_LEN - self.len);
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            s = &s[n..];
        }
        Ok(())
    }
}

/// What `print!` and `println!` expand to.
#[doc(hidden)]
pub fn print(args: fmt::Arguments, newline: bool) {
    let mut buf = Buffer { bytes: [0; BUF_LEN], len: 0 };
    // A `Display` impl that fails leaves its text cut short; there is no one
    // to tell.
    let _ = fmt::write(&mut buf, args);
    if newline {
        let _ = fmt::Write::write_str(&mut buf, "\n");
    }
    buf.flush();
}

/// Prints to the console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::io::print(::core::format_args!($($arg)*), false)
    };
}

/// Prints a line to the console, like `std::println!`: one `write` call for
/// a line up to [`ferrite_abi::WRITE_MAX`] bytes.
#[macro_export]
macro_rules! println {
    () => {
        $crate::io::print(::core::format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::io::print(::core::format_args!($($arg)*), true)
    };
}
