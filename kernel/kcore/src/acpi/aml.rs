//! Just enough AML to read a sleep state's `SLP_TYPa`/`SLP_TYPb` values from
//! the DSDT: the package that `Name (_S5, Package () {…})` defines.
//!
//! This is not an interpreter. It walks the DSDT's definition blocks
//! (`Scope`, `Device`, `Processor`, `PowerResource`, `ThermalZone`) keeping
//! track of the scope, steps over what it does not need (methods, fields,
//! `If` blocks, operation regions, buffers and other packages), and reads
//! the one package it is asked for, whose elements must be integer
//! constants. That is what every firmware the kernel has met writes
//! (QEMU's `pc` and `q35` among them: the host tests read their DSDTs).
//! What it cannot read it reports instead of guessing:
//!
//! - a `\_Sx` that is a method (which would need an interpreter);
//! - a `\_Sx` defined inside an `If` (skipped, so not found);
//! - an opcode it does not know at the top of a scope: the rest of that
//!   scope is skipped (its length is known), and if the package is not
//!   found anywhere the error names the first such offset.
//!
//! (The rust-osdev `acpi` crate's interpreter would do all of this, but
//! needs a nightly compiler for `allocator_api`; Ferrite builds on stable.)
//!
//! Encodings are from ACPI 6.5, chapter 20 ("ACPI Machine Language
//! Specification"); the package's meaning from 7.4.2 ("\_Sx (System
//! States)"). Like the table parsers, this never panics, never loops
//! without progress and never reads out of bounds, on any input (the host
//! tests fuzz it); recursion is bounded by [`MAX_DEPTH`].
use super::{AcpiError, SdtHeader};

/// The `SLP_TYPx` values that put the machine into a sleep state: what is
/// written to the `SLP_TYP` field of PM1a's and PM1b's control registers
/// (or, on hardware-reduced ACPI, of the sleep control register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepType {
    /// For PM1a (and the sleep control register).
    pub a: u8,
    /// For PM1b.
    pub b: u8,
}

/// The deepest nesting of scopes this reader follows: real DSDTs nest a
/// handful deep (`\_SB.PCI0.ISA.…`).
pub const MAX_DEPTH: usize = 16;

/// One-byte opcodes.
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ALIAS_OP: u8 = 0x06;
const NAME_OP: u8 = 0x08;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const STRING_PREFIX: u8 = 0x0d;
const QWORD_PREFIX: u8 = 0x0e;
const SCOPE_OP: u8 = 0x10;
const BUFFER_OP: u8 = 0x11;
const PACKAGE_OP: u8 = 0x12;
const VAR_PACKAGE_OP: u8 = 0x13;
const METHOD_OP: u8 = 0x14;
const EXTERNAL_OP: u8 = 0x15;
const EXT_OP_PREFIX: u8 = 0x5b;
const IF_OP: u8 = 0xa0;
const ELSE_OP: u8 = 0xa1;
const WHILE_OP: u8 = 0xa2;
const ONES_OP: u8 = 0xff;
/// Second bytes after [`EXT_OP_PREFIX`].
const MUTEX_OP: u8 = 0x01;
const EVENT_OP: u8 = 0x02;
const REVISION_OP: u8 = 0x30;
const OP_REGION_OP: u8 = 0x80;
const FIELD_OP: u8 = 0x81;
const DEVICE_OP: u8 = 0x82;
const PROCESSOR_OP: u8 = 0x83;
const POWER_RES_OP: u8 = 0x84;
const THERMAL_ZONE_OP: u8 = 0x85;
const INDEX_FIELD_OP: u8 = 0x86;
const BANK_FIELD_OP: u8 = 0x87;
/// Name string prefixes.
const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX: u8 = b'^';
const DUAL_NAME_PREFIX: u8 = 0x2e;
const MULTI_NAME_PREFIX: u8 = 0x2f;

