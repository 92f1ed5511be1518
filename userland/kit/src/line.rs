//! A line editor for a console: it keeps the line being typed in a buffer of
//! fixed size and says, for each input, what the terminal should show.
//!
//! Input comes from either source a console has: bytes from a serial
//! terminal ([`Input::Byte`]) or keys from the PS/2 decoder
//! ([`Input::Key`]). The editor only appends and erases at the end of the
//! line: there is no cursor movement and no history, so arrows, Home, End,
//! Delete, Tab and Escape do nothing.
//!
//! **Serial bytes.** `\r` and `\n` end the line, and the `\n` of a `\r\n`
//! pair is dropped, so either line ending gives one line. 0x7F (DEL, what
//! most terminals send for Backspace) and 0x08 erase a character, and 0x03
//! (Ctrl-C) cancels the line. ANSI escape sequences (`ESC [ ... final`,
//! `ESC O x`, and `ESC x` for any other printable `x`) are read and dropped
//! whole, so an arrow key (`ESC [ A`) inserts nothing. One consequence: a
//! lone Escape press swallows the next printable byte, as the editor cannot
//! tell it from the start of a sequence without a timer. A control byte
//! always ends a sequence and then has its usual effect. Other control
//! bytes, and every byte above 0x7E (so all of UTF-8 beyond ASCII), are
//! ignored.
//!
//! **Line protocol.** When [`LineEditor::feed`] returns [`Edit::Line`], the
//! line is in [`LineEditor::line`] until [`LineEditor::clear`] is called or
//! the next input that does something starts a new line.

use crate::scancode::Key;

#[cfg(test)]
mod tests;

/// One input to the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A byte from a serial terminal.
    Byte(u8),
    /// A key from the keyboard decoder.
    Key(Key),
}

/// What the terminal should do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Nothing changed: print nothing.
    Nothing,
    /// This character was added to the end of the line: print it.
    Echo(char),
    /// The last character was removed: print `"\x08 \x08"` (back, blank it,
    /// back again).
    Erase,
    /// The line is complete and in [`LineEditor::line`]: print a new line,
    /// then act on it.
    Line,
    /// Ctrl-C: the line was thrown away. Print something such as `"^C\n"`
    /// and prompt again.
    Cancel,
}

/// Where the editor is in an ANSI escape sequence from a serial terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in a sequence.
    None,
    /// ESC came.
    Start,
    /// `ESC [`: parameters and intermediates up to a final byte.
    Csi,
    /// `ESC O`: one more byte.
    Ss3,
}

/// The escape byte (ESC, 0x1B).
const ESC: u8 = 0x1B;
/// End of text (Ctrl-C).
const ETX: u8 = 0x03;
/// Backspace (Ctrl-H).
const BS: u8 = 0x08;
/// Delete, sent by most terminals' Backspace key.
const DEL: u8 = 0x7F;

/// What an input asks for, once escape sequences and line endings are dealt
/// with.
enum Action {
    Insert(u8),
    Erase,
    Enter,
    Cancel,
}

/// A line being typed: at most `N` printable ASCII characters.
#[derive(Debug, Clone)]
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// The line is complete: the next action starts a new one.
    done: bool,
    /// The last input was a `\r` byte, so a `\n` now is its pair.
    after_cr: bool,
    escape: Escape,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditor<N> {
    /// An editor with an empty line.
    pub const fn new() -> Self {
        LineEditor { buf: [0; N], len: 0, done: false, after_cr: false, escape: Escape::None }
    }

    /// Takes one input and returns what to show for it. A full line refuses
    /// further characters ([`Edit::Nothing`]).
    pub fn feed(&mut self, input: Input) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        let action = match input {
            Input::Byte(b'\n') if after_cr => None,
            Input::Byte(byte) => self.byte(byte),
            Input::Key(key) => {
                self.escape = Escape::None;
                Self::key(key)
            }
        };
        match action {
            Some(action) => self.apply(action),
            None => Edit::Nothing,
        }
    }

    /// Takes one byte from a serial terminal: `feed(Input::Byte(byte))`.
    pub fn feed_byte(&mut self, byte: u8) -> Edit {
        self.feed(Input::Byte(byte))
    }

    /// Takes one decoded key: `feed(Input::Key(key))`.
    pub fn feed_key(&mut self, key: Key) -> Edit {
        self.feed(Input::Key(key))
    }

    /// The line typed so far, or the complete line after [`Edit::Line`].
    pub fn line(&self) -> &str {
        // Only printable ASCII is ever stored, so this cannot fail.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Empties the line, to start the next one. A `\n` completing a `\r\n`
    /// pair is still dropped after this.
    pub fn clear(&mut self) {
        self.len = 0;
        self.done = false;
    }

    /// What a serial byte asks for, reading escape sequences.
    fn byte(&mut self, byte: u8) -> Option<Action> {
        let printable = (0x20..=0x7E).contains(&byte);
        match self.escape {
            Escape::None => {}
            Escape::Start if byte == b'[' => {
                self.escape = Escape::Csi;
                return None;
            }
            Escape::Start if byte == b'O' => {
                self.escape = Escape::Ss3;
                return None;
            }
            // Parameter (0x30 to 0x3F) and intermediate (0x20 to 0x2F) bytes.
            Escape::Csi if (0x20..=0x3F).contains(&byte) => return None,
            // The final byte of any sequence.
            Escape::Start | Escape::Csi | Escape::Ss3 if printable => {
                self.escape = Escape::None;
                return None;
            }
            // A control byte (or one above 0x7E) breaks the sequence off,
            // then counts as itself.
            Escape::Start | Escape::Csi | Escape::Ss3 => self.escape = Escape::None,
        }
        match byte {
            b'\r' => {
                self.after_cr = true;
                Some(Action::Enter)
            }
            b'\n' => Some(Action::Enter),
            BS | DEL => Some(Action::Erase),
            ETX => Some(Action::Cancel),
            ESC => {
                self.escape = Escape::Start;
                None
            }
            _ if printable => Some(Action::Insert(byte)),
            _ => None,
        }
    }

    /// What a key asks for.
    fn key(key: Key) -> Option<Action> {
        match key {
            Key::Char(c) if c == ' ' || c.is_ascii_graphic() => Some(Action::Insert(c as u8)),
            Key::Enter => Some(Action::Enter),
            Key::Backspace => Some(Action::Erase),
            Key::Ctrl('c') => Some(Action::Cancel),
            _ => None,
        }
    }

    /// Does what an input asked for to the line.
    fn apply(&mut self, action: Action) -> Edit {
        if self.done {
            self.clear();
        }
        match action {
            Action::Insert(byte) => match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    self.len += 1;
                    Edit::Echo(char::from(byte))
                }
                None => Edit::Nothing,
            },
            Action::Erase if self.len == 0 => Edit::Nothing,
            Action::Erase => {
                self.len -= 1;
                Edit::Erase
            }
            Action::Enter => {
                self.done = true;
                Edit::Line
            }
            Action::Cancel => {
                self.clear();
                Edit::Cancel
            }
        }
    }
}
