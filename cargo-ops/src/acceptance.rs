//! `cargo ops acceptance delete-pack <id>` (constitution Section 10): deleting a pack is
//! deleting its folders and its install line, and nothing else breaks. It works on any
//! workspace (the current directory's by default), finding the packs, their contracts and
//! the host by role.
//!
//! In the workspace's kept copy (`Workspace::kept_copy`), without its tooling and test
//! crates, which may depend on every pack on purpose:
//! 1. the host runs the demo with every pack, writing events and projection tables;
//! 2. the pack's folders (its crate's, and its contract crate's `ops-contract-<id>`) and
//!    its entries in the workspace's and the host's manifests go;
//! 3. a pack that used the deleted contract fails at build time with cargo's error (never at
//!    run time), and is uninstalled the same way;
//! 4. no other file changed; ops-core builds and its tests pass (when it is a member); the
//!    host builds and runs the demo with fewer packs; every event stored before is still
//!    stored, by id, and reads (`log check`: typed, or the deleted pack's as raw
//!    envelopes); its tables are left and listed by `packs orphaned`.
//!
//! Without a pack id, every pack the host installs is deleted in turn. The copy and the
//! demo's data are made once; before each deletion the copy's files and data are put back
//! as they were, in place, so cargo builds again only what the deletion changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cargo_metadata::Package;

use crate::Verdict;
use crate::manifest::Manifest;
use crate::roles::{self, Role};
use crate::workspace::{self, Host, Workspace};

struct Copy {
    root: PathBuf,
    /// The workspace's kept copy, held while the deletions run in it.
    _kept: workspace::KeptCopy,
    /// The copy's host crate, building in the copies' shared target directory, and its
    /// folder.
    host: Host,
    host_folder: PathBuf,
}

/// A pack as the deletion removes it: its crates' names and folders.
struct Doomed {
    id: String,
    crates: Vec<(String, PathBuf)>,
}

impl Doomed {
    fn of(workspace: &Workspace, id: &str, pack: &Package) -> Doomed {
        let contract = roles::contract_crate(id);
        let mut crates = vec![(pack.name.to_string(), workspace.folder_of(pack))];
        if let Some(contract) = workspace.member(&contract) {
            crates.push((contract.name.to_string(), workspace.folder_of(contract)));
        }
        Doomed {
            id: id.to_owned(),
            crates,
        }
    }

    fn owns(&self, file: &Path) -> bool {
        self.crates
            .iter()
            .any(|(_, folder)| file.starts_with(folder))
    }
}

impl Copy {
    fn cargo(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let output = self
            .host
            .cargo()
            .args(args)
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
        self.host.run(args)
    }

    /// Removes crates' folders and their entries in the workspace's and the host's
    /// manifests.
    fn remove(&self, crates: &[(String, PathBuf)]) -> anyhow::Result<()> {
        let mut root = Manifest::read(&self.root.join("Cargo.toml"))?;
        let mut host = Manifest::read(&self.root.join(&self.host_folder).join("Cargo.toml"))?;
        for (name, folder) in crates {
            let path = self.root.join(folder);
            if path.exists() {
                std::fs::remove_dir_all(&path)?;
            }
            root.remove_member(folder);
            root.remove_workspace_dependency(name);
            host.remove_dependency(name);
        }
        root.write()?;
        host.write()
    }

    fn contents(&self) -> anyhow::Result<BTreeMap<PathBuf, Vec<u8>>> {
        workspace::files(&self.root)?
            .into_iter()
            .map(|file| Ok((file.clone(), std::fs::read(self.root.join(&file))?)))
            .collect()
    }
}

