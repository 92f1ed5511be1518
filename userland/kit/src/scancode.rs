//! A decoder for PS/2 keyboard scan code set 1, US layout.
//!
//! Set 1 is what a PC keyboard controller (the i8042, and QEMU's model of it)
//! delivers with translation on, the PC default. Each key press sends a make
//! code; its release sends the same code with bit 7 set (a break code).
//! Keys added after the original XT keyboard (the grey arrows, Home, End,
//! Delete, right Ctrl, keypad Enter and /) send 0xE0 first. Pause sends
//! `E1 1D 45 E1 9D C5` on press and nothing on release.
//!
//! [`Decoder`] is fed one byte at a time and keeps the state a byte alone
//! does not carry:
//!
//! - which modifiers are held: left and right Shift and Ctrl, tracked
//!   separately so releasing one while the other is held keeps it active;
//! - the Caps Lock and Num Lock toggles. A held key repeats its make code
//!   (typematic repeat), so a lock toggles only on a make code that follows a
//!   break, not on every repeat. Both start off: the decoder cannot read the
//!   keyboard's LEDs;
//! - the 0xE0 prefix, for one byte, and the two bytes still to skip after an
//!   0xE1 (Pause), so Pause changes nothing.
//!
//! With Num Lock on or Shift held, keyboards wrap the grey navigation keys in
//! "fake shift" codes (`E0 2A`, `E0 AA`, `E0 36`, `E0 B6`) so that old
//! software sees them as unshifted. These are ignored: the Shift state is
//! always that of the real Shift keys.
//!
//! Alt, the function keys, Insert, Page Up/Down, the Windows keys and the
//! lock keys themselves yield nothing, as does every code with no meaning in
//! set 1. No byte sequence can make the decoder panic.

#[cfg(test)]
mod tests;

/// A key press, decoded: what a program reading the keyboard acts on.
///
/// Only presses are reported; releases and modifier keys on their own only
/// change the [`Decoder`]'s state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable ASCII character (0x20 to 0x7E), with Shift and Caps Lock
    /// applied.
    Char(char),
    /// Enter, on the main block or the keypad.
    Enter,
    /// Backspace.
    Backspace,
    /// Tab.
    Tab,
    /// Escape.
    Escape,
    /// The up arrow (grey, or keypad 8 with Num Lock off).
    Up,
    /// The down arrow (grey, or keypad 2 with Num Lock off).
    Down,
    /// The left arrow (grey, or keypad 4 with Num Lock off).
    Left,
    /// The right arrow (grey, or keypad 6 with Num Lock off).
    Right,
    /// Delete (grey, or keypad . with Num Lock off).
    Delete,
    /// Home (grey, or keypad 7 with Num Lock off).
    Home,
    /// End (grey, or keypad 1 with Num Lock off).
    End,
    /// Ctrl held with a letter key: the letter, always lower case (Ctrl+C
    /// and Ctrl+Shift+C are both `Ctrl('c')`).
    Ctrl(char),
}

/// What the next byte means, given the bytes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    /// The next byte starts a new code.
    None,
    /// 0xE0 came: the next byte is an extended code.
    Extended,
    /// 0xE1 came: this many more bytes belong to a Pause sequence.
    Pause(u8),
}

/// The prefix byte of an extended code.
const EXTENDED: u8 = 0xE0;
/// The prefix byte of the Pause key's sequence.
const PAUSE: u8 = 0xE1;
/// How many bytes follow each 0xE1 in the Pause sequence.
const PAUSE_TAIL: u8 = 2;
/// Bit 7: set in a break (release) code.
const BREAK: u8 = 0x80;

