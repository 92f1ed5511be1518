//! Reading text back off a screen drawn by [`TextScreen`](crate::TextScreen):
//! for the host tests, which take QEMU's screen (`screendump`) and check
//! what it says.
use crate::{glyph, CELL_HEIGHT, CELL_WIDTH};
use alloc::string::String;
use alloc::vec::Vec;

/// Below this a pixel is background.
const INK: u8 = 64;

/// The text on a `width` x `height` screen whose pixel (x, y) has
/// brightness `brightness(x, y)` (0-255; the brightest channel does), one
/// string per text row, trailing blanks dropped. Each cell is read as the
/// printable ASCII character (or U+FFFD) whose glyph is closest to it.
pub fn decode(width: usize, height: usize, brightness: impl Fn(usize, usize) -> u8) -> Vec<String> {
    let candidates: Vec<(char, &[u8])> =
        (' '..='~').chain(['\u{fffd}']).filter_map(|c| glyph(c).map(|g| (c, g.pixels()))).collect();
    let mut cell = [0u8; CELL_WIDTH * CELL_HEIGHT];
    (0..height / CELL_HEIGHT)
        .map(|row| {
            let mut line = String::new();
            for col in 0..width / CELL_WIDTH {
                for (i, p) in cell.iter_mut().enumerate() {
                    *p = brightness(col * CELL_WIDTH + i % CELL_WIDTH, row * CELL_HEIGHT + i / CELL_WIDTH);
                }
                let c = if cell.iter().all(|&p| p < INK) {
                    ' '
                } else {
                    let distance = |pixels: &[u8]| -> u32 {
                        pixels.iter().zip(&cell).map(|(&a, &b)| u32::from(a.abs_diff(b))).sum()
                    };
                    candidates.iter().min_by_key(|(_, pixels)| distance(pixels)).map_or('?', |&(c, _)| c)
                };
                line.push(c);
            }
            line.truncate(line.trim_end().len());
            line
        })
        .collect()
}
