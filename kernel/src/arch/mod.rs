//! The architecture facade: the rest of the kernel names only what is
//! re-exported here.
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("Ferrite runs only on x86_64");