/// Make codes the decoder treats specially (set 1, without a prefix).
mod code {
    pub const ESCAPE: u8 = 0x01;
    pub const BACKSPACE: u8 = 0x0E;
    pub const TAB: u8 = 0x0F;
    pub const ENTER: u8 = 0x1C;
    pub const CTRL: u8 = 0x1D;
    pub const LEFT_SHIFT: u8 = 0x2A;
    pub const SLASH: u8 = 0x35;
    pub const RIGHT_SHIFT: u8 = 0x36;
    pub const CAPS_LOCK: u8 = 0x3A;
    pub const NUM_LOCK: u8 = 0x45;
    pub const HOME: u8 = 0x47;
    pub const UP: u8 = 0x48;
    pub const KEYPAD_MINUS: u8 = 0x4A;
    pub const LEFT: u8 = 0x4B;
    pub const RIGHT: u8 = 0x4D;
    pub const KEYPAD_PLUS: u8 = 0x4E;
    pub const END: u8 = 0x4F;
    pub const DOWN: u8 = 0x50;
    pub const DELETE: u8 = 0x53;
}

/// The character of each make code below 0x3A without Shift; 0 where the key
/// is not a printable character. 0x37 is the keypad's `*`.
const PLAIN: &[u8; 0x3A] = b"\0\x001234567890-=\0\0qwertyuiop[]\0\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
/// The same keys with Shift held.
const SHIFTED: &[u8; 0x3A] = b"\0\0!@#$%^&*()_+\0\0QWERTYUIOP{}\0\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";

/// The keypad's make codes from 0x47 (7 / Home) to 0x53 (. / Delete): the
/// character with Num Lock on, and the key with Num Lock off, if [`Key`] has
/// one. The `-` and `+` keys (0 here) are decoded before this table.
const KEYPAD: [(u8, Option<Key>); 13] = [
    (b'7', Some(Key::Home)),
    (b'8', Some(Key::Up)),
    (b'9', None), // Page Up
    (0, None),    // -
    (b'4', Some(Key::Left)),
    (b'5', None),
    (b'6', Some(Key::Right)),
    (0, None), // +
    (b'1', Some(Key::End)),
    (b'2', Some(Key::Down)),
    (b'3', None), // Page Down
    (b'0', None), // Insert
    (b'.', Some(Key::Delete)),
];

/// A scan code set 1 decoder: feed it every byte the keyboard sends, in
/// order, and it returns the keys pressed.
#[derive(Debug, Clone)]
pub struct Decoder {
    prefix: Prefix,
    left_shift: bool,
    right_shift: bool,
    left_ctrl: bool,
    right_ctrl: bool,
    caps_lock: bool,
    caps_held: bool,
    num_lock: bool,
    num_held: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with no key held and Caps Lock and Num Lock off.
    pub const fn new() -> Self {
        Decoder {
            prefix: Prefix::None,
            left_shift: false,
            right_shift: false,
            left_ctrl: false,
            right_ctrl: false,
            caps_lock: false,
            caps_held: false,
            num_lock: false,
            num_held: false,
        }
    }

    /// Whether either Shift key is held.
    pub fn shift(&self) -> bool {
        self.left_shift || self.right_shift
    }

    /// Whether either Ctrl key is held.
    pub fn ctrl(&self) -> bool {
        self.left_ctrl || self.right_ctrl
    }

    /// Whether Caps Lock is on (for a program that sets the keyboard's LEDs).
    pub fn caps_lock(&self) -> bool {
        self.caps_lock
    }

    /// Whether Num Lock is on (for a program that sets the keyboard's LEDs).
    pub fn num_lock(&self) -> bool {
        self.num_lock
    }

    /// Takes the next byte from the keyboard; returns the key it completes a
    /// press of, or `None` for a prefix, a release, a modifier, or a code
    /// this decoder has no [`Key`] for.
    pub fn feed(&mut self, byte: u8) -> Option<Key> {
        match self.prefix {
            Prefix::Pause(left) => {
                self.prefix = if left > 1 { Prefix::Pause(left - 1) } else { Prefix::None };
                None
            }
            _ if byte == EXTENDED => {
                self.prefix = Prefix::Extended;
                None
            }
            _ if byte == PAUSE => {
                self.prefix = Prefix::Pause(PAUSE_TAIL);
                None
            }
            Prefix::Extended => {
                self.prefix = Prefix::None;
                self.extended(byte & !BREAK, byte & BREAK == 0)
            }
            Prefix::None => self.plain(byte & !BREAK, byte & BREAK == 0),
        }
    }

