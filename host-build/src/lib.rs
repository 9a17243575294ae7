//! For a host crate's `build.rs`: installing a pack is one line in the host's
//! `[dependencies]`. [`link_installed_packs`] turns every `pack-*` dependency into an
//! `extern crate` so its `inventory` registrations are linked even though no host code
//! names the pack, and records the list of installed packs, in `OUT_DIR/installed_packs.rs`,
//! which `ops_host::main!()` includes.
//!
//! A team's host crate's `build.rs` is this one call:
//!
//! ```no_run
//! ops_host_build::link_installed_packs();
//! ```

use std::fmt::Write as _;
use std::path::Path;

/// Reads the manifest of the crate being built and writes its packs' links; cargo runs the
/// build script again when the manifest changes.
pub fn link_installed_packs() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let manifest_path = Path::new(&manifest_dir).join("Cargo.toml");
    println!("cargo::rerun-if-changed={}", manifest_path.display());
    let text = std::fs::read_to_string(&manifest_path).expect("the host's Cargo.toml is readable");
    let manifest: toml::Table = text.parse().expect("the host's Cargo.toml is valid TOML");
    let mut packs: Vec<String> = manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| {
            deps.keys()
                .filter(|name| name.starts_with("pack-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    packs.sort();
    let mut generated = String::new();
    for pack in &packs {
        writeln!(generated, "extern crate {};", pack.replace('-', "_")).unwrap();
    }
    writeln!(
        generated,
        "/// Crates of the packs installed in this host, from its `Cargo.toml`."
    )
    .unwrap();
    writeln!(
        generated,
        "pub const INSTALLED_PACKS: &[&str] = &{packs:?};"
    )
    .unwrap();
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("installed_packs.rs"), generated)
        .expect("OUT_DIR is writable");
}
