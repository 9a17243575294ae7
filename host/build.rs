//! Installing a pack is one line in this crate's `[dependencies]`: `ops-host-build` links
//! every `pack-*` dependency, as it does for any team's host crate.

fn main() {
    ops_host_build::link_installed_packs();
}
