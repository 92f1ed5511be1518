use super::*;

// Make codes used below (scan code set 1).
const A: u8 = 0x1E;
const C: u8 = 0x2E;
const E: u8 = 0x12;
const H: u8 = 0x23;
const L: u8 = 0x26;
const O: u8 = 0x18;
const ONE: u8 = 0x02;
const SLASH: u8 = 0x35;
const SPACE: u8 = 0x39;
const LSHIFT: u8 = 0x2A;
const RSHIFT: u8 = 0x36;
const LCTRL: u8 = 0x1D;
const CAPS: u8 = 0x3A;
const NUM: u8 = 0x45;

/// Break code of `make`.
fn up(make: u8) -> u8 {
    make | 0x80
}

/// Feeds `bytes` to `decoder`, collecting every key it returns.
fn keys(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Key> {
    bytes.iter().filter_map(|&b| decoder.feed(b)).collect()
}

/// Feeds `bytes` to a new decoder, collecting every key.
fn decode(bytes: &[u8]) -> Vec<Key> {
    keys(&mut Decoder::new(), bytes)
}

/// The characters of `keys`, which must all be `Key::Char`.
fn text(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| match k {
            Key::Char(c) => *c,
            other => panic!("not a character: {other:?}"),
        })
        .collect()
}

/// Make then break of each code: typing the keys one at a time.
fn taps(codes: &[u8]) -> Vec<u8> {
    codes.iter().flat_map(|&c| [c, up(c)]).collect()
}

#[test]
fn hello_make_and_break() {
    let keys = decode(&taps(&[H, E, L, L, O]));
    assert_eq!(text(&keys), "hello");
}

#[test]
fn break_codes_yield_nothing() {
    for code in 0..0x80u8 {
        assert_eq!(Decoder::new().feed(up(code)), None, "break of {code:#x}");
    }
}

#[test]
fn every_plain_letter_and_digit() {
    let letters = [
        0x1E, 0x30, 0x2E, 0x20, 0x12, 0x21, 0x22, 0x23, 0x17, 0x24, 0x25, 0x26, 0x32, 0x31, 0x18, 0x19, 0x10, 0x13,
        0x1F, 0x14, 0x16, 0x2F, 0x11, 0x2D, 0x15, 0x2C,
    ];
    assert_eq!(text(&decode(&taps(&letters))), "abcdefghijklmnopqrstuvwxyz");
    let digits: Vec<u8> = (0x02..=0x0B).collect();
    assert_eq!(text(&decode(&taps(&digits))), "1234567890");
}

#[test]
fn whole_us_layout_plain_and_shifted() {
    let codes: Vec<u8> = (0x02..=0x0D).chain(0x10..=0x1B).chain(0x1E..=0x29).chain([0x2B]).chain(0x2C..=0x35).collect();
    assert_eq!(text(&decode(&taps(&codes))), "1234567890-=qwertyuiop[]asdfghjkl;'`\\zxcvbnm,./");
    let mut shifted = vec![LSHIFT];
    shifted.extend(taps(&codes));
    assert_eq!(text(&decode(&shifted)), "!@#$%^&*()_+QWERTYUIOP{}ASDFGHJKL:\"~|ZXCVBNM<>?");
}

#[test]
fn shifted_symbols() {
    let mut bytes = vec![LSHIFT];
    bytes.extend(taps(&[ONE, SLASH]));
    bytes.push(up(LSHIFT));
    bytes.extend(taps(&[ONE, SLASH]));
    assert_eq!(text(&decode(&bytes)), "!?1/");
}

#[test]
fn left_and_right_shift_are_tracked_separately() {
    let mut d = Decoder::new();
    assert_eq!(keys(&mut d, &[LSHIFT, RSHIFT, up(LSHIFT), A]), [Key::Char('A')]);
    assert!(d.shift());
    assert_eq!(keys(&mut d, &[up(A), up(RSHIFT), A]), [Key::Char('a')]);
    assert!(!d.shift());
}

#[test]
fn space_tab_enter_backspace_escape() {
    let keys = decode(&taps(&[SPACE, 0x0F, 0x1C, 0x0E, 0x01]));
    assert_eq!(keys, [Key::Char(' '), Key::Tab, Key::Enter, Key::Backspace, Key::Escape]);
}

#[test]
fn caps_lock_toggles_and_affects_letters_only() {
    let mut d = Decoder::new();
    assert_eq!(keys(&mut d, &[CAPS, up(CAPS)]), []);
    assert!(d.caps_lock());
    assert_eq!(text(&keys(&mut d, &taps(&[A, ONE, SLASH]))), "A1/");
    // Shift inverts the case of letters under Caps Lock, and still shifts
    // the other keys.
    let mut shifted = vec![LSHIFT];
    shifted.extend(taps(&[A, ONE, SLASH]));
    shifted.push(up(LSHIFT));
    assert_eq!(text(&keys(&mut d, &shifted)), "a!?");
    // A second press turns it off.
    assert_eq!(text(&keys(&mut d, &[CAPS, up(CAPS), A])), "a");
    assert!(!d.caps_lock());
}