/// The `SLP_TYPa`/`SLP_TYPb` values for sleep state `state` (0 to 5; 5 is
/// soft off), from the `\_S<state>` package of `dsdt`, the DSDT's bytes
/// (header included; its length field is trusted only as far as `dsdt`
/// reaches).
///
/// The package holds `SLP_TYPa` then `SLP_TYPb` (then reserved elements);
/// a package of one element packs both into its low two bytes, as some old
/// firmware does and ACPICA accepts.
pub fn sleep_type(dsdt: &[u8], state: u8) -> Result<SleepType, AcpiError> {
    let header = SdtHeader::parse(dsdt)?;
    if header.signature != *b"DSDT" {
        return Err(AcpiError::BadSignature { expected: *b"DSDT", found: header.signature });
    }
    let aml = &dsdt[..(header.length as usize).clamp(SdtHeader::SIZE, dsdt.len())];
    if state > 5 {
        return Err(AcpiError::NoSleepState(state));
    }
    let mut target = Path::root();
    target.segs[0] = [b'_', b'S', b'0' + state, b'_'];
    target.len = 1;
    let mut walker = Walker { aml, target, skipped: None };
    match walker.term_list(SdtHeader::SIZE, aml.len(), Path::root(), 0) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(walker.skipped.map_or(AcpiError::NoSleepState(state), |offset| AcpiError::BadAml {
            offset,
            why: "unknown opcode (the rest of its scope was skipped)",
        })),
        Err(e) => Err(e),
    }
}

/// An absolute name in the namespace: its segments from the root.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Path {
    segs: [[u8; 4]; MAX_DEPTH],
    len: usize,
}

impl Path {
    const fn root() -> Self {
        Self { segs: [[0; 4]; MAX_DEPTH], len: 0 }
    }

    fn child(mut self, seg: [u8; 4]) -> Option<Self> {
        *self.segs.get_mut(self.len)? = seg;
        self.len += 1;
        Some(self)
    }
}

/// What a name string says: absolute, or relative to the scope `up`
/// levels above the current one; then its segments (at most
/// [`MAX_DEPTH`]: more could not name anything this reader follows).
struct NameString<'a> {
    absolute: bool,
    up: usize,
    segs: &'a [u8],
}

impl NameString<'_> {
    /// The absolute path this name defines in `scope`, or None if it
    /// climbs above the root or nests too deep.
    fn resolve(&self, scope: Path) -> Option<Path> {
        let mut path = if self.absolute { Path::root() } else { scope };
        path.len = path.len.checked_sub(self.up)?;
        for seg in self.segs.chunks_exact(4) {
            path = path.child([seg[0], seg[1], seg[2], seg[3]])?;
        }
        Some(path)
    }
}

/// What one term came to.
enum Step {
    /// It ends here.
    Next(usize),
    /// It is, or holds, the target package.
    Found(SleepType),
    /// An opcode the walker does not know.
    Unknown,
}

struct Walker<'a> {
    aml: &'a [u8],
    target: Path,
    /// The first offset where an unknown opcode made the walker skip the
    /// rest of a scope.
    skipped: Option<usize>,
}

/// Shorthand for a malformed-AML error at `offset`.
fn bad(offset: usize, why: &'static str) -> AcpiError {
    AcpiError::BadAml { offset, why }
}

impl<'a> Walker<'a> {
    fn byte(&self, at: usize, end: usize) -> Result<u8, AcpiError> {
        if at < end {
            self.aml.get(at).copied().ok_or(bad(at, "truncated"))
        } else {
            Err(bad(at, "runs past the end of its package"))
        }
    }

    /// A PkgLength at `at`: returns where its package ends (the length
    /// counts the PkgLength bytes themselves) and where its contents
    /// start. The package must fit in `end`.
    fn pkg_length(&self, at: usize, end: usize) -> Result<(usize, usize), AcpiError> {
        let lead = self.byte(at, end)?;
        let follow = usize::from(lead >> 6);
        let mut length = if follow == 0 { usize::from(lead & 0x3f) } else { usize::from(lead & 0x0f) };
        for i in 0..follow {
            length |= usize::from(self.byte(at + 1 + i, end)?) << (4 + 8 * i);
        }
        let pkg_end = at + length;
        if length < 1 + follow || pkg_end > end {
            return Err(bad(at, "package length out of bounds"));
        }
        Ok((pkg_end, at + 1 + follow))
    }

