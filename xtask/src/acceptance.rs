//! `cargo xtask acceptance delete-pack <id>` (constitution Section 10): deleting a pack is
//! deleting its folders and its install line, and nothing else breaks.
//!
//! In a temporary copy of the product workspace (without the workspace-level `tests` and
//! `xtask` crates, which depend on every example pack on purpose):
//! 1. the host runs the demo with every pack, writing events and projection tables;
//! 2. the pack's folders (`packs/<id>`, `contracts/<id>`) and its lines in the manifests go;
//! 3. a pack that used the deleted contract fails at build time with cargo's error (never at
//!    run time), and is uninstalled the same way;
//! 4. no other file changed; ops-core builds and its tests pass; the host builds and runs the
//!    demo with fewer features; every event stored before is still stored, by id, and reads
//!    (`ops-host log check`: typed, or the deleted pack's as raw envelopes); its tables are
//!    left and listed by `ops-host packs orphaned`.
//!
//! Without a pack id, every pack of the workspace is deleted in turn, each in a fresh copy;
//! the copies build in one shared target directory, so each builds only what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xtask::workspace;

use crate::{Verdict, repo_root};

/// Workspace members that are tooling, not product: the copy leaves them out.
const TOOLING_MEMBERS: &[&str] = &["tests", "xtask"];

struct Copy {
    root: PathBuf,
    target: PathBuf,
}

impl Copy {
    fn cargo(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let output = workspace::cargo()
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", &self.target)
            .output()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Runs the host; its failure is this acceptance's failure.
    fn host(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["run", "--quiet", "--package", "ops-host", "--"];
        full.extend_from_slice(args);
        let (ok, stdout, stderr) = self.cargo(&full)?;
        if !ok {
            bail!("`ops-host {}` failed:\n{stderr}", args.join(" "));
        }
        Ok(stdout)
    }

    fn manifest_lines_without(&self, manifest: &Path, needles: &[String]) -> anyhow::Result<bool> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| !needles.iter().any(|needle| line.contains(needle.as_str())))
            .collect();
        let changed = kept.len() != text.lines().count();
        std::fs::write(manifest, kept.join("\n") + "\n")?;
        Ok(changed)
    }

    /// Removes a pack's folders and every manifest line that names its crates.
    fn remove_pack(&self, id: &str) -> anyhow::Result<()> {
        let crate_id = id.replace('_', "-");
        for folder in [format!("packs/{crate_id}"), format!("contracts/{crate_id}")] {
            let path = self.root.join(&folder);
            if path.exists() {
                std::fs::remove_dir_all(&path)?;
            }
        }
        let needles = vec![
            format!("\"packs/{crate_id}\""),
            format!("\"contracts/{crate_id}\""),
            format!("pack-{crate_id} "),
            format!("pack-{crate_id}."),
            format!("ops-contract-{crate_id} "),
        ];
        self.manifest_lines_without(&self.root.join("Cargo.toml"), &needles)?;
        self.manifest_lines_without(&self.root.join("host/Cargo.toml"), &needles)?;
        Ok(())
    }

    fn contents(&self) -> anyhow::Result<BTreeMap<PathBuf, Vec<u8>>> {
        workspace::files(&self.root)?
            .into_iter()
            .map(|file| Ok((file.clone(), std::fs::read(self.root.join(&file))?)))
            .collect()
    }
}

/// Packs (ids) of the copy whose manifest names `ops-contract-<id>` or `pack-<id>`.
fn dependents_of(root: &Path, id: &str) -> anyhow::Result<Vec<String>> {
    let crate_id = id.replace('_', "-");
    let mut dependents = Vec::new();
    let packs = root.join("packs");
    for entry in std::fs::read_dir(&packs)? {
        let dir = entry?.path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.contains(&format!("ops-contract-{crate_id}"))
            || manifest.contains(&format!("pack-{crate_id}."))
        {
            let name = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace('-', "_");
            if name != id {
                dependents.push(name);
            }
        }
    }
    dependents.sort();
    Ok(dependents)
}

