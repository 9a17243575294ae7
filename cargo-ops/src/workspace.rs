//! The workspace a command works on (the current directory's by default, found the way
//! cargo finds it), its crates by role, the kept copy of it that checks change and build,
//! and the cargo that builds them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use cargo_metadata::{MetadataCommand, Package};

use crate::roles::{Role, pack_id};

const COPIES: &str = "ops-workspace-copies";

/// A cargo workspace, read with `cargo metadata` (its own crates, not their dependencies).
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    members: Vec<Package>,
}

impl Workspace {
    /// The workspace of `at`: a `Cargo.toml`, a directory, or else the current directory.
    pub fn open(at: Option<&Path>) -> anyhow::Result<Workspace> {
        let mut command = MetadataCommand::new();
        command.no_deps();
        let shown = match at {
            Some(path) if path.is_dir() => {
                command.current_dir(path);
                path.display().to_string()
            }
            Some(path) => {
                command.manifest_path(path);
                path.display().to_string()
            }
            None => "the current directory".to_owned(),
        };
        let metadata = command.exec().with_context(|| {
            format!("{shown}: not in a cargo workspace (`cargo metadata` failed)")
        })?;
        let members = metadata.workspace_packages().into_iter().cloned().collect();
        Ok(Workspace {
            root: metadata.workspace_root.clone().into_std_path_buf(),
            target_dir: metadata.target_directory.clone().into_std_path_buf(),
            members,
        })
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("Cargo.toml")
    }

    /// Every member, whatever its role.
    pub fn members(&self) -> impl Iterator<Item = &Package> {
        self.members.iter()
    }

    pub fn members_with(&self, role: Role) -> impl Iterator<Item = &Package> {
        self.members
            .iter()
            .filter(move |package| Role::of_package(package) == Some(role))
    }