#[test]
fn held_caps_lock_repeats_toggle_once() {
    let mut d = Decoder::new();
    keys(&mut d, &[CAPS, CAPS, CAPS, CAPS]);
    assert!(d.caps_lock());
    keys(&mut d, &[up(CAPS), CAPS, CAPS, up(CAPS)]);
    assert!(!d.caps_lock());
}

#[test]
fn held_key_repeats() {
    assert_eq!(text(&decode(&[A, A, A, up(A)])), "aaa");
}

#[test]
fn extended_arrows_and_navigation() {
    let bytes = [
        0xE0, 0x48, 0xE0, 0xC8, // Up
        0xE0, 0x50, 0xE0, 0xD0, // Down
        0xE0, 0x4B, 0xE0, 0xCB, // Left
        0xE0, 0x4D, 0xE0, 0xCD, // Right
        0xE0, 0x47, 0xE0, 0xC7, // Home
        0xE0, 0x4F, 0xE0, 0xCF, // End
        0xE0, 0x53, 0xE0, 0xD3, // Delete
    ];
    let expected = [Key::Up, Key::Down, Key::Left, Key::Right, Key::Home, Key::End, Key::Delete];
    assert_eq!(decode(&bytes), expected);
}

#[test]
fn extended_break_does_not_release_the_plain_key() {
    // E0 9D is right Ctrl's release; E0 C8 is Up's. Neither must be read as
    // the release of a key on the main block (or as anything at all).
    let mut d = Decoder::new();
    assert_eq!(keys(&mut d, &[LCTRL, 0xE0, 0x1D, 0xE0, 0x9D]), []);
    assert!(d.ctrl(), "left Ctrl is still held");
    assert_eq!(keys(&mut d, &[C]), [Key::Ctrl('c')]);
}

#[test]
fn fake_shifts_are_ignored() {
    // Num Lock on: the keyboard "presses" Shift around a grey arrow.
    let mut d = Decoder::new();
    let bytes = [0xE0, 0x2A, 0xE0, 0x48, 0xE0, 0xC8, 0xE0, 0xAA, A];
    assert_eq!(keys(&mut d, &bytes), [Key::Up, Key::Char('a')]);
    assert!(!d.shift());

    // Shift held: the keyboard "releases" it around the arrow, and presses
    // it again after. The real Shift stays held throughout.
    let mut d = Decoder::new();
    let bytes = [LSHIFT, 0xE0, 0xAA, 0xE0, 0x4B, 0xE0, 0xCB, 0xE0, 0x2A, A];
    assert_eq!(keys(&mut d, &bytes), [Key::Left, Key::Char('A')]);
    let bytes = [RSHIFT, 0xE0, 0xB6, 0xE0, 0x4D, 0xE0, 0xCD, 0xE0, 0x36, up(LSHIFT), A];
    assert_eq!(keys(&mut d, &bytes), [Key::Right, Key::Char('A')]);
    assert_eq!(keys(&mut d, &[up(RSHIFT), A]), [Key::Char('a')]);
}

#[test]
fn print_screen_yields_nothing_and_keeps_shift() {
    let mut d = Decoder::new();
    assert_eq!(keys(&mut d, &[0xE0, 0x2A, 0xE0, 0x37, 0xE0, 0xB7, 0xE0, 0xAA, A]), [Key::Char('a')]);
}

#[test]
fn ctrl_c_and_other_ctrl_letters() {
    assert_eq!(decode(&[LCTRL, C, up(C), up(LCTRL)]), [Key::Ctrl('c')]);
    // Right Ctrl, Shift and Caps Lock: still lower case.
    assert_eq!(decode(&[0xE0, 0x1D, LSHIFT, A]), [Key::Ctrl('a')]);
    assert_eq!(decode(&[CAPS, up(CAPS), LCTRL, A]), [Key::Ctrl('a')]);
    // After Ctrl's release, a plain letter again.
    assert_eq!(decode(&[LCTRL, up(LCTRL), C]), [Key::Char('c')]);
}

#[test]
fn ctrl_with_non_letters() {
    // Printable non-letters give nothing; the named keys pass through.
    assert_eq!(decode(&[LCTRL, ONE, SLASH, SPACE]), []);
    assert_eq!(decode(&[LCTRL, 0x1C, 0x0E, 0xE0, 0x48]), [Key::Enter, Key::Backspace, Key::Up]);
}

#[test]
fn pause_sequence_is_ignored() {
    let mut d = Decoder::new();
    assert_eq!(keys(&mut d, &[0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5]), []);
    // Neither Ctrl (1D) nor Num Lock (45) changed.
    assert!(!d.ctrl());
    assert!(!d.num_lock());
    assert_eq!(keys(&mut d, &[A]), [Key::Char('a')]);
    // In the middle of typing, too, with Shift held.
    let bytes = [LSHIFT, H, up(H), 0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5, E, up(E)];
    assert_eq!(text(&decode(&bytes)), "HE");
}