fn check(passed: &mut bool, ok: bool, what: &str) {
    println!("{} {what}", if ok { "ok  " } else { "FAIL" });
    *passed &= ok;
}

pub fn delete_pack(id: &str, workspace_root: Option<&Path>) -> anyhow::Result<Verdict> {
    let source = workspace_root.map_or_else(repo_root, Path::to_owned);
    if !source
        .join("packs")
        .join(id.replace('_', "-"))
        .join("Cargo.toml")
        .exists()
    {
        bail!(
            "{}: there is no pack `{id}` (no packs/{id}/Cargo.toml)",
            source.display()
        );
    }
    let scratch = std::env::temp_dir().join(format!("ops-acceptance-{id}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let copy = Copy {
        root: scratch.join("workspace"),
        target: workspace::copies_target_dir(&repo_root()),
    };
    workspace::copy(&source, &copy.root)?;
    for member in TOOLING_MEMBERS {
        std::fs::remove_dir_all(copy.root.join(member))?;
        copy.manifest_lines_without(&copy.root.join("Cargo.toml"), &[format!("\"{member}\",")])?;
    }
    let data = scratch.join("ops-data");
    let data_arg = data.to_str().context("the temp dir is not UTF-8")?;
    let mut passed = true;

    println!("== before: every pack installed");
    let demo = copy.host(&["demo", "--data", data_arg])?;
    check(
        &mut passed,
        demo.contains(&format!("pack {id} ")),
        &format!("the demo runs with pack `{id}`"),
    );
    let stored_before =
        stored_events(&copy.host(&["log", "check", "--format", "json", "--data", data_arg])?)?;
    let before = copy.contents()?;

    println!("\n== delete pack `{id}`: its folders and its install line");
    copy.remove_pack(id)?;
    let dependents = dependents_of(&copy.root, id)?;
    let (builds, _, error) = copy.cargo(&["build", "--quiet", "--package", "ops-host"])?;
    if dependents.is_empty() {
        check(&mut passed, builds, "no other pack depends on it");
    } else {
        // Cargo names the contract that is gone: the build stops, the host never starts.
        let missing = format!("ops-contract-{}", id.replace('_', "-"));
        let cause = error
            .lines()
            .find(|line| line.contains(&missing))
            .unwrap_or_default();
        check(
            &mut passed,
            !builds && !cause.is_empty(),
            &format!(
                "packs using its contract ({}) fail at build time: {}",
                dependents.join(", "),
                cause.trim()
            ),
        );
        for dependent in &dependents {
            copy.remove_pack(dependent)?;
        }
        println!("     uninstalled them the same way");
    }

    let after = copy.contents()?;
    let removed: Vec<String> = [id.to_owned()]
        .into_iter()
        .chain(dependents.iter().cloned())
        .collect();
    let allowed = |file: &Path| {
        let text = file.to_string_lossy();
        ["Cargo.toml", "host/Cargo.toml", "Cargo.lock"].contains(&text.as_ref())
            || removed.iter().any(|id| {
                let id = id.replace('_', "-");
                text.starts_with(&format!("packs/{id}/"))
                    || text.starts_with(&format!("contracts/{id}/"))
            })
    };
    let changed: Vec<String> = before
        .iter()
        .filter(|(file, content)| after.get(*file) != Some(content) && !allowed(file))
        .map(|(file, _)| file.display().to_string())
        .chain(
            after
                .keys()
                .filter(|f| !before.contains_key(*f))
                .map(|f| f.display().to_string()),
        )
        .collect();
    let unchanged = if changed.is_empty() {
        "no other file changed".to_owned()
    } else {
        format!(
            "no other file changed, but these did: {}",
            changed.join(", ")
        )
    };
    check(&mut passed, changed.is_empty(), &unchanged);

    let (core_ok, _, core_error) = copy.cargo(&["test", "--quiet", "--package", "ops-core"])?;
    check(&mut passed, core_ok, "ops-core builds and its tests pass");
    if !core_ok {
        eprintln!("{core_error}");
    }

    let demo = copy.host(&["demo", "--data", data_arg])?;
    check(
        &mut passed,
        !demo.contains(&format!("pack {id} ")),
        "the host builds and runs the demo without it",
    );

    let types_after = copy.host(&["log", "types", "--data", data_arg])?;
    // The demo run after the deletion adds events of its own: what must hold is that every
    // event stored before is still stored, and reads (typed, or as a raw envelope).
    let stored_after =
        stored_events(&copy.host(&["log", "check", "--format", "json", "--data", data_arg])?)?;
    let lost: Vec<&String> = stored_before
        .keys()
        .filter(|id| !stored_after.contains_key(*id))
        .collect();
    let unreadable: Vec<String> = stored_before
        .keys()
        .filter_map(|id| {
            let reads = stored_after.get(id)?;
            (reads != "typed" && reads != "raw").then(|| format!("{id}: {reads}"))
        })
        .collect();
    check(
        &mut passed,
        lost.is_empty() && unreadable.is_empty(),
        &format!(
            "every one of the {} events stored before is still stored and reads{}",
            stored_before.len(),
            if lost.is_empty() && unreadable.is_empty() {
                String::new()
            } else {
                format!("; lost: {lost:?}; unreadable: {}", unreadable.join(", "))
            }
        ),
    );
    let namespace = format!("pack.{id}.");
    let raw = types_after
        .lines()
        .filter(|line| line.starts_with(&namespace))
        .all(|line| line.ends_with("raw envelope (type not installed)"));
    check(
        &mut passed,
        raw,
        &format!("`{namespace}*` events read as raw envelopes"),
    );
    print!("{}", indent(&types_after));

    let orphaned = copy.host(&["packs", "orphaned", "--data", data_arg])?;
    let tables_left = orphaned.lines().all(|line| {
        !line.starts_with("table ")
            || removed
                .iter()
                .any(|id| line.starts_with(&format!("table pack_{id}_")))
    });
    check(
        &mut passed,
        tables_left,
        "its tables are left in place and listed by `ops-host packs orphaned`",
    );
    print!("{}", indent(&orphaned));

    let _ = std::fs::remove_dir_all(&scratch);
    Ok(if passed {
        Verdict::Clean
    } else {
        Verdict::Violations
    })
}

/// `ops-host log check --format json`'s answer: how each stored event reads, by id.
fn stored_events(json: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(json).context("`ops-host log check` did not answer a JSON array")?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row["event_id"].as_str().unwrap_or_default().to_owned(),
                row["reads"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Every pack of the workspace deleted in turn, each in its own copy of the workspace.
pub fn delete_every_pack(workspace_root: Option<&Path>) -> anyhow::Result<Verdict> {
    let source = workspace_root.map_or_else(repo_root, Path::to_owned);
    let mut ids: Vec<String> = std::fs::read_dir(source.join("packs"))
        .with_context(|| format!("listing {}", source.join("packs").display()))?
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            dir.join("Cargo.toml").exists().then(|| {
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .replace('-', "_")
            })
        })
        .collect();
    ids.sort();
    let mut verdict = Verdict::Clean;
    for id in &ids {
        println!(
            "
=== delete-pack {id}"
        );
        if matches!(delete_pack(id, Some(&source))?, Verdict::Violations) {
            verdict = Verdict::Violations;
        }
    }
    println!(
        "
{} pack(s): {}",
        ids.len(),
        if matches!(verdict, Verdict::Clean) {
            "each deleted without breaking anything else"
        } else {
            "FAILED for at least one"
        }
    );
    Ok(verdict)
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("     {line}\n")).collect()
}
