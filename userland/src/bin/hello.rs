//! `hello`: prints its arguments and exits with the code they ask for.
//!
//! The smallest program there is, for the tests of `spawn` and `wait` and
//! for process churn: `hello a b exit=3` prints `hello: a b exit=3` and
//! exits with 3. With several `exit=<N>` words (N a decimal `u64`) the last
//! counts; without one it exits with 0. A word that does not parse is
//! printed but asks for nothing.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ferrite_user::println;

ferrite_user::entry!(main);

fn main(args: &str) -> u64 {
    println!("hello: {args}");
    args.split_whitespace().filter_map(|word| word.strip_prefix("exit=")?.parse().ok()).next_back().unwrap_or(0)
}
