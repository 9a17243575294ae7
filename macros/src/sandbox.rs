//! The sandbox rules at compile time. The first ops macro that expands in a pack, contract
//! or shared crate reads the crate's source with `ops-sandbox` and turns every finding into
//! a compile error, so `extern crate std`, `env!`, `unsafe` or a hand-written registration
//! fail the crate's own build. `deps-check` runs the same rules over crates that use no ops
//! macro.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use proc_macro2::TokenStream;
use quote::quote;

use crate::owner::{Owner, OwningCrate};

/// `compile_error!`s for the crate's findings, the first time any macro of this
/// compilation asks; nothing for ops-core, which is trusted, or when the crate was scanned.
pub fn check(owning: &OwningCrate) -> TokenStream {
    if !matches!(
        owning.owner,
        Ok(Owner::Pack { .. } | Owner::Contract { .. } | Owner::Shared { .. })
    ) {
        return quote!();
    }
    let Some(scanned) = scanned_crate() else {
        return quote!();
    };
    let root = match &scanned {
        Scanned::Package(dir) | Scanned::RootFile(dir) => dir.clone(),
    };
    static SCANNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let first_time = SCANNED
        .lock()
        .map(|mut scanned| scanned.insert(root.clone()))
        .unwrap_or(true);
    if !first_time {
        return quote!();
    }
    let (findings, base) = match &scanned {
        Scanned::Package(dir) => (ops_sandbox::scan_package(dir), dir.clone()),
        Scanned::RootFile(file) => (
            ops_sandbox::scan_root_file(file),
            file.parent().map(Path::to_owned).unwrap_or_default(),
        ),
    };
    match findings {
        Ok(findings) => findings
            .iter()
            .map(|finding| {
                let message = finding.message(&base);
                quote!(::core::compile_error!(#message);)
            })
            .collect(),
        Err(error) => {
            let message = format!("the pack sandbox cannot read the crate's source: {error}");
            quote!(::core::compile_error!(#message);)
        }
    }
}

/// What the sandbox reads of the crate being compiled.
enum Scanned {
    /// A package's library, from its manifest folder: the same crate deps-check reads.
    Package(PathBuf),
    /// A binary's root file (trybuild's cases), read alone.
    RootFile(PathBuf),
}

/// The library of the package being compiled, or for a binary (trybuild's cases) the file
/// the macro expands in.
fn scanned_crate() -> Option<Scanned> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if std::env::var_os("CARGO_BIN_NAME").is_none() {
        return Some(Scanned::Package(manifest_dir));
    }
    let file = proc_macro::Span::call_site().local_file()?;
    Some(Scanned::RootFile(file))
}