/// The other packs the host installs whose manifests depend on the pack or its contract.
fn dependents_of<'w>(
    installed: &[(String, &'w Package)],
    doomed: &Doomed,
) -> Vec<(String, &'w Package)> {
    installed
        .iter()
        .filter(|(id, package)| {
            *id != doomed.id
                && package
                    .dependencies
                    .iter()
                    .any(|dep| doomed.crates.iter().any(|(name, _)| *name == dep.name))
        })
        .cloned()
        .collect()
}

fn check(passed: &mut bool, ok: bool, what: &str) {
    println!("{} {what}", if ok { "ok  " } else { "FAIL" });
    *passed &= ok;
}

/// What deleting one pack came to: whether every check held, the packs that had to go
/// with it (each with why), and the packs the host still ran with.
struct Deletion {
    verdict: Verdict,
    went_with: Vec<(String, String)>,
    still_installed: Vec<String>,
}

impl Deletion {
    fn summary(&self, id: &str) -> String {
        let with = if self.went_with.is_empty() {
            "removed alone".to_owned()
        } else {
            format!(
                "removed with {}",
                self.went_with
                    .iter()
                    .map(|(other, why)| format!("{other} ({why})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let left = if self.still_installed.is_empty() {
            "no pack left installed".to_owned()
        } else {
            format!("the host ran with {}", self.still_installed.join(", "))
        };
        format!("pack {id}: {with}; {left}")
    }
}

pub fn delete_pack(id: &str, workspace_root: Option<&Path>) -> anyhow::Result<Verdict> {
    let source = Workspace::open(workspace_root)?;
    let before = Before::prepare(&source)?;
    let deletion = delete_one(&source, &before, id)?;
    println!("\n{}", deletion.summary(id));
    Ok(deletion.verdict)
}

/// The copy every deletion starts from: the workspace without its tooling and test crates,
/// after the host ran the demo in it with every pack. Made once; each deletion restores it
/// (files and data) in place, so what a deletion did not touch is not built again.
struct Before {
    scratch: PathBuf,
    copy: Copy,
    data: PathBuf,
    /// The data directory as the demo left it, restored before each deletion.
    data_kept: PathBuf,
    demo: String,
    stored: BTreeMap<String, String>,
    contents: BTreeMap<PathBuf, Vec<u8>>,
    /// Whether ops-core's tests passed after a deletion that left every crate it builds
    /// with, and which pack that deletion removed.
    core_tests: std::cell::RefCell<Option<(bool, String)>>,
}

impl Before {
    fn prepare(source: &Workspace) -> anyhow::Result<Before> {
        let host = source.host()?;
        let scratch = std::env::temp_dir().join(format!("ops-acceptance-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let kept = source.kept_copy()?;
        let copy = Copy {
            host: Host::at(&kept.root, &host.name, Some(&source.copies_target_dir())),
            host_folder: source.folder_of(host),
            root: kept.root.clone(),
            _kept: kept,
        };
        let host_builds_with = source.closure_of(&host.name);
        let tooling_folders: Vec<PathBuf> = source
            .members_with(Role::Tooling)
            .chain(source.members_with(Role::Tests))
            .filter(|package| !host_builds_with.contains(package.name.as_str()))
            .map(|package| source.folder_of(package))
            .collect();
        // The tooling and test crates go, with every member inside their folders (a test's
        // own fixture pack). One the host builds with stays: without it the host would be a
        // different build (fewer features of a dependency, say) from the one the workspace
        // runs.
        let tooling: Vec<(String, PathBuf)> = source
            .members()
            .map(|package| (package.name.to_string(), source.folder_of(package)))
            .filter(|(_, folder)| tooling_folders.iter().any(|tool| folder.starts_with(tool)))
            .collect();
        copy.remove(&tooling)?;
        let data = scratch.join("ops-data");
        let data_arg = data.to_str().context("the temp dir is not UTF-8")?;
        println!("== before: every pack installed");
        let demo = copy.host(&["demo", "--data", data_arg])?;
        let stored =
            stored_events(&copy.host(&["log", "check", "--format", "json", "--data", data_arg])?)?;
        let contents = copy.contents()?;
        let data_kept = scratch.join("ops-data-before");
        workspace::copy(&data, &data_kept)?;
        Ok(Before {
            scratch,
            copy,
            data,
            data_kept,
            demo,
            stored,
            contents,
            core_tests: std::cell::RefCell::new(None),
        })
    }

    /// The copy and its data as they were before any deletion: files put back where they
    /// differ (the others keep their times, so cargo builds again only what changed), and
    /// the data directory as the demo left it.
    fn restore(&self) -> anyhow::Result<&Copy> {
        let now = self.copy.contents()?;
        for (file, content) in &self.contents {
            if now.get(file) != Some(content) {
                let path = self.copy.root.join(file);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(path, content)?;
            }
        }
        for file in now.keys().filter(|file| !self.contents.contains_key(*file)) {
            std::fs::remove_file(self.copy.root.join(file))?;
        }
        let _ = std::fs::remove_dir_all(&self.data);
        workspace::copy(&self.data_kept, &self.data)?;
        Ok(&self.copy)
    }
}

impl Drop for Before {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn delete_one(source: &Workspace, prepared: &Before, id: &str) -> anyhow::Result<Deletion> {
    let packs = source.installed_packs()?;
    let Some((_, pack)) = packs.iter().find(|(pack_id, _)| pack_id == id) else {
        bail!(
            "{}: there is no pack `{id}` the host installs (a member named `{}` it depends on); the installed packs are: {}",
            source.manifest().display(),
            roles::pack_crate(id),
            packs
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let doomed = Doomed::of(source, id, pack);
    let copy = prepared.restore()?;
    let data_arg = prepared
        .data
        .to_str()
        .context("the temp dir is not UTF-8")?;
    let mut passed = true;
    let demo_before = &prepared.demo;
    check(
        &mut passed,
        demo_before.contains(&format!("pack {id} ")),
        &format!("the demo runs with pack `{id}`"),
    );
    let stored_before = &prepared.stored;
    let before = &prepared.contents;

    println!("\n== delete pack `{id}`: its folders and its install line");
    copy.remove(&doomed.crates)?;
    let dependents = dependents_of(&packs, &doomed);
    let (builds, _, error) = copy.cargo(&["build", "--quiet", "--package", copy.host.package()])?;
    if dependents.is_empty() {
        check(&mut passed, builds, "no other pack depends on it");
    } else {
        // Cargo names the crate that is gone: the build stops, the host never starts.
        let cause = error
            .lines()
            .find(|line| {
                doomed
                    .crates
                    .iter()
                    .any(|(name, _)| line.contains(name.as_str()))
            })
            .unwrap_or_default();
        check(
            &mut passed,
            !builds && !cause.is_empty(),
            &format!(
                "packs using it ({}) fail at build time: {}",
                dependents
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                cause.trim()
            ),
        );
        for (dependent_id, dependent) in &dependents {
            copy.remove(&Doomed::of(source, dependent_id, dependent).crates)?;
        }
        println!("     uninstalled them the same way");
    }

    let after = copy.contents()?;
    let removed: Vec<Doomed> = std::iter::once(Doomed::of(source, id, pack))
        .chain(
            dependents
                .iter()
                .map(|(dependent_id, dependent)| Doomed::of(source, dependent_id, dependent)),
        )
        .collect();
    let manifests = [
        PathBuf::from("Cargo.toml"),
        copy.host_folder.join("Cargo.toml"),
        PathBuf::from("Cargo.lock"),
    ];
    let allowed = |file: &Path| {
        manifests.iter().any(|manifest| manifest == file)
            || removed.iter().any(|doomed| doomed.owns(file))
    };
    let changed = files_changed(before, &after, allowed);
    let unchanged = if changed.is_empty() {
        "no other file changed".to_owned()
    } else {
        format!(
            "no other file changed, but these did: {}",
            changed.join(", ")
        )
    };
    check(&mut passed, changed.is_empty(), &unchanged);

    if source.member("ops-core").is_some() {
        let removed_crates: Vec<&str> = removed
            .iter()
            .flat_map(|doomed| doomed.crates.iter().map(|(name, _)| name.as_str()))
            .collect();
        let untouched = !source
            .closure_of("ops-core")
            .iter()
            .any(|name| removed_crates.contains(&name.as_str()));
        // ops-core and everything it builds with are as they were: its tests answer as
        // they did after an earlier deletion that left them so, and are not run again.
        let earlier = prepared.core_tests.borrow().clone().filter(|_| untouched);
        match earlier {
            Some((core_ok, after)) => check(
                &mut passed,
                core_ok,
                &format!(
                    "ops-core builds and its tests pass (as after deleting `{after}`: none of the crates it builds with was removed)"
                ),
            ),
            None => {
                let (core_ok, _, core_error) =
                    copy.cargo(&["test", "--quiet", "--package", "ops-core"])?;
                check(&mut passed, core_ok, "ops-core builds and its tests pass");
                if !core_ok {
                    eprintln!("{core_error}");
                }
                if untouched {
                    *prepared.core_tests.borrow_mut() = Some((core_ok, id.to_owned()));
                }
            }
        }
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
    let (lost, unreadable) = events_lost(stored_before, &stored_after);
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
    let removed_ids: Vec<&str> = removed.iter().map(|doomed| doomed.id.as_str()).collect();
    let (only_theirs, dropped) = tables_left(demo_before, &orphaned, &removed_ids);
    check(
        &mut passed,
        only_theirs && dropped.is_empty(),
        &if dropped.is_empty() {
            "its tables are left in place and listed by `ops-host packs orphaned`".to_owned()
        } else {
            format!(
                "its tables are left in place and listed by `ops-host packs orphaned`, but none of {} is",
                dropped.join(", ")
            )
        },
    );
    print!("{}", indent(&orphaned));

    let went_with = dependents
        .iter()
        .map(|(dependent_id, dependent)| {
            let uses: Vec<&str> = dependent
                .dependencies
                .iter()
                .filter(|dep| doomed.crates.iter().any(|(name, _)| *name == dep.name))
                .map(|dep| dep.name.as_str())
                .collect();
            (
                dependent_id.clone(),
                format!("it depends on {}", uses.join(" and ")),
            )
        })
        .collect();
    let still_installed = packs
        .iter()
        .map(|(other, _)| other.clone())
        .filter(|other| removed.iter().all(|doomed| doomed.id != *other))
        .collect();
    Ok(Deletion {
        verdict: if passed {
            Verdict::Clean
        } else {
            Verdict::Violations
        },
        went_with,
        still_installed,
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

/// Every pack of the workspace deleted in turn, each from the copy as it was before any.
pub fn delete_every_pack(workspace_root: Option<&Path>) -> anyhow::Result<Verdict> {
    let source = Workspace::open(workspace_root)?;
    let ids: Vec<String> = source
        .installed_packs()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    if ids.is_empty() {
        bail!(
            "{}: no pack crates (`pack-<id>`) in this workspace",
            source.manifest().display()
        );
    }
    let before = Before::prepare(&source)?;
    let mut verdict = Verdict::Clean;
    let mut summaries = Vec::new();
    let mut fewer_features_with_others = false;
    for id in &ids {
        println!(
            "
=== delete-pack {id}"
        );
        let deletion = delete_one(&source, &before, id)?;
        if matches!(deletion.verdict, Verdict::Violations) {
            verdict = Verdict::Violations;
        }
        fewer_features_with_others |= !deletion.still_installed.is_empty();
        summaries.push(deletion.summary(id));
    }
    println!("\n{}", summaries.join("\n"));
    // Section 10: the host runs with fewer features. With several packs, some deletion
    // must leave others installed, or no case shows it.
    if ids.len() > 1 && !fewer_features_with_others {
        println!(
            "FAIL no deletion left another pack installed, so none shows the host running with fewer features: every pack depends on the one deleted"
        );
        verdict = Verdict::Violations;
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

/// The files that changed from `before` to `after` (or appeared) that `allowed` does not
/// allow to: what a deletion must leave as it was.
fn files_changed(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    allowed: impl Fn(&Path) -> bool,
) -> Vec<String> {
    before
        .iter()
        .filter(|(file, content)| after.get(*file) != Some(content) && !allowed(file))
        .map(|(file, _)| file.display().to_string())
        .chain(
            after
                .keys()
                .filter(|file| !before.contains_key(*file))
                .map(|file| file.display().to_string()),
        )
        .collect()
}

/// Of the events stored before (by id, how each read), those no longer stored, and those
/// stored that no longer read (neither typed nor as a raw envelope), with how they read.
fn events_lost(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    let lost = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .cloned()
        .collect();
    let unreadable = before
        .keys()
        .filter_map(|id| {
            let reads = after.get(id)?;
            (reads != "typed" && reads != "raw").then(|| format!("{id}: {reads}"))
        })
        .collect();
    (lost, unreadable)
}

/// Whether every table `ops-host packs orphaned` lists is a removed pack's, and the removed
/// packs whose projections the first demo built that have no table there (dropped, not left
/// in place).
fn tables_left<'a>(demo_before: &str, orphaned: &str, removed: &[&'a str]) -> (bool, Vec<&'a str>) {
    let only_theirs = orphaned.lines().all(|line| {
        !line.starts_with("table ")
            || removed
                .iter()
                .any(|id| line.starts_with(&format!("table pack_{id}_")))
    });
    let dropped = removed
        .iter()
        .filter(|id| demo_before.contains(&format!("projection {id}/")))
        .filter(|id| {
            !orphaned
                .lines()
                .any(|line| line.starts_with(&format!("table pack_{id}_")))
        })
        .copied()
        .collect();
    (only_theirs, dropped)
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("     {line}\n")).collect()
}

#[cfg(test)]
mod checks {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, Vec<u8>> {
        entries
            .iter()
            .map(|(file, text)| (PathBuf::from(file), text.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn another_packs_file_changed_or_added_is_named() {
        let before = files(&[
            ("Cargo.toml", "members"),
            ("packs/crm/src/lib.rs", "crm"),
            ("packs/notify/src/lib.rs", "notify"),
        ]);
        let removed_crm =
            |file: &Path| file == Path::new("Cargo.toml") || file.starts_with("packs/crm");
        let clean = files(&[
            ("Cargo.toml", "fewer members"),
            ("packs/notify/src/lib.rs", "notify"),
        ]);
        assert!(files_changed(&before, &clean, removed_crm).is_empty());
        let touched = files(&[
            ("Cargo.toml", "fewer members"),
            ("packs/notify/src/lib.rs", "notify, edited"),
            ("host/generated.rs", "new"),
        ]);
        assert_eq!(
            files_changed(&before, &touched, removed_crm),
            ["packs/notify/src/lib.rs", "host/generated.rs"]
        );
    }

    #[test]
    fn an_event_gone_or_no_longer_readable_is_named() {
        let reads = |entries: &[(&str, &str)]| -> BTreeMap<String, String> {
            entries
                .iter()
                .map(|(id, reads)| ((*id).to_owned(), (*reads).to_owned()))
                .collect()
        };
        let before = reads(&[("evt_1", "typed"), ("evt_2", "typed"), ("evt_3", "typed")]);
        let kept = reads(&[
            ("evt_1", "typed"),
            ("evt_2", "raw"),
            ("evt_3", "typed"),
            ("evt_4", "typed"),
        ]);
        assert_eq!(events_lost(&before, &kept), (vec![], vec![]));
        let broken = reads(&[
            ("evt_1", "typed"),
            ("evt_3", "BROKEN: payload does not match its schema"),
        ]);
        assert_eq!(
            events_lost(&before, &broken),
            (
                vec!["evt_2".to_owned()],
                vec!["evt_3: BROKEN: payload does not match its schema".to_owned()]
            )
        );
    }

    #[test]
    fn a_removed_packs_tables_dropped_or_another_packs_listed_fail() {
        let demo = "projection crm/accounts v1: 3 rows\nprojection notify/pages v1: 1 row\n";
        let left = "table pack_crm_accounts_v1 (3 rows)\n";
        assert_eq!(tables_left(demo, left, &["crm"]), (true, vec![]));
        // Dropped: the projection was built, and no table of it is left.
        assert_eq!(tables_left(demo, "", &["crm"]), (true, vec!["crm"]));
        // Another pack's table listed as orphaned: the deletion took more than its own.
        let theirs_too =
            "table pack_crm_accounts_v1 (3 rows)\ntable pack_notify_pages_v1 (1 row)\n";
        assert_eq!(tables_left(demo, theirs_too, &["crm"]), (false, vec![]));
    }
}
