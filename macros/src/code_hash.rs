//! The hash of a pack crate's code, for its release (Section 3): `Cargo.toml`, `build.rs`
//! and every file under `src/` and `migrations/`, in path order, each as its path relative
//! to the crate and its bytes, both length-prefixed, under blake3 with a context of its
//! own. These are the files the crate is compiled from, so whenever one changes the crate
//! is compiled again and this macro computes the hash anew; data files the crate only
//! reads at run time (a sample source) are not its code.

use std::path::{Path, PathBuf};

/// `b3_<hex>` of the crate at `CARGO_MANIFEST_DIR`, or why it cannot be read.
pub fn of_crate() -> Result<String, String> {
    let root = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo did not set CARGO_MANIFEST_DIR")?,
    );
    let mut files = Vec::new();
    for file in ["Cargo.toml", "build.rs"] {
        if root.join(file).is_file() {
            files.push(PathBuf::from(file));
        }
    }
    for dir in ["src", "migrations"] {
        collect(&root, Path::new(dir), &mut files)?;
    }
    files.sort();
    let mut hasher = blake3::Hasher::new_derive_key("ops-core 2026 pack code");
    for file in &files {
        let name = file
            .components()
            .map(|part| part.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(root.join(file))
            .map_err(|error| format!("reading {}: {error}", file.display()))?;
        for field in [name.as_bytes(), &bytes] {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
    }
    Ok(format!("b3_{}", hasher.finalize().to_hex()))
}

/// Every file under `root/dir`, relative to `root`.
fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|error| format!("listing {}: {error}", dir.display()))?;
        let relative = dir.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|error| format!("reading {}: {error}", relative.display()))?;
        if kind.is_dir() {
            collect(root, &relative, files)?;
        } else if kind.is_file() {
            files.push(relative);
        }
    }
    Ok(())
}
