use super::*;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// A framebuffer to flush into: bytes, pitch (with padding).
struct Fb {
    bytes: Vec<u8>,
    pitch: usize,
    width: usize,
    height: usize,
    format: PixelFormat,
}

impl Fb {
    fn new(format: PixelFormat, width: usize, height: usize, padding: usize) -> Fb {
        let pitch = width * format.bytes_per_pixel() + padding;
        // Junk, as the loader leaves it: the first flush must clear it.
        Fb { bytes: vec![0x77; pitch * height], pitch, width, height, format }
    }

    fn flush(&mut self, screen: &mut TextScreen) {
        let pitch = self.pitch;
        let bytes = &mut self.bytes;
        screen.flush(|y, line| bytes[y * pitch..][..line.len()].copy_from_slice(line));
    }

    fn text(&self) -> Vec<String> {
        let bpp = self.format.bytes_per_pixel();
        decode(self.width, self.height, |x, y| {
            let mut v = [0u8; 4];
            v[..bpp].copy_from_slice(&self.bytes[y * self.pitch + x * bpp..][..bpp]);
            self.format.decode(u32::from_le_bytes(v)).into_iter().max().unwrap()
        })
    }
}

fn ch(position: u8, size: u8) -> Channel {
    Channel { position, size }
}

fn rgb32() -> PixelFormat {
    PixelFormat::new(32, ch(16, 8), ch(8, 8), ch(0, 8)).unwrap()
}

fn screen(format: PixelFormat, width: usize, height: usize) -> TextScreen {
    TextScreen::new(format, width, height).unwrap().unwrap()
}

#[test]
fn text_reads_back_in_every_depth() {
    let formats = [
        rgb32(),
        PixelFormat::new(32, ch(0, 8), ch(8, 8), ch(16, 8)).unwrap(), // BGR
        PixelFormat::new(24, ch(16, 8), ch(8, 8), ch(0, 8)).unwrap(),
        PixelFormat::new(16, ch(11, 5), ch(5, 6), ch(0, 5)).unwrap(),
        PixelFormat::new(15, ch(10, 5), ch(5, 5), ch(0, 5)).unwrap(),
    ];
    for format in formats {
        let (w, h) = (40 * CELL_WIDTH + 3, 6 * CELL_HEIGHT + 5);
        let mut fb = Fb::new(format, w, h, 12);
        let mut s = screen(format, w, h);
        s.write(b"smp: 4 of 4 CPUs online\n[  1.5] cpu0 INFO ok {}|~");
        fb.flush(&mut s);
        let text = fb.text();
        assert_eq!(text[0], "smp: 4 of 4 CPUs online", "{format:?}");
        assert_eq!(text[1], "[  1.5] cpu0 INFO ok {}|~", "{format:?}");
        assert!(text[2..].iter().all(|l| l.is_empty()), "{format:?}: {text:?}");
        // The margins were cleared too, and padding is never written.
        let bpp = format.bytes_per_pixel();
        for y in 0..h {
            assert!(fb.bytes[y * fb.pitch..][..w * bpp][40 * CELL_WIDTH * bpp..].iter().all(|&b| b == 0));
            assert!(fb.bytes[y * fb.pitch + w * bpp..][..12].iter().all(|&b| b == 0x77));
        }
    }
}

#[test]
fn unsupported_formats_are_refused() {
    assert_eq!(PixelFormat::new(8, ch(0, 3), ch(3, 3), ch(6, 2)), Err(Unsupported::Depth(8)));
    assert_eq!(PixelFormat::new(16, ch(12, 5), ch(5, 6), ch(0, 5)), Err(Unsupported::Channel(ch(12, 5))));
    assert_eq!(PixelFormat::new(32, ch(16, 9), ch(8, 8), ch(0, 8)), Err(Unsupported::Channel(ch(16, 9))));
    assert_eq!(PixelFormat::new(32, ch(16, 0), ch(8, 8), ch(0, 8)), Err(Unsupported::Channel(ch(16, 0))));
    assert!(matches!(TextScreen::new(rgb32(), CELL_WIDTH - 1, 100), Ok(Err(Unsupported::Size { .. }))));
    assert!(matches!(TextScreen::new(rgb32(), 100, CELL_HEIGHT - 1), Ok(Err(Unsupported::Size { .. }))));
    assert!(matches!(TextScreen::new(rgb32(), usize::MAX / 2, 100), Ok(Err(Unsupported::Size { .. }))));
}