    /// A code without a prefix; `pressed` is false for a break code.
    fn plain(&mut self, code: u8, pressed: bool) -> Option<Key> {
        match code {
            code::LEFT_SHIFT => self.left_shift = pressed,
            code::RIGHT_SHIFT => self.right_shift = pressed,
            code::CTRL => self.left_ctrl = pressed,
            code::CAPS_LOCK => Self::toggle(&mut self.caps_lock, &mut self.caps_held, pressed),
            code::NUM_LOCK => Self::toggle(&mut self.num_lock, &mut self.num_held, pressed),
            _ if !pressed => {}
            code::ESCAPE => return Some(Key::Escape),
            code::BACKSPACE => return Some(Key::Backspace),
            code::TAB => return Some(Key::Tab),
            code::ENTER => return Some(Key::Enter),
            code::KEYPAD_MINUS => return self.ctrl_or(b'-'),
            code::KEYPAD_PLUS => return self.ctrl_or(b'+'),
            code::HOME..=code::DELETE => return self.keypad(code),
            _ => return self.character(code),
        }
        None
    }

    /// A code that followed 0xE0; `pressed` is false for a break code.
    fn extended(&mut self, code: u8, pressed: bool) -> Option<Key> {
        match code {
            // Fake shifts: the real Shift state is already known.
            code::LEFT_SHIFT | code::RIGHT_SHIFT => None,
            code::CTRL => {
                self.right_ctrl = pressed;
                None
            }
            _ if !pressed => None,
            code::ENTER => Some(Key::Enter),
            code::SLASH => self.ctrl_or(b'/'),
            code::HOME => Some(Key::Home),
            code::UP => Some(Key::Up),
            code::LEFT => Some(Key::Left),
            code::RIGHT => Some(Key::Right),
            code::END => Some(Key::End),
            code::DOWN => Some(Key::Down),
            code::DELETE => Some(Key::Delete),
            _ => None,
        }
    }

    /// Flips a lock on its key's first make code, not on its repeats.
    fn toggle(lock: &mut bool, held: &mut bool, pressed: bool) {
        if pressed && !*held {
            *lock = !*lock;
        }
        *held = pressed;
    }

    /// A press on the main block that is not a modifier or a named key.
    fn character(&self, code: u8) -> Option<Key> {
        let plain = *PLAIN.get(usize::from(code))?;
        let upper = if plain.is_ascii_lowercase() { self.shift() != self.caps_lock } else { self.shift() };
        let byte = if upper { SHIFTED[usize::from(code)] } else { plain };
        if byte == 0 {
            return None;
        }
        self.ctrl_or(byte)
    }

    /// A press on the keypad's 7 to . block (make codes 0x47 to 0x53).
    fn keypad(&self, code: u8) -> Option<Key> {
        let (digit, navigation) = *KEYPAD.get(usize::from(code.checked_sub(code::HOME)?))?;
        if !self.num_lock {
            navigation
        } else if digit != 0 {
            self.ctrl_or(digit)
        } else {
            None
        }
    }

    /// `byte` as a [`Key::Char`], or with Ctrl held, as [`Key::Ctrl`] if it
    /// is a letter and nothing otherwise.
    fn ctrl_or(&self, byte: u8) -> Option<Key> {
        if !self.ctrl() {
            Some(Key::Char(char::from(byte)))
        } else if byte.is_ascii_alphabetic() {
            Some(Key::Ctrl(char::from(byte.to_ascii_lowercase())))
        } else {
            None
        }
    }
}
