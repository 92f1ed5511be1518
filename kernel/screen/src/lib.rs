//! Ferrite's text screen: console text drawn into a back buffer in the
//! framebuffer's own pixel format, and copied out to the framebuffer by
//! the caller, a pixel line at a time. Pure logic: the kernel owns the
//! framebuffer (kernel/src/screen.rs), and the host tests read QEMU's
//! screen back with [`decode`], using the same font.
//!
//! **Layout.** Cells of [`CELL_WIDTH`] x [`CELL_HEIGHT`] pixels from the
//! top left corner, as many as fit; the right and bottom margins stay
//! black. The back buffer holds the text rows as a ring: scrolling moves
//! the ring's top and clears the rows that come in at the bottom, so no
//! pixel is moved. Scrolling jumps by a quarter of the screen at a time
//! (as xterm's jump scroll does): every scroll redraws the whole screen on
//! the next flush, and a jump makes those flushes four times rarer than a
//! line at a time would on a full log.
//!
//! **Text.** UTF-8 (a character may be split across writes); `\n` starts
//! a line, `\r` returns to its start, `\t` goes to the next multiple of 8,
//! a backspace moves back a cell; other control characters are not shown.
//! A character the font lacks is drawn as U+FFFD; a line longer than the
//! screen wraps.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod decode;
#[cfg(test)]
mod tests;

pub use decode::decode;

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight, RasterizedChar};

const WEIGHT: FontWeight = FontWeight::Regular;
const SIZE: RasterHeight = RasterHeight::Size16;

/// A cell's height in pixels.
pub const CELL_HEIGHT: usize = SIZE.val();
/// A cell's width in pixels.
pub const CELL_WIDTH: usize = get_raster_width(WEIGHT, SIZE);
/// Tab stops are this many cells apart.
const TAB: usize = 8;

/// The glyph for `c`: the font's own, else U+FFFD's.
fn glyph(c: char) -> Option<RasterizedChar> {
    get_raster(c, WEIGHT, SIZE).or_else(|| get_raster('\u{fffd}', WEIGHT, SIZE))
}

/// Where a colour channel sits in a pixel: its lowest bit and its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The lowest bit's position.
    pub position: u8,
    /// How many bits.
    pub size: u8,
}

/// A direct-colour pixel format: 15/16, 24 or 32 bits a pixel, each
/// channel anywhere in it, stored little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    bytes_per_pixel: usize,
    channels: [Channel; 3],
}

/// Why a framebuffer cannot be drawn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// A depth other than 15, 16, 24 or 32 bits a pixel.
    Depth(u8),
    /// A colour channel empty, wider than 8 bits or outside the pixel.
    Channel(Channel),
    /// Smaller than one cell, or larger than the address space.
    Size {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
}

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Depth(bpp) => write!(f, "{bpp} bits a pixel"),
            Self::Channel(c) => write!(f, "a colour channel of {} bits at bit {}", c.size, c.position),
            Self::Size { width, height } => write!(f, "a size of {width}x{height}"),
        }
    }
}

impl PixelFormat {
    /// The format of `bits_per_pixel`-bit pixels with these red, green and
    /// blue channels.
    pub fn new(bits_per_pixel: u8, red: Channel, green: Channel, blue: Channel) -> Result<Self, Unsupported> {
        let bytes_per_pixel = match bits_per_pixel {
            15 | 16 => 2,
            24 => 3,
            32 => 4,
            other => return Err(Unsupported::Depth(other)),
        };
        for c in [red, green, blue] {
            if c.size == 0 || c.size > 8 || u32::from(c.position) + u32::from(c.size) > u32::from(bits_per_pixel) {
                return Err(Unsupported::Channel(c));
            }
        }
        Ok(PixelFormat { bytes_per_pixel, channels: [red, green, blue] })
    }