#[test]
fn scrolling_keeps_the_latest_lines_in_order() {
    let (cols, rows) = (20, 8);
    let mut fb = Fb::new(rgb32(), cols * CELL_WIDTH, rows * CELL_HEIGHT, 0);
    let mut s = screen(rgb32(), cols * CELL_WIDTH, rows * CELL_HEIGHT);
    for i in 0..50 {
        s.write(format!("line {i}\n").as_bytes());
        // Flushed now and then, as the kernel does.
        if i % 7 == 0 {
            fb.flush(&mut s);
        }
    }
    fb.flush(&mut s);
    let text = fb.text();
    // The cursor is on a blank line after "line 49"; the lines above it
    // are the latest, in order, and the rest of the screen is blank.
    let (_, row) = s.cursor();
    assert!(row < rows);
    for k in 1..=row {
        assert_eq!(text[row - k], format!("line {}", 50 - k), "{text:?}");
    }
    assert!(text[row..].iter().all(|l| l.is_empty()), "{text:?}");
    assert!(row >= rows - rows / 4 - 1, "jump scroll leaves the cursor in the bottom quarter: {row}");
}

#[test]
fn long_lines_wrap_and_tabs_align() {
    let mut fb = Fb::new(rgb32(), 10 * CELL_WIDTH, 4 * CELL_HEIGHT, 0);
    let mut s = screen(rgb32(), 10 * CELL_WIDTH, 4 * CELL_HEIGHT);
    s.write(b"0123456789abc\na\tb\n0123456789");
    fb.flush(&mut s);
    assert_eq!(fb.text(), ["0123456789", "abc", "a       b", "0123456789"]);
    // A line exactly as wide as the screen leaves no blank line after it:
    // the newline starts the next row (scrolling, by one row here).
    s.write(b"\nx");
    fb.flush(&mut s);
    assert_eq!(fb.text(), ["abc", "a       b", "0123456789", "x"]);
}

#[test]
fn utf8_split_malformed_and_unknown() {
    let mut fb = Fb::new(rgb32(), 20 * CELL_WIDTH, 3 * CELL_HEIGHT, 0);
    let mut s = screen(rgb32(), 20 * CELL_WIDTH, 3 * CELL_HEIGHT);
    // "é" is not in the font (Basic Latin only); "…" split across writes.
    let ellipsis = "…".as_bytes();
    s.write(b"a");
    s.write(&ellipsis[..1]);
    s.write(&ellipsis[1..]);
    s.write("bé".as_bytes());
    s.write(b"\xe2\x80x\xffy\x01\x1b\n");
    s.write(b"abc\rX\x08Y");
    fb.flush(&mut s);
    assert_eq!(fb.text()[0], "a\u{fffd}b\u{fffd}\u{fffd}x\u{fffd}y");
    assert_eq!(fb.text()[1], "Ybc");
}

#[test]
fn flush_sends_only_what_changed() {
    let mut s = screen(rgb32(), 10 * CELL_WIDTH, 20 * CELL_HEIGHT);
    let mut lines = Vec::new();
    s.flush(|y, _| lines.push(y));
    assert_eq!(lines.len(), 20 * CELL_HEIGHT, "the first flush clears everything");
    assert!(!s.needs_flush());
    s.write(b"a\nb");
    assert!(s.needs_flush());
    lines.clear();
    s.flush(|y, _| lines.push(y));
    assert_eq!(lines, (0..2 * CELL_HEIGHT).collect::<Vec<_>>());
}
