//! Ferrite's user-space kit: the parts of interactive user programs that are
//! pure logic, so that they can be unit-tested on the host.
//!
//! The pieces fit together as a console pipeline:
//!
//! 1. [`scancode::Decoder`] turns the bytes a PS/2 keyboard sends (scan code
//!    set 1, as the i8042 delivers them with translation on) into
//!    [`scancode::Key`]s.
//! 2. [`line::LineEditor`] takes those keys, or raw bytes from a serial
//!    terminal, keeps the line being typed and says what to echo
//!    ([`line::Edit`]).
//! 3. When the editor reports a complete line, [`command::parse`] turns it
//!    into a shell [`command::Command`], or a [`command::ParseError`] to print.
//!
//! The rules that keep this crate testable and usable anywhere: `no_std`, no
//! `alloc` (every buffer has a fixed size chosen by the caller), no
//! dependencies, no `unsafe`, and no input that can make it panic.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod line;
pub mod scancode;
pub mod stream;
