use super::*;

#[test]
fn round_trip_every_length() {
    let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
    for len in 0..=text.len() {
        let (msg, taken) = pack(OP_WRITE, &text[..len]);
        assert_eq!(taken, len.min(CHUNK));
        let (op, bytes, n) = unpack(&msg);
        assert_eq!((op, n), (OP_WRITE, taken));
        assert_eq!(&bytes[..n], &text[..taken]);
    }
}

#[test]
fn a_lying_length_is_clamped() {
    let (mut msg, _) = pack(OP_INPUT, b"abc");
    msg[0] = OP_INPUT | (1000 << 32);
    assert_eq!(unpack(&msg).2, CHUNK);
    msg[0] = OP_INPUT | (u64::MAX << 32);
    assert_eq!(unpack(&msg).2, CHUNK);
    assert_eq!(unpack(&msg).0, OP_INPUT);
}

#[test]
fn keys_become_terminal_bytes() {
    let mut out = [0u8; 4];
    let mut bytes = |k| {
        let n = key_bytes(k, &mut out);
        out[..n].to_vec()
    };
    assert_eq!(bytes(Key::Char('x')), b"x");
    assert_eq!(bytes(Key::Enter), b"\r");
    assert_eq!(bytes(Key::Backspace), b"\x7f");
    assert_eq!(bytes(Key::Ctrl('c')), b"\x03");
    assert_eq!(bytes(Key::Up), b"\x1b[A");
    assert_eq!(bytes(Key::Delete), b"\x1b[3~");
    assert_eq!(bytes(Key::Char('é')), b"");
    assert_eq!(bytes(Key::Ctrl('1')), b"");
}

#[test]
fn keyboard_bytes_edit_a_line_like_serial_ones() {
    use crate::line::{Edit, LineEditor};
    let mut editor: LineEditor<64> = LineEditor::new();
    let mut out = [0u8; 4];
    let mut last = Edit::Nothing;
    for key in [Key::Char('l'), Key::Char('s'), Key::Char('x'), Key::Backspace, Key::Enter] {
        let n = key_bytes(key, &mut out);
        for &b in &out[..n] {
            last = editor.feed_byte(b);
        }
    }
    assert_eq!(last, Edit::Line);
    assert_eq!(editor.line(), "ls");
}