    /// The one crate that links the packs: `ops-host`, or the crate that declares
    /// `[package.metadata.ops] role = "host"` or depends on `ops-host`.
    pub fn host(&self) -> anyhow::Result<&Package> {
        let hosts: Vec<&Package> = self.members_with(Role::Host).collect();
        match hosts.as_slice() {
            [host] => Ok(host),
            [] => bail!(
                "{}: no host crate in this workspace; add one that depends on `ops-host` (`cargo ops new` makes one)",
                self.manifest().display()
            ),
            _ => bail!(
                "{}: several host crates ({}); keep one, or give the others `[package.metadata.ops] role = \"tooling\"`",
                self.manifest().display(),
                hosts
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The workspace's packs, by id, with their crates.
    pub fn packs(&self) -> Vec<(String, &Package)> {
        let mut packs: Vec<(String, &Package)> = self
            .members_with(Role::Pack)
            .filter_map(|package| Some((pack_id(&package.name)?, package)))
            .collect();
        packs.sort_by(|a, b| a.0.cmp(&b.0));
        packs
    }

    /// The packs the host crate installs (depends on): the ones a deletion is tried on. A
    /// pack no host installs (a test's fixture) has nothing to break.
    pub fn installed_packs(&self) -> anyhow::Result<Vec<(String, &Package)>> {
        let host = self.host()?;
        Ok(self
            .packs()
            .into_iter()
            .filter(|(_, pack)| {
                host.dependencies
                    .iter()
                    .any(|dep| dep.name == pack.name.as_str())
            })
            .collect())
    }

    pub fn member(&self, name: &str) -> Option<&Package> {
        self.members.iter().find(|package| package.name == name)
    }

    /// The members `name` builds with, itself included: the members it depends on (for its
    /// code, its build script or its tests), and theirs, transitively.
    pub fn closure_of(&self, name: &str) -> std::collections::BTreeSet<String> {
        let mut closure = std::collections::BTreeSet::new();
        let mut pending = vec![name.to_owned()];
        while let Some(next) = pending.pop() {
            let Some(member) = self.member(&next) else {
                continue;
            };
            if !closure.insert(next) {
                continue;
            }
            pending.extend(
                member
                    .dependencies
                    .iter()
                    .map(|dependency| dependency.name.to_string()),
            );
        }
        closure
    }

    /// A member's folder, relative to the workspace root.
    pub fn folder_of(&self, package: &Package) -> PathBuf {
        let dir = package
            .manifest_path
            .parent()
            .map(|dir| dir.as_std_path().to_owned())
            .unwrap_or_default();
        dir.strip_prefix(&self.root)
            .map(Path::to_owned)
            .unwrap_or(dir)
    }

    /// Where copies of this workspace build, so their dependencies build once. A
    /// workspace that already builds there (a copy, or a test's workspace) shares it.
    ///
    /// The first time, it starts from this workspace's own debug build: what that built of
    /// crates that are not members (from crates.io or git: the same code under the same
    /// hash in every copy) is copied in, so a copy builds its members only. Members are
    /// never copied: a copy's member may differ from this one under the same hash.
    pub fn copies_target_dir(&self) -> PathBuf {
        if self.target_dir.file_name() == Some(COPIES.as_ref()) {
            return self.target_dir.clone();
        }
        let copies = self.target_dir.join(COPIES);
        // Without a seed a copy builds everything itself: slower, never wrong.
        let _ = self.seed(&copies);
        copies
    }

    /// Copies the debug build's non-member artifacts into `copies`, unless it has a debug
    /// build of its own. Made aside and renamed into place, so two seeding at once leave
    /// one whole seed.
    fn seed(&self, copies: &Path) -> std::io::Result<()> {
        let built = self.target_dir.join("debug");
        let seeded = copies.join("debug");
        if seeded.exists() || !built.is_dir() {
            return Ok(());
        }
        let aside = copies.join(format!("debug.seeding-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&aside);
        let members: std::collections::BTreeSet<String> = self
            .members
            .iter()
            .flat_map(|package| {
                std::iter::once(package.name.to_string())
                    .chain(package.targets.iter().map(|target| target.name.clone()))
            })
            .flat_map(|name| [name.replace('-', "_"), name])
            .collect();
        for folder in ["deps", "build", ".fingerprint"] {
            let to = aside.join(folder);
            std::fs::create_dir_all(&to)?;
            for entry in std::fs::read_dir(built.join(folder))? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if built_for(&name).is_none_or(|owner| members.contains(owner)) {
                    continue;
                }
                copy_tree(&entry.path(), &to.join(&name), &|_| false)?;
            }
        }
        if std::fs::rename(&aside, &seeded).is_err() {
            // Another seeder came first.
            let _ = std::fs::remove_dir_all(&aside);
        }
        Ok(())
    }

    /// This workspace's kept copy, brought up to date with it, held until the answer is
    /// dropped (another process or thread asking waits).
    ///
    /// Each workspace has one copy for its copies' target directory, in the system's
    /// temporary directory, kept between uses: a member crate's build is keyed by its path,
    /// so a copy at a new path would build every member again, and one at the same path
    /// builds only what differs from its last use. Cargo decides that by file times;
    /// bringing the copy up to date writes exactly the files whose content differs (their
    /// time is then later than any build of the copy), removes what the workspace does not
    /// have, and leaves the rest with their times. (Not inside the target directory: there,
    /// trybuild left the copy's own paths in ops-core's compile-fail output, where its
    /// expected output has them relative to the workspace.)
    pub fn kept_copy(&self) -> anyhow::Result<KeptCopy> {
        let copies = std::env::temp_dir().join(COPIES);
        std::fs::create_dir_all(&copies)
            .with_context(|| format!("creating {}", copies.display()))?;
        let name = format!(
            "{}-{:016x}",
            self.root
                .file_name()
                .map_or("workspace".into(), |name| name.to_string_lossy()),
            // Two workspaces of one name at different places get two copies.
            std::hash::BuildHasher::hash_one(
                &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
                (&self.root, self.copies_target_dir())
            )
        );
        let lock_path = copies.join(format!("{name}.lock"));
        let held = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        held.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        let root = copies.join(name);
        bring_up_to_date(&self.root, &root)
            .with_context(|| format!("copying {} to {}", self.root.display(), root.display()))?;
        Ok(KeptCopy {
            root,
            lock_path,
            _held: held,
        })
    }
}

/// A workspace's kept copy (`Workspace::kept_copy`), held while this lives.
pub struct KeptCopy {
    pub root: PathBuf,
    lock_path: PathBuf,
    _held: std::fs::File,
}

impl KeptCopy {
    /// Removes the copy, for a workspace that will not be copied again (a test's own).
    pub fn discard(self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.root)?;
        std::fs::remove_file(&self.lock_path)
    }
}

/// Makes `to` hold what `from` holds, without `target/` and `.git/`, writing only the
/// files whose content differs.
fn bring_up_to_date(from: &Path, to: &Path) -> std::io::Result<()> {
    let kind = std::fs::symlink_metadata(from)?.file_type();
    let there = std::fs::symlink_metadata(to)
        .ok()
        .map(|meta| meta.file_type());
    if kind.is_dir() {
        match there {
            Some(there) if there.is_dir() => {
                for entry in std::fs::read_dir(to)? {
                    let name = entry?.file_name();
                    if !not_copied(&name) && std::fs::symlink_metadata(from.join(&name)).is_err() {
                        remove(&to.join(name))?;
                    }
                }
            }
            Some(_) => {
                std::fs::remove_file(to)?;
                std::fs::create_dir_all(to)?;
            }
            None => std::fs::create_dir_all(to)?,
        }
        for entry in std::fs::read_dir(from)? {
            let name = entry?.file_name();
            if !not_copied(&name) {
                bring_up_to_date(&from.join(&name), &to.join(&name))?;
            }
        }
        return Ok(());
    }
    if kind.is_symlink() {
        let link = std::fs::read_link(from)?;
        if there.is_some_and(|there| there.is_symlink())
            && std::fs::read_link(to).ok().as_ref() == Some(&link)
        {
            return Ok(());
        }
        if there.is_some() {
            remove(to)?;
        }
        return std::os::unix::fs::symlink(link, to);
    }
    let content = std::fs::read(from)?;
    if there.is_some_and(|there| there.is_file()) && std::fs::read(to)? == content {
        return Ok(());
    }
    if there.is_some() {
        remove(to)?;
    }
    std::fs::write(to, content)?;
    // The mode too: a script the workspace runs stays runnable.
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())
}

fn remove(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// The cargo that runs this chore (`CARGO` when run by cargo), ready for arguments.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A workspace's host crate, run through cargo so it is built first.
pub struct Host {
    root: PathBuf,
    package: String,
    /// Where it builds, when not the workspace's own target directory.
    target: Option<PathBuf>,
}

impl Host {
    /// The host crate of `workspace`.
    pub fn new(workspace: &Workspace) -> anyhow::Result<Self> {
        Ok(Host::at(&workspace.root, &workspace.host()?.name, None))
    }

    /// The host `package` of the workspace at `root`, building in `target`.
    pub fn at(root: &Path, package: &str, target: Option<&Path>) -> Self {
        Host {
            root: root.to_owned(),
            package: package.to_owned(),
            target: target.map(Path::to_owned),
        }
    }

    pub fn package(&self) -> &str {
        &self.package
    }

    /// Cargo in the host's workspace, building where the host builds.
    pub fn cargo(&self) -> Command {
        let mut command = cargo();
        command.current_dir(&self.root);
        if let Some(target) = &self.target {
            command.env("CARGO_TARGET_DIR", target);
        }
        command
    }

    /// Runs the host with `args` and answers what it printed; its failure is an error
    /// with what it said.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .cargo()
            .args(["run", "--quiet", "--package", &self.package, "--"])
            .args(args)
            .output()
            .context("running cargo")?;
        if !output.status.success() {
            bail!(
                "`{} {}` failed in {}:\n{}",
                self.package,
                args.join(" "),
                self.root.display(),
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// What a copy of a workspace leaves out: its builds and its git history.
fn not_copied(name: &std::ffi::OsStr) -> bool {
    name == "target" || name == ".git"
}

/// Copies the folder `from` (a data directory, say) into `to`, without `target/` and `.git/`.
pub fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_tree(from, to, &not_copied)
}

/// The crate or package an artifact of a target directory was built for, from its name:
/// `[lib]<name>-<16 hex digits>[.<extension>]`.
fn built_for(artifact: &str) -> Option<&str> {
    let stem = artifact.split_once('.').map_or(artifact, |(stem, _)| stem);
    let (name, hash) = stem.rsplit_once('-')?;
    let hashed = hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit());
    hashed.then(|| name.strip_prefix("lib").unwrap_or(name))
}

/// Copies a file, or a folder with everything in it but the entries named as `skip` says
/// (links as links, files with their modification times).
fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&std::ffi::OsStr) -> bool,
) -> std::io::Result<()> {
    let kind = std::fs::symlink_metadata(from)?.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if kind.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            if !skip(&name) {
                copy_tree(&entry.path(), &to.join(name), skip)?;
            }
        }
        Ok(())
    } else {
        std::fs::copy(from, to)?;
        // Cargo compares a build's time with its dependencies' outputs' times: a seeded
        // artifact stamped with the copy's time would look newer than what was built on it,
        // and everything above it would build again.
        std::fs::File::options()
            .write(true)
            .open(to)?
            .set_modified(std::fs::metadata(from)?.modified()?)
    }
}