    /// A NameString at `at`; returns it and where it ends.
    fn name_string(&self, mut at: usize, end: usize) -> Result<(NameString<'a>, usize), AcpiError> {
        let start = at;
        let mut absolute = false;
        let mut up = 0;
        if self.byte(at, end)? == ROOT_CHAR {
            absolute = true;
            at += 1;
        } else {
            while self.byte(at, end)? == PARENT_PREFIX {
                up += 1;
                at += 1;
            }
        }
        let (count, first) = match self.byte(at, end)? {
            ZERO_OP => (0, at + 1),
            DUAL_NAME_PREFIX => (2, at + 1),
            MULTI_NAME_PREFIX => (usize::from(self.byte(at + 1, end)?), at + 2),
            b'A'..=b'Z' | b'_' => (1, at),
            _ => return Err(bad(start, "not a name")),
        };
        let segs_end = first + 4 * count;
        if segs_end > end || count > MAX_DEPTH {
            return Err(bad(start, "name runs past its package or nests too deep"));
        }
        let segs = &self.aml[first..segs_end];
        Ok((NameString { absolute, up, segs }, segs_end))
    }

    /// Walks the terms in `at..end`, defined in `scope`, `depth` scopes
    /// deep; returns the sleep type once the target package is found.
    fn term_list(
        &mut self,
        mut at: usize,
        end: usize,
        scope: Path,
        depth: usize,
    ) -> Result<Option<SleepType>, AcpiError> {
        if depth >= MAX_DEPTH {
            return Err(bad(at, "scopes nest too deep"));
        }
        while at < end {
            match self.term(at, end, scope, depth)? {
                Step::Found(found) => return Ok(Some(found)),
                Step::Next(next) if next <= end => at = next,
                Step::Next(_) => return Err(bad(at, "runs past the end of its package")),
                Step::Unknown => {
                    self.skipped.get_or_insert(at);
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// The term at `at`: where it ends, or the target's sleep type.
    fn term(&mut self, at: usize, end: usize, scope: Path, depth: usize) -> Result<Step, AcpiError> {
        let next = match self.byte(at, end)? {
            SCOPE_OP => return self.scope(at, at + 1, 0, end, scope, depth),
            NAME_OP => {
                let (name, value) = self.name_string(at + 1, end)?;
                if name.resolve(scope) == Some(self.target) {
                    return self.package(value, end).map(Step::Found);
                }
                self.data_object(value, end)?
            }
            METHOD_OP => {
                let (pkg_end, body) = self.pkg_length(at + 1, end)?;
                let (name, _) = self.name_string(body, pkg_end)?;
                if name.resolve(scope) == Some(self.target) {
                    return Err(bad(at, "the sleep state is a method; only packages are read"));
                }
                pkg_end
            }
            IF_OP | ELSE_OP | WHILE_OP => self.pkg_length(at + 1, end)?.0,
            ALIAS_OP => {
                let (_, after) = self.name_string(at + 1, end)?;
                self.name_string(after, end)?.1
            }
            // Name, object type (1), argument count (1).
            EXTERNAL_OP => self.name_string(at + 1, end)?.1 + 2,
            EXT_OP_PREFIX => match self.byte(at + 1, end)? {
                DEVICE_OP | THERMAL_ZONE_OP => return self.scope(at, at + 2, 0, end, scope, depth),
                // Processor ID (1), PBLK address (4) and length (1).
                PROCESSOR_OP => return self.scope(at, at + 2, 6, end, scope, depth),
                // System level (1) and resource order (2).
                POWER_RES_OP => return self.scope(at, at + 2, 3, end, scope, depth),
                FIELD_OP | INDEX_FIELD_OP | BANK_FIELD_OP => self.pkg_length(at + 2, end)?.0,
                // Name, sync level (1).
                MUTEX_OP => self.name_string(at + 2, end)?.1 + 1,
                EVENT_OP => self.name_string(at + 2, end)?.1,
                OP_REGION_OP => {
                    // Name, space (1), then offset and length.
                    let after = self.name_string(at + 2, end)?.1 + 1;
                    let after = self.operand(after, end)?;
                    self.operand(after, end)?
                }
                _ => return Ok(Step::Unknown),
            },
            _ => return Ok(Step::Unknown),
        };
        Ok(Step::Next(next))
    }

    /// A scope-like definition at `op`: the PkgLength at `pkg`, a name,
    /// `fixed` bytes of its own, then a term list, walked in the new scope.
    fn scope(
        &mut self,
        op: usize,
        pkg: usize,
        fixed: usize,
        end: usize,
        scope: Path,
        depth: usize,
    ) -> Result<Step, AcpiError> {
        let (pkg_end, body) = self.pkg_length(pkg, end)?;
        let (name, after) = self.name_string(body, pkg_end)?;
        let inner = name.resolve(scope).ok_or(bad(op, "scope name climbs above the root or nests too deep"))?;
        let terms = after + fixed;
        if terms > pkg_end {
            return Err(bad(op, "runs past the end of its package"));
        }
        Ok(match self.term_list(terms, pkg_end, inner, depth + 1)? {
            Some(found) => Step::Found(found),
            None => Step::Next(pkg_end),
        })
    }

    /// An operand of an operation region: an integer constant or a name.
    fn operand(&self, at: usize, end: usize) -> Result<usize, AcpiError> {
        match self.byte(at, end)? {
            b'A'..=b'Z' | b'_' | ROOT_CHAR | PARENT_PREFIX | DUAL_NAME_PREFIX | MULTI_NAME_PREFIX => {
                Ok(self.name_string(at, end)?.1)
            }
            _ => self.integer(at, end).map(|(_, next)| next),
        }
    }

    /// An integer constant at `at`: its value and where it ends.
    fn integer(&self, at: usize, end: usize) -> Result<(u64, usize), AcpiError> {
        let width = match self.byte(at, end)? {
            ZERO_OP => return Ok((0, at + 1)),
            ONE_OP => return Ok((1, at + 1)),
            ONES_OP => return Ok((u64::MAX, at + 1)),
            BYTE_PREFIX => 1,
            WORD_PREFIX => 2,
            DWORD_PREFIX => 4,
            QWORD_PREFIX => 8,
            _ => return Err(bad(at, "not an integer constant")),
        };
        let bytes = self.aml.get(at + 1..at + 1 + width).filter(|_| at + 1 + width <= end);
        let bytes = bytes.ok_or(bad(at, "integer runs past the end of its package"))?;
        let value = bytes.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        Ok((value, at + 1 + width))
    }

    /// Skips a data object (the value of a `Name`): an integer, a string,
    /// a buffer or a package.
    fn data_object(&self, at: usize, end: usize) -> Result<usize, AcpiError> {
        match self.byte(at, end)? {
            STRING_PREFIX => {
                let text = self.aml.get(at + 1..end).unwrap_or_default();
                let nul = text.iter().position(|&b| b == 0).ok_or(bad(at, "string without its NUL"))?;
                Ok(at + 1 + nul + 1)
            }
            BUFFER_OP | PACKAGE_OP | VAR_PACKAGE_OP => Ok(self.pkg_length(at + 1, end)?.0),
            EXT_OP_PREFIX if self.byte(at + 1, end)? == REVISION_OP => Ok(at + 2),
            _ => self.integer(at, end).map(|(_, next)| next),
        }
    }

    /// The target's package at `at`: its first two elements (or the one
    /// element that packs both), which must be integer constants.
    fn package(&self, at: usize, end: usize) -> Result<SleepType, AcpiError> {
        if self.byte(at, end)? != PACKAGE_OP {
            return Err(bad(at, "the sleep state is not a package of constants"));
        }
        let (pkg_end, body) = self.pkg_length(at + 1, end)?;
        let count = self.byte(body, pkg_end)?;
        let (first, next) = self.integer(body + 1, pkg_end)?;
        match count {
            0 => Err(bad(body, "empty sleep state package")),
            1 => Ok(SleepType { a: first as u8, b: (first >> 8) as u8 }),
            _ => {
                let (second, _) = self.integer(next, pkg_end)?;
                Ok(SleepType { a: first as u8, b: second as u8 })
            }
        }
    }
}