    /// Bytes a pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        self.bytes_per_pixel
    }

    /// The pixel value of colour `rgb` (8 bits a channel).
    pub fn encode(&self, rgb: [u8; 3]) -> u32 {
        self.channels.iter().zip(rgb).map(|(c, v)| (u32::from(v) >> (8 - c.size)) << c.position).fold(0, |a, b| a | b)
    }

    /// The colour of pixel value `value`, each channel scaled back to 8
    /// bits.
    pub fn decode(&self, value: u32) -> [u8; 3] {
        self.channels.map(|c| {
            let v = (value >> c.position) & ((1 << c.size) - 1);
            (v * 255 / ((1 << c.size) - 1)) as u8
        })
    }
}

/// The text colour: white, so that every channel carries the glyph's
/// intensity and any depth keeps it.
const FOREGROUND: [u8; 3] = [0xff, 0xff, 0xff];

/// UTF-8 being decoded: the bits so far and how many bytes are missing.
#[derive(Default)]
struct Utf8 {
    code: u32,
    missing: u8,
}

impl Utf8 {
    /// Takes `b`, and gives `put` each character completed (U+FFFD for a
    /// malformed sequence).
    fn push(&mut self, b: u8, mut put: impl FnMut(char)) {
        if self.missing > 0 {
            if b & 0xc0 == 0x80 {
                self.code = self.code << 6 | u32::from(b & 0x3f);
                self.missing -= 1;
                if self.missing == 0 {
                    put(char::from_u32(self.code).unwrap_or('\u{fffd}'));
                }
                return;
            }
            // Cut short: what came is one bad character, and `b` starts
            // afresh.
            self.missing = 0;
            put('\u{fffd}');
        }
        match b {
            0x00..=0x7f => put(char::from(b)),
            0xc2..=0xdf => self.start(b & 0x1f, 1),
            0xe0..=0xef => self.start(b & 0x0f, 2),
            0xf0..=0xf4 => self.start(b & 0x07, 3),
            _ => put('\u{fffd}'),
        }
    }

    fn start(&mut self, bits: u8, missing: u8) {
        self.code = u32::from(bits);
        self.missing = missing;
    }
}

/// A text console drawn into a back buffer.
pub struct TextScreen {
    format: PixelFormat,
    /// Bytes of one pixel line (the width of the screen, no padding).
    line_bytes: usize,
    height: usize,
    cols: usize,
    rows: usize,
    /// `rows` text rows of `CELL_HEIGHT` pixel lines each, as a ring
    /// starting at text row `top`.
    back: Vec<u8>,
    top: usize,
    /// The cursor: the next cell to draw in. `col == cols` means the line
    /// is full, and the next character starts a new one.
    col: usize,
    row: usize,
    /// Screen rows changed since the last flush.
    dirty: Vec<bool>,
    /// Everything changed (a scroll, or nothing was flushed yet).
    all_dirty: bool,
    /// The pixel values of the text colour at each glyph intensity.
    shades: [u32; 256],
    utf8: Utf8,
    /// A black pixel line, for the bottom margin.
    blank: Vec<u8>,
}

impl TextScreen {
    /// A console on a `width` x `height` screen of `format` pixels, black.
    /// Fails (without allocating) for a screen smaller than a cell, and
    /// with the allocator's error if the back buffer does not fit.
    pub fn new(format: PixelFormat, width: usize, height: usize) -> Result<Result<Self, Unsupported>, TryReserveError> {
        let (cols, rows) = (width / CELL_WIDTH, height / CELL_HEIGHT);
        let Some(line_bytes) = width.checked_mul(format.bytes_per_pixel) else {
            return Ok(Err(Unsupported::Size { width, height }));
        };
        let Some(size) = line_bytes.checked_mul(rows * CELL_HEIGHT) else {
            return Ok(Err(Unsupported::Size { width, height }));
        };
        if cols == 0 || rows == 0 {
            return Ok(Err(Unsupported::Size { width, height }));
        }
        let zeroed = |n: usize| -> Result<Vec<u8>, TryReserveError> {
            let mut v = Vec::new();
            v.try_reserve_exact(n)?;
            v.resize(n, 0);
            Ok(v)
        };
        let back = zeroed(size)?;
        let blank = zeroed(line_bytes)?;
        let mut dirty = Vec::new();
        dirty.try_reserve_exact(rows)?;
        dirty.resize(rows, false);
        let mut shades = [0u32; 256];
        for (i, shade) in shades.iter_mut().enumerate() {
            *shade = format.encode(FOREGROUND.map(|c| (u32::from(c) * i as u32 / 255) as u8));
        }
        Ok(Ok(TextScreen {
            format,
            line_bytes,
            height,
            cols,
            rows,
            back,
            top: 0,
            col: 0,
            row: 0,
            dirty,
            all_dirty: true,
            shades,
            utf8: Utf8::default(),
            blank,
        }))
    }

