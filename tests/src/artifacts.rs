//! Build products a boot needs: the kernel ELF and the user programs (built
//! once per test process) and one ISO per distinct kernel command line (also
//! once per process).
//!
//! Both are cached behind `OnceLock`s so that the many tests of one binary,
//! running on several threads, share a single `make` and a single
//! `grub-mkrescue` per command line instead of racing to rebuild them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

/// A build product made at most once: its path, or why it could not be made.
type Built = OnceLock<Result<PathBuf, String>>;

/// The repository root: the workspace directory above this crate.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives inside the repository").to_path_buf()
}

/// `<root>/build`, where the Makefile puts everything it produces.
pub fn build_dir() -> PathBuf {
    root().join("build")
}

/// Builds the kernel and the user programs with `make -C <root> kernel user`
/// the first time it is called in this process and returns
/// `<root>/build/ferrite.elf`. The programs land in `<root>/build/user/`,
/// where `scripts/mkiso.sh` takes them from.
///
/// # Panics
///
/// If make fails (with its output in the message), and in every later call
/// too, so each test reports the real cause instead of a missing file.
pub fn kernel() -> PathBuf {
    static KERNEL: Built = OnceLock::new();
    KERNEL.get_or_init(build_kernel).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn build_kernel() -> Result<PathBuf, String> {
    let root = root();
    let command = format!("make -C {} kernel user", root.display());
    let mut make = Command::new("make");
    make.arg("-C").arg(&root).arg("kernel").arg("user");
    // The Makefile copies the kernel ELF out of `<root>/target`; a
    // CARGO_TARGET_DIR inherited from whoever runs `cargo test` would send
    // the kernel build elsewhere and make that copy fail.
    make.env_remove("CARGO_TARGET_DIR");
    let output = make.output().map_err(|e| format!("cannot run `{command}`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`{command}` failed ({}):\n{}", output.status, combined(&output)));
    }
    let elf = build_dir().join("ferrite.elf");
    let init = build_dir().join("user").join("init");
    for product in [&elf, &init] {
        if !product.is_file() {
            return Err(format!("`{command}` succeeded but {} is missing", product.display()));
        }
    }
    Ok(elf)
}

/// Which kernel ELF an ISO holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Image {
    /// `build/ferrite.elf`.
    AsBuilt,
    /// The same, but asking GRUB to load it as high as it may
    /// ([`kernel_loaded_high`]).
    LoadedHigh,
}

/// The ISO for kernel command line `cmdline`, with the kernel `image` and
/// GRUB's `gfxpayload` set to `gfxpayload` (if given), made once per
/// process: `build/test-iso/<slug>.iso` (`high-<slug>.iso` for
/// [`Image::LoadedHigh`], `gfx-<mode>-…` with a gfxpayload).
///
/// # Panics
///
/// If the kernel cannot be built or `mkiso.sh` fails.
pub fn iso_of(image: Image, gfxpayload: Option<&str>, cmdline: &str) -> PathBuf {
    // One cell per image and command line, so different ones build in
    // parallel while the same one is built only once.
    type Cells = Mutex<HashMap<(Image, Option<String>, String), Arc<Built>>>;
    static ISOS: OnceLock<Cells> = OnceLock::new();
    let (kernel, mut name) = match image {
        Image::AsBuilt => (kernel(), slug(cmdline)),
        Image::LoadedHigh => (kernel_loaded_high(), format!("high-{}", slug(cmdline))),
    };
    if let Some(mode) = gfxpayload {
        name = format!("gfx-{}-{name}", slug(mode));
    }
    let cell = {
        let mut isos = ISOS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(isos.entry((image, gfxpayload.map(str::to_owned), cmdline.to_owned())).or_default())
    };
    cell.get_or_init(|| make_iso(&kernel, &name, gfxpayload, cmdline)).clone().unwrap_or_else(|e| panic!("{e}"))
}