/// Every file under `root` (relative, sorted), without `target/` and `.git/`.
pub fn files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(root.join(&relative))? {
            let entry = entry?;
            let name = entry.file_name();
            if not_copied(&name) {
                continue;
            }
            let path = relative.join(&name);
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ops-workspace-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn bringing_a_copy_up_to_date_writes_only_what_differs() {
        let dir = scratch("up-to-date");
        let (from, to) = (dir.join("from"), dir.join("to"));
        for (file, text) in [
            ("same.rs", "same"),
            ("changed.rs", "new"),
            ("src/lib.rs", "lib"),
        ] {
            let path = from.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(from.join("target")).unwrap();
        std::fs::write(from.join("target/built"), "not copied").unwrap();
        bring_up_to_date(&from, &to).unwrap();
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        for file in ["same.rs", "changed.rs", "src/lib.rs"] {
            std::fs::File::options()
                .write(true)
                .open(to.join(file))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        std::fs::write(from.join("changed.rs"), "newer").unwrap();
        std::fs::remove_dir_all(from.join("src")).unwrap();
        std::fs::write(to.join("added-by-a-test.rs"), "gone next time").unwrap();
        std::fs::create_dir_all(to.join("target")).unwrap();
        std::fs::write(to.join("target/kept"), "the copy's own build").unwrap();

        bring_up_to_date(&from, &to).unwrap();

        assert_eq!(modified(&to.join("same.rs")), long_ago);
        assert_eq!(
            std::fs::read_to_string(to.join("changed.rs")).unwrap(),
            "newer"
        );
        assert!(modified(&to.join("changed.rs")) > long_ago);
        assert!(!to.join("src").exists() && !to.join("added-by-a-test.rs").exists());
        assert!(to.join("target/kept").exists() && !to.join("target/built").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_copied_file_keeps_its_modification_time() {
        let dir = scratch("copy-times");
        let from = dir.join("artifact");
        std::fs::write(&from, "built").unwrap();
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        std::fs::File::options()
            .write(true)
            .open(&from)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        copy(&from, &dir.join("seeded")).unwrap();
        assert_eq!(modified(&dir.join("seeded")), long_ago);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