    /// The size in cells: (columns, rows).
    pub fn size(&self) -> (usize, usize) {
        (self.cols, self.rows)
    }

    /// The cursor: (column, row).
    pub fn cursor(&self) -> (usize, usize) {
        (self.col, self.row)
    }

    /// Whether anything was drawn since the last [`flush`](Self::flush).
    pub fn needs_flush(&self) -> bool {
        self.all_dirty || self.dirty.iter().any(|&d| d)
    }

    /// Draws `bytes` (UTF-8 text).
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let mut utf8 = core::mem::take(&mut self.utf8);
            utf8.push(b, |c| self.put(c));
            self.utf8 = utf8;
        }
    }

    fn put(&mut self, c: char) {
        match c {
            '\n' => self.new_line(),
            '\r' => self.col = 0,
            '\t' => {
                let stop = ((self.col / TAB + 1) * TAB).min(self.cols);
                while self.col < stop {
                    self.draw(' ');
                }
            }
            '\u{8}' => self.col = self.col.saturating_sub(1),
            c if c.is_control() => {}
            c => self.draw(c),
        }
    }

    /// Draws `c` at the cursor, and moves it on.
    fn draw(&mut self, c: char) {
        if self.col >= self.cols {
            self.new_line();
        }
        let bpp = self.format.bytes_per_pixel;
        let ring_row = (self.top + self.row) % self.rows;
        let cell_bytes = CELL_WIDTH * bpp;
        let origin = ring_row * CELL_HEIGHT * self.line_bytes + self.col * cell_bytes;
        let glyph = glyph(c);
        for y in 0..CELL_HEIGHT {
            let line = &mut self.back[origin + y * self.line_bytes..][..cell_bytes];
            let intensities =
                glyph.as_ref().map(|g| g.pixels()).and_then(|p| p.get(y * CELL_WIDTH..(y + 1) * CELL_WIDTH));
            for (x, pixel) in line.chunks_exact_mut(bpp).enumerate() {
                let shade = self.shades[usize::from(intensities.map_or(0, |i| i[x]))];
                pixel.copy_from_slice(&shade.to_le_bytes()[..bpp]);
            }
        }
        self.dirty[self.row] = true;
        self.col += 1;
    }

    fn new_line(&mut self) {
        self.col = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
            return;
        }
        // Jump: the top quarter goes, its rows come back blank at the
        // bottom.
        let jump = (self.rows / 4).max(1);
        let rows_bytes = CELL_HEIGHT * self.line_bytes;
        for i in 0..jump {
            let ring_row = (self.top + i) % self.rows;
            self.back[ring_row * rows_bytes..][..rows_bytes].fill(0);
        }
        self.top = (self.top + jump) % self.rows;
        self.row = self.rows - jump;
        self.all_dirty = true;
    }

    /// Hands every pixel line that changed since the last flush to `out`,
    /// as (y, the line's bytes in the framebuffer's format), top to
    /// bottom. The first flush covers the whole screen, margins too.
    pub fn flush(&mut self, mut out: impl FnMut(usize, &[u8])) {
        for screen_row in 0..self.rows {
            if !(self.all_dirty || self.dirty[screen_row]) {
                continue;
            }
            self.dirty[screen_row] = false;
            let ring_row = (self.top + screen_row) % self.rows;
            for y in 0..CELL_HEIGHT {
                let start = (ring_row * CELL_HEIGHT + y) * self.line_bytes;
                out(screen_row * CELL_HEIGHT + y, &self.back[start..][..self.line_bytes]);
            }
        }
        if core::mem::take(&mut self.all_dirty) {
            for y in self.rows * CELL_HEIGHT..self.height {
                out(y, &self.blank);
            }
        }
    }
}
