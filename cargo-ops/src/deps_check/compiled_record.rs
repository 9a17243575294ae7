//! What rustc compiled, not what the scan guessed. deps-check builds the library of every
//! pack, contract and shared crate and reads rustc's own record of that build, its
//! dep-info: every source file it read (modules wherever they were declared, every
//! `include_*!` file) and every environment variable it read (`env!`, `option_env!`, under
//! any name or macro). A file outside the crate's `src/` and `migrations/`, or an
//! environment read other than Cargo's `CARGO_PKG_*` and `CARGO_MANIFEST_DIR`, is refused.
//! A crate that does not build has no record, and is refused for that.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use cargo_metadata::{Message, Package, PackageId};

use super::Violation;

/// Environment variables a pack's build may read: Cargo's description of the package.
fn allowed_environment(name: &str) -> bool {
    name.starts_with("CARGO_PKG_") || name == "CARGO_MANIFEST_DIR"
}

/// `workspace_root` is where cargo runs rustc, which names the files of workspace members
/// relative to it.
pub fn violations(
    manifest_path: &Path,
    workspace_root: &Path,
    packages: &[&Package],
) -> anyhow::Result<Vec<Violation>> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let (records, build_errors) = build(manifest_path, packages)?;
    let mut violations = Vec::new();
    for package in packages {
        let name = package.name.to_string();
        let Some(record) = records.get(&package.id) else {
            violations.push(Violation {
                rule: "sandbox/compiled-record",
                from: name.clone(),
                to: "lib".into(),
                message: format!(
                    "cargo could not build its library, so there is no record of what rustc read for it{}",
                    if build_errors.is_empty() {
                        String::new()
                    } else {
                        format!(": {build_errors}")
                    }
                ),
                fix: format!("make `cargo build -p {name} --lib` succeed, then run deps-check again"),
            });
            continue;
        };
        let folder = canonical(
            package
                .manifest_path
                .parent()
                .map_or(Path::new("."), |p| p.as_std_path()),
        );
        let allowed = [folder.join("src"), folder.join("migrations")];
        for file in &record.files {
            let file = canonical(&workspace_root.join(file));
            if !allowed.iter().any(|dir| file.starts_with(dir)) {
                violations.push(Violation {
                    rule: "sandbox/compiled-file",
                    from: name.clone(),
                    to: file.display().to_string(),
                    message: "rustc read this file into the crate, and it is outside the crate's `src/` and `migrations/`".into(),
                    fix: "keep the crate's code under `src/` and its SQL under `migrations/`; data a pack needs comes through a connector".into(),
                });
            }
        }
        for variable in record
            .environment
            .iter()
            .filter(|v| !allowed_environment(v))
        {
            violations.push(Violation {
                rule: "sandbox/compiled-environment",
                from: name.clone(),
                to: variable.clone(),
                message: format!(
                    "rustc read the build machine's `{variable}` into the crate; a pack's build reads only Cargo's `CARGO_PKG_*` and `CARGO_MANIFEST_DIR`"
                ),
                fix: "take configuration from the host, and hold a credential as a `SecretHandle`".into(),
            });
        }
    }
    Ok(violations)
}

/// What rustc's dep-info says one build of a library read.
struct Record {
    files: Vec<PathBuf>,
    environment: Vec<String>,
}

/// Builds the libraries of `packages` and reads the dep-info of each one that built; with the
/// first errors cargo printed, when any did not.
fn build(
    manifest_path: &Path,
    packages: &[&Package],
) -> anyhow::Result<(BTreeMap<PackageId, Record>, String)> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command
        .args([
            "build",
            "--lib",
            "--message-format=json",
            "--quiet",
            "--manifest-path",
        ])
        .arg(manifest_path);
    for package in packages {
        command.args(["-p", &format!("{}@{}", package.name, package.version)]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `cargo build` for rustc's record of pack code")?;
    let stdout = child.stdout.take().expect("piped");
    // Drained aside, so a long error output cannot stall cargo while its messages are read.
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).ok();
        text.lines()
            .filter(|line| line.starts_with("error"))
            .take(3)
            .collect::<Vec<_>>()
            .join("; ")
    });
    let mut records = BTreeMap::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let Message::CompilerArtifact(artifact) =
            message.context("reading `cargo build` output")?
        else {
            continue;
        };
        if !packages.iter().any(|p| p.id == artifact.package_id) {
            continue;
        }
        let dep_info = artifact
            .filenames
            .iter()
            .find_map(|file| dep_info_of(file.as_std_path()));
        if let Some(record) = dep_info.and_then(|path| read_dep_info(&path)) {
            records.insert(artifact.package_id.clone(), record);
        }
    }
    child.wait().context("waiting for `cargo build`")?;
    Ok((records, errors.join().unwrap_or_default()))
}

/// `deps/libname-hash.rlib` (or `.rmeta`) → `deps/name-hash.d`, which rustc writes beside it.
fn dep_info_of(artifact: &Path) -> Option<PathBuf> {
    let stem = artifact.file_stem()?.to_str()?;
    let stem = stem.strip_prefix("lib").unwrap_or(stem);
    let path = artifact.with_file_name(format!("{stem}.d"));
    path.is_file().then_some(path)
}

/// The files of the first rule (everything the output depends on) and the `# env-dep:`
/// lines of a Makefile-style dep-info file.
fn read_dep_info(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut record = Record {
        files: Vec::new(),
        environment: Vec::new(),
    };
    let mut first_rule = true;
    for line in text.lines() {
        if let Some(variable) = line.strip_prefix("# env-dep:") {
            let name = variable.split_once('=').map_or(variable, |(name, _)| name);
            record.environment.push(name.to_owned());
        } else if first_rule && let Some((_, files)) = split_rule(line) {
            record.files = unescaped_words(files)
                .into_iter()
                .map(PathBuf::from)
                .collect();
            first_rule = false;
        }
    }
    Some(record)
}

/// `target: dependencies`, split at the first `: ` that is not escaped.
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .find(|&i| {
            bytes[i] == b':'
                && (bytes[i + 1] == b' ' || i + 1 == bytes.len())
                && (i == 0 || bytes[i - 1] != b'\\')
        })
        .map(|i| (&line[..i], &line[i + 1..]))
}

/// Words separated by spaces, `\ ` standing for a space inside one.
fn unescaped_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                word.push(' ');
                chars.next();
            }
            ' ' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_gives_every_file_and_environment_read() {
        let dir = std::env::temp_dir().join(format!("ops-dep-info-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pack_x-0123.d");
        std::fs::write(
            &path,
            "/t/deps/pack_x-0123.d: /w/pack-x/src/lib.rs /w/my\\ dir/secret.key\n\n/w/pack-x/src/lib.rs:\n/w/my\\ dir/secret.key:\n\n# env-dep:CARGO_PKG_NAME=pack-x\n# env-dep:HOME\n",
        )
        .unwrap();
        let record = read_dep_info(&path).unwrap();
        assert_eq!(
            record.files,
            [
                PathBuf::from("/w/pack-x/src/lib.rs"),
                PathBuf::from("/w/my dir/secret.key")
            ]
        );
        assert_eq!(record.environment, ["CARGO_PKG_NAME", "HOME"]);
        assert!(!allowed_environment("HOME") && allowed_environment("CARGO_PKG_NAME"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
