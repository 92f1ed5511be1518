//! Links every program as a static, non-PIE ELF executable laid out by
//! `link.ld`.
//!
//! Programs are built for the host target, `x86_64-unknown-linux-gnu`, not
//! `x86_64-unknown-none`: only the former compiles Rust with SSE (the kernel
//! saves the vector registers of every thread), and it is always installed.
//! Its default link is a dynamically linked PIE against glibc; these
//! arguments turn that into what the kernel's loader takes: no C runtime
//! start files, no libraries, no interpreter, a fixed address. They go to
//! the binaries only, through the build script, so no RUSTFLAGS are needed
//! (and `.cargo/config.toml`'s flags, which are the kernel's, apply only to
//! `x86_64-unknown-none`). The runtime supplies what libc would have: the
//! `mem*` functions and `_start`.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("-T{dir}/link.ld");
    let args = [
        // No crt1.o and friends, no libc or libgcc: the runtime is all there is.
        "-nostartfiles",
        "-nostdlib",
        // An ET_EXEC file at link.ld's fixed address, without an interpreter.
        "-static",
        "-no-pie",
        // Every section must be placed by link.ld (see there).
        "-Wl,--orphan-handling=error",
        &script,
    ];
    for arg in args {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
