//! No code. This crate's manifest turns on, for `ops-host` and `xtask`, the features that
//! `cargo test --workspace` builds their dependencies with, so a gate that runs one of them
//! after the tests reuses the tests' build instead of compiling it again (see `Cargo.toml`).
#![no_std]