/// `build/ferrite-high.elf`: the kernel with its multiboot2 relocatable
/// tag's load preference set to "highest", so that GRUB loads it as near
/// the tag's upper bound as memory allows instead of at its link address.
/// Only the tag changes (the header's checksum covers its first four
/// fields, not its tags).
pub fn kernel_loaded_high() -> PathBuf {
    static HIGH: Built = OnceLock::new();
    HIGH.get_or_init(|| {
        let mut elf = std::fs::read(kernel()).map_err(|e| format!("cannot read the kernel: {e}"))?;
        set_load_preference(&mut elf, PREFER_HIGHEST)?;
        let path = build_dir().join("ferrite-high.elf");
        let staging = build_dir().join(format!("ferrite-high.elf.{}", std::process::id()));
        std::fs::write(&staging, &elf)
            .and_then(|()| std::fs::rename(&staging, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

const MB2_HEADER_MAGIC: u32 = 0xe852_50d6;
const MB2_TAG_RELOCATABLE: u16 = 10;
const PREFER_HIGHEST: u32 = 2;

/// Sets the load preference (0 none, 1 lowest, 2 highest) of the
/// relocatable tag in the multiboot2 header of the image `elf` (within its
/// first 32 KiB, 8-byte aligned, as the spec places it).
fn set_load_preference(elf: &mut [u8], preference: u32) -> Result<(), String> {
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")));
    let header = (0..elf.len().min(32 * 1024))
        .step_by(8)
        .find(|&at| {
            u32_at(elf, at) == Some(MB2_HEADER_MAGIC)
                && [at + 4, at + 8, at + 12]
                    .iter()
                    .map(|&f| u32_at(elf, f))
                    .collect::<Option<Vec<_>>>()
                    .is_some_and(|f| f[0].wrapping_add(f[1]).wrapping_add(f[2]).wrapping_add(MB2_HEADER_MAGIC) == 0)
        })
        .ok_or("no multiboot2 header in the kernel's first 32 KiB")?;
    let end = header + u32_at(elf, header + 8).ok_or("truncated header")? as usize;
    let mut tag = header + 16;
    while tag + 8 <= end {
        let kind = u16::from_le_bytes([elf[tag], elf[tag + 1]]);
        let size = u32_at(elf, tag + 4).ok_or("truncated tag")? as usize;
        if kind == 0 || size < 8 {
            break;
        }
        if kind == MB2_TAG_RELOCATABLE && size >= 24 {
            elf.get_mut(tag + 20..tag + 24).ok_or("truncated tag")?.copy_from_slice(&preference.to_le_bytes());
            return Ok(());
        }
        tag += size.div_ceil(8) * 8;
    }
    Err("the multiboot2 header has no relocatable tag".into())
}

fn make_iso(kernel: &Path, name: &str, gfxpayload: Option<&str>, cmdline: &str) -> Result<PathBuf, String> {
    let dir = build_dir().join("test-iso");
    let iso = dir.join(format!("{name}.iso"));
    // mkiso.sh writes to a name of our own, renamed into place afterwards, so
    // that another test process making the same ISO at the same moment never
    // shares its temporary file, and a QEMU already booting the old image
    // keeps its (unlinked) copy.
    let staging = dir.join(format!("{name}.iso.{}", std::process::id()));
    let script = root().join("scripts/mkiso.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(kernel)
        .arg(&staging)
        .arg(cmdline)
        // A GRUB menu delay meant for a USB stick would only slow every boot.
        .env("GRUB_TIMEOUT", "0")
        .env("GFXPAYLOAD", gfxpayload.unwrap_or(""))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "mkiso.sh for command line {cmdline:?} failed ({}):\n{}",
            output.status,
            combined(&output)
        ));
    }
    std::fs::rename(&staging, &iso)
        .map_err(|e| format!("cannot move {} to {}: {e}", staging.display(), iso.display()))?;
    Ok(iso)
}

/// A file-name-safe, unique name for a kernel command line: its text with
/// everything but ASCII letters, digits, `-` and `_` replaced by `_`
/// (shortened to 48 characters, so it stays readable), then `-` and a 64-bit
/// FNV-1a hash of the exact text in hex (so two command lines that sanitize
/// alike still get different files).
pub fn slug(cmdline: &str) -> String {
    let mut text: String = cmdline
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(48)
        .collect();
    if text.is_empty() {
        text.push_str("empty");
    }
    format!("{text}-{:016x}", fnv1a(cmdline.as_bytes()))
}

/// FNV-1a, 64 bit. std's `DefaultHasher` is not promised to be stable across
/// Rust releases, and ISO names outlive one test run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A command's stdout followed by its stderr, for error messages.
fn combined(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_preference_is_patched_in_the_relocatable_tag() {
        // Padding, then a header (magic, arch, length, checksum), a module
        // alignment tag, the relocatable tag and the end tag.
        let mut elf = vec![0u8; 24];
        let words = |v: &mut Vec<u8>, w: &[u32]| w.iter().for_each(|x| v.extend_from_slice(&x.to_le_bytes()));
        let len = 16 + 8 + 24 + 8;
        words(&mut elf, &[MB2_HEADER_MAGIC, 0, len, 0u32.wrapping_sub(MB2_HEADER_MAGIC + len)]);
        words(&mut elf, &[6, 8]);
        words(&mut elf, &[10, 24, 0x20_0000, 0x4000_0000, 4096, 1]);
        words(&mut elf, &[0, 8]);
        let mut patched = elf.clone();
        set_load_preference(&mut patched, PREFER_HIGHEST).unwrap();
        let at = 24 + 16 + 8 + 20;
        assert_eq!(patched[at..at + 4], 2u32.to_le_bytes());
        patched[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(patched, elf, "nothing else changed");
        // A bad checksum is not a header.
        elf[24 + 12] ^= 1;
        assert!(set_load_preference(&mut elf, PREFER_HIGHEST).is_err());
    }

    #[test]
    fn slug_keeps_readable_text() {
        let s = slug("test=all log=debug");
        assert!(s.starts_with("test_all_log_debug-"), "{s}");
        assert_eq!(s.len(), "test_all_log_debug-".len() + 16);
    }

    #[test]
    fn slug_is_file_name_safe() {
        for cmdline in ["", "a/b", "../../etc", "x y\tz", "ünïcode", ".hidden", "a\0b"] {
            let s = slug(cmdline);
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{cmdline:?} -> {s}");
            assert!(!s.starts_with('-'), "{s}");
        }
        assert!(slug("").starts_with("empty-"));
    }

    #[test]
    fn slug_is_unique_and_stable() {
        // These sanitize to the same text; the hash tells them apart.
        assert_ne!(slug("a=b"), slug("a b"));
        assert_ne!(slug(""), slug("empty"));
        let long = "x".repeat(200);
        assert_ne!(slug(&long), slug(&"x".repeat(201)));
        assert!(slug(&long).len() <= 48 + 17);
        assert_eq!(slug("test=all"), slug("test=all"));
        // Pinned so a change to the hash (and so to cached file names) is
        // deliberate.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
