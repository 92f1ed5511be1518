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

/// Returns an ISO whose GRUB entry boots the kernel with `cmdline`, making it
/// with `scripts/mkiso.sh` the first time this process asks for `cmdline`.
///
/// ISOs live at `build/test-iso/<slug>.iso` (see [`slug`]).
///
/// # Panics
///
/// If the kernel or the user programs cannot be built or mkiso.sh fails.
pub fn iso(cmdline: &str) -> PathBuf {
    // One cell per command line, so different command lines build in
    // parallel while the same one is built only once.
    static ISOS: OnceLock<Mutex<HashMap<String, Arc<Built>>>> = OnceLock::new();
    let kernel = kernel();
    let cell = {
        let mut isos = ISOS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(isos.entry(cmdline.to_owned()).or_default())
    };
    cell.get_or_init(|| make_iso(&kernel, cmdline)).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn make_iso(kernel: &Path, cmdline: &str) -> Result<PathBuf, String> {
    let dir = build_dir().join("test-iso");
    let iso = dir.join(format!("{}.iso", slug(cmdline)));
    // mkiso.sh writes to a name of our own, renamed into place afterwards, so
    // that another test process making the same ISO at the same moment never
    // shares its temporary file, and a QEMU already booting the old image
    // keeps its (unlinked) copy.
    let staging = dir.join(format!("{}.iso.{}", slug(cmdline), std::process::id()));
    let script = root().join("scripts/mkiso.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(kernel)
        .arg(&staging)
        .arg(cmdline)
        // A GRUB menu delay meant for a USB stick would only slow every boot.
        .env("GRUB_TIMEOUT", "0")
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
