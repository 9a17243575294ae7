//! `ops-host`: this repository's host, built like any team's: `build.rs` links every
//! `pack-*` dependency of `host/Cargo.toml`, and the library does the rest.

ops_host::main!();