#[test]
fn ctrl_break_yields_nothing() {
    assert_eq!(decode(&[LCTRL, 0xE0, 0x46, 0xE0, 0xC6, up(LCTRL), A]), [Key::Char('a')]);
}

#[test]
fn keypad_follows_num_lock() {
    let pad = [0x47, 0x48, 0x49, 0x4B, 0x4C, 0x4D, 0x4F, 0x50, 0x51, 0x52, 0x53];
    // Off (the initial state): navigation keys where there is a Key for one.
    let off = [Key::Home, Key::Up, Key::Left, Key::Right, Key::End, Key::Down, Key::Delete];
    assert_eq!(decode(&taps(&pad)), off);
    // On: digits and the decimal point.
    let mut d = Decoder::new();
    keys(&mut d, &[NUM, up(NUM)]);
    assert!(d.num_lock());
    assert_eq!(text(&keys(&mut d, &taps(&pad))), "7894561230.");
    // The operators do not depend on it; keypad Enter and / are extended.
    let ops = [0x37, 0xB7, 0x4A, 0xCA, 0x4E, 0xCE, 0xE0, 0x35, 0xE0, 0xB5];
    assert_eq!(text(&decode(&ops)), "*-+/");
    assert_eq!(decode(&[0xE0, 0x1C, 0xE0, 0x9C]), [Key::Enter]);
}

#[test]
fn unknown_codes_yield_nothing() {
    // F1..F10, F11, F12, Alt, Scroll Lock, and codes with no key.
    for code in (0x3B..=0x44).chain([0x57, 0x58, 0x38, 0x46, 0x54, 0x55, 0x56, 0x59, 0x7F]) {
        assert_eq!(Decoder::new().feed(code), None, "{code:#x}");
    }
    // Extended codes with no Key: right Alt, Page Up/Down, Insert, Windows keys.
    for code in [0x38, 0x49, 0x51, 0x52, 0x5B, 0x5C, 0x5D, 0x00, 0x7F] {
        assert_eq!(decode(&[0xE0, code]), [], "E0 {code:#x}");
    }
}

#[test]
fn prefix_lasts_one_byte() {
    // After E0 48 (Up), 0x48 alone is keypad 8: Up too with Num Lock off,
    // but 8 with it on, so the prefix did not stick.
    assert_eq!(decode(&[NUM, up(NUM), 0xE0, 0x48, 0x48]), [Key::Up, Key::Char('8')]);
}

#[test]
fn controller_replies_do_not_break_decoding() {
    // 0xFA (ack), 0xFE (resend), 0xEE (echo), 0x00 and 0xFF (errors), and
    // 0xAA (self-test passed; also left Shift's break).
    assert_eq!(text(&decode(&[0xFA, 0xFE, 0xEE, 0x00, 0xFF, 0xAA, H, 0xFA, E])), "he");
}

/// A small deterministic generator (xorshift64) for the shuffles below.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Checks what any output must satisfy: printable ASCII, lower case letters
/// under Ctrl.
fn check(key: Option<Key>) {
    match key {
        Some(Key::Char(c)) => assert!(c.is_ascii_graphic() || c == ' ', "{c:?}"),
        Some(Key::Ctrl(c)) => assert!(c.is_ascii_lowercase(), "{c:?}"),
        _ => {}
    }
}

#[test]
fn every_byte_in_any_order_never_panics() {
    let all: Vec<u8> = (0..=255).collect();
    let mut d = Decoder::new();
    for &b in all.iter().chain(all.iter().rev()) {
        check(d.feed(b));
    }
    // Every pair, and every pair after each prefix, from a fresh decoder.
    for prefix in [None, Some(0xE0), Some(0xE1)] {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut d = Decoder::new();
                if let Some(p) = prefix {
                    check(d.feed(p));
                }
                check(d.feed(a));
                check(d.feed(b));
            }
        }
    }
    // Shuffled sequences, weighted towards the prefixes.
    let mut state = 0x2545_f491_4f6c_dd1d;
    let mut d = Decoder::new();
    for _ in 0..200_000 {
        let r = next(&mut state);
        let byte = match r % 8 {
            0 => 0xE0,
            1 => 0xE1,
            _ => (r >> 8) as u8,
        };
        check(d.feed(byte));
    }
}

#[test]
fn decoding_recovers_after_noise() {
    // Whatever came before, a Pause tail swallows at most two bytes and a
    // prefix one: after releasing every modifier and three idle bytes
    // (0xFA acks), a letter decodes normally unless a lock is on.
    let mut state = 7;
    for _ in 0..1000 {
        let mut d = Decoder::new();
        for _ in 0..64 {
            d.feed(next(&mut state) as u8);
        }
        keys(&mut d, &[0xFA, 0xFA, 0xFA, up(LSHIFT), up(RSHIFT), up(LCTRL), 0xE0, up(LCTRL)]);
        let expected = if d.caps_lock() { 'A' } else { 'a' };
        assert_eq!(d.feed(A), Some(Key::Char(expected)));
    }
}
