//! `cargo ops new` and `cargo ops new-pack`: a workspace with a host and a first pack, and
//! a pack with its contract crate, each with a sample of every part a pack has (an event
//! and a command in the contract, a handler, a typed projection, a connector with a sample
//! source) and tests on ops-core's harness. The files come from `cargo-ops/templates/`.
//!
//! A new workspace names the framework the way a team gets it: a git repository at a
//! revision, with the version of each framework crate (`--git URL --rev REV`; by default
//! the checkout `cargo-ops` was built from, served as a `file://` repository at its
//! `HEAD`). `--framework DIR` depends on a local checkout by path instead, for work on the
//! framework itself. It starts from the framework checkout's `Cargo.lock` and toolchain
//! file, when there is one at hand, so it builds with the versions the framework was tested
//! with.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::Verdict;
use crate::manifest::Manifest;
use crate::workspace::Workspace;

#[derive(clap::Args)]
pub struct NewOptions {
    /// The folder of the new workspace; its name names the host crate (`<name>-host`).
    path: PathBuf,
    /// The id of the first pack (`[a-z][a-z0-9_]*`).
    #[arg(long, default_value = "items")]
    pack: String,
    /// The framework's git repository (default: the checkout this `cargo-ops` was built
    /// from, as a `file://` repository).
    #[arg(long, value_name = "URL", conflicts_with = "framework")]
    git: Option<String>,
    /// The revision of `--git` to build (a commit, tag or branch; default: the checkout's
    /// `HEAD` when `--git` is not given, else the repository's default branch).
    #[arg(long, value_name = "REV", conflicts_with = "framework")]
    rev: Option<String>,
    /// A local checkout of the framework, depended on by path (for work on the framework).
    #[arg(long, value_name = "DIR")]
    framework: Option<PathBuf>,
}

/// Where a new workspace gets the framework's crates from.
enum FrameworkSource {
    /// A local checkout, by path.
    Path(PathBuf),
    /// A git repository at a revision, each crate with its version when it is known.
    Git { url: String, rev: Option<String> },
}

/// The framework crates a workspace depends on, by folder in the framework.
const FRAMEWORK_CRATES: [(&str, &str); 3] = [
    ("ops-core", "core/api"),
    ("ops-host", "host"),
    ("ops-host-build", "host-build"),
];

impl FrameworkSource {
    /// The source of the framework `options` name, and the checkout at hand (for its
    /// lock file, toolchain and versions), if any.
    fn of(options: &NewOptions) -> anyhow::Result<(FrameworkSource, Option<PathBuf>)> {
        if let Some(dir) = &options.framework {
            let framework = std::fs::canonicalize(dir)
                .with_context(|| format!("--framework {}: not found", dir.display()))?;
            if !framework.join("core/api/Cargo.toml").is_file() {
                bail!(
                    "--framework {}: not a checkout of the framework (no core/api/Cargo.toml)",
                    framework.display()
                );
            }
            return Ok((FrameworkSource::Path(framework.clone()), Some(framework)));
        }
        let checkout = built_from();
        if let Some(url) = &options.git {
            return Ok((
                FrameworkSource::Git {
                    url: url.clone(),
                    rev: options.rev.clone(),
                },
                checkout,
            ));
        }
        let checkout = checkout.context(
            "the framework checkout this cargo-ops was built from is gone; name the framework with `--git URL --rev REV`, or a local checkout with `--framework DIR`",
        )?;
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&checkout)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .with_context(|| {
                format!(
                    "{} is not a git repository with a commit; name the framework with `--git URL --rev REV`, or this checkout by path with `--framework {}`",
                    checkout.display(),
                    checkout.display()
                )
            })?;
        Ok((
            FrameworkSource::Git {
                url: format!("file://{}", checkout.display()),
                rev: Some(options.rev.clone().unwrap_or(head)),
            },
            Some(checkout),
        ))
    }

    /// The `[workspace.dependencies]` lines of the framework's crates, after a comment
    /// naming the source. What the operator gave is written as TOML strings, escaped, so it
    /// stays one value whatever it holds.
    fn dependencies(&self, checkout: Option<&Path>) -> anyhow::Result<String> {
        let mut lines = vec![match self {
            FrameworkSource::Path(dir) => format!(
                "# the framework: the checkout at {}",
                dir.display().to_string().escape_debug()
            ),
            FrameworkSource::Git { url, rev } => format!(
                "# the framework: {}{}",
                url.escape_debug(),
                rev.as_deref()
                    .map(|rev| format!(" at {}", rev.escape_debug()))
                    .unwrap_or_default()
            ),
        }];
        for (name, folder) in FRAMEWORK_CRATES {
            lines.push(match self {
                FrameworkSource::Path(dir) => {
                    let path = dir.join(folder).display().to_string();
                    format!("{name} = {{ path = {} }}", toml_string(&path))
                }
                FrameworkSource::Git { url, rev } => {
                    let mut spec = format!("git = {}", toml_string(url));
                    if let Some(rev) = rev {
                        spec.push_str(&format!(", rev = {}", toml_string(rev)));
                    }
                    if let Some(version) = checkout
                        .map(|checkout| crate_version(&checkout.join(folder).join("Cargo.toml")))
                        .transpose()?
                        .flatten()
                    {
                        spec.push_str(&format!(", version = {}", toml_string(&version)));
                    }
                    format!("{name} = {{ {spec} }}")
                }
            });
        }
        Ok(lines.join("\n"))
    }
}

/// `text` as a TOML string, quoted and escaped.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The `version` of the `[package]` of the manifest at `path`, when it states one.
fn crate_version(path: &Path) -> anyhow::Result<Option<String>> {
    Ok(Manifest::read(path)?
        .string_at(&["package", "version"])
        .map(str::to_owned))
}

#[derive(clap::Args)]
pub struct PackOptions {
    /// The pack's id (`[a-z][a-z0-9]*`, no `_`: a pack's tables are `pack_<id>_*`): its
    /// crates are `pack-<id>` and `ops-contract-<id>`.
    id: String,
    /// The workspace (default: the current directory's).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

/// Lower-case letters, digits and `separator`, starting with a letter: a pack id (`_`) or
/// a crate name (`-`).
fn is_name(text: &str, separator: char) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == separator)
}

/// A pack's names, from its id.
struct Names {
    id: String,
    /// `pack-<id>` and `ops-contract-<id>`.
    pack_crate: String,
    contract_crate: String,
    /// `<Id>Pack`, the pack's manifest type.
    pack_type: String,
}

impl Names {
    fn of(id: &str) -> anyhow::Result<Names> {
        // No separator: a pack's tables are `pack_<id>_*`, and with `_` in ids pack `crm`
        // would own the start of pack `crm_sync`'s tables (the host refuses such ids too).
        if !is_name(id, '_') || id.contains('_') {
            bail!(
                "`{id}` is not a pack id: use lower-case letters and digits, starting with a letter (no `_` or `-`: a pack's tables are named `pack_<id>_*`, and `{}` would start like another pack's)",
                id.replace('-', "_")
            );
        }
        let pack_type: String = id
            .split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (first, rest) = part.split_at(1);
                first.to_uppercase() + rest
            })
            .collect::<String>()
            + "Pack";
        Ok(Names {
            id: id.to_owned(),
            pack_crate: crate::roles::pack_crate(id),
            contract_crate: crate::roles::contract_crate(id),
            pack_type,
        })
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{{id}}", &self.id)
            .replace("{{pack_crate}}", &self.pack_crate)
            .replace("{{contract_crate}}", &self.contract_crate)
            .replace("{{pack_rust}}", &self.pack_crate.replace('-', "_"))
            .replace("{{contract_rust}}", &self.contract_crate.replace('-', "_"))
            .replace("{{Pack}}", &self.pack_type)
    }
}

/// Writes a new file; an existing one is never overwritten.
fn create(path: &Path, text: &str) -> anyhow::Result<()> {
    if path.exists() {
        bail!(
            "{}: already exists; nothing was overwritten",
            path.display()
        );
    }
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The framework checkout this binary was built from, when it is still there.
fn built_from() -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
    checkout
        .join("core/api/Cargo.toml")
        .is_file()
        .then_some(checkout)
}

pub fn new(options: &NewOptions) -> anyhow::Result<Verdict> {
    let names = Names::of(&options.pack)?;
    let (source, checkout) = FrameworkSource::of(options)?;
    let framework = source.dependencies(checkout.as_deref())?;
    let root = &options.path;
    if root.join("Cargo.toml").exists() {
        bail!(
            "{}: already holds a Cargo.toml; add a pack to it with `cargo ops new-pack <id>`",
            root.display()
        );
    }
    // A new workspace goes into a folder of its own, so nothing in it can be overwritten
    // or left half-made.
    if std::fs::read_dir(root).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{}: is not empty; make the workspace in a new folder",
            root.display()
        );
    }
    let name = root
        .file_name()
        .map(|name| {
            name.to_string_lossy()
                .to_lowercase()
                .replace([' ', '_'], "-")
        })
        .filter(|name| !name.is_empty())
        .with_context(|| format!("{}: give the workspace a folder name", root.display()))?;
    let host_crate = format!("{name}-host");
    if !is_name(&host_crate, '-') {
        bail!(
            "{}: the folder's name makes the host crate `{host_crate}`, which is not a crate name; name the folder with letters, digits and `-`, starting with a letter",
            root.display()
        );
    }
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{host_crate}}", &host_crate)
            .replace("{{framework}}", &framework)
    };
    let files = [
        (
            "Cargo.toml",
            include_str!("../templates/workspace/Cargo.toml.tmpl"),
        ),
        (
            "host/Cargo.toml",
            include_str!("../templates/workspace/host-Cargo.toml.tmpl"),
        ),
        (
            "host/build.rs",
            include_str!("../templates/workspace/host-build.rs.tmpl"),
        ),
        (
            "host/src/main.rs",
            include_str!("../templates/workspace/host-main.rs.tmpl"),
        ),
        (
            "README.md",
            include_str!("../templates/workspace/README.md.tmpl"),
        ),
        (
            ".gitignore",
            include_str!("../templates/workspace/gitignore.tmpl"),
        ),
    ];
    for (file, template) in files {
        create(&root.join(file), &fill(template))?;
    }
    // The versions and the toolchain the framework was tested with.
    for file in ["Cargo.lock", "rust-toolchain.toml"] {
        let Some(from) = checkout.as_ref().map(|checkout| checkout.join(file)) else {
            continue;
        };
        if from.is_file() {
            std::fs::copy(&from, root.join(file))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    add_pack(root, &host_crate_folder(), &names)?;
    println!(
        "created workspace {} with host `{host_crate}` and pack `{}`; try `cargo run -- demo` there",
        root.display(),
        names.id
    );
    Ok(Verdict::Clean)
}

fn host_crate_folder() -> PathBuf {
    PathBuf::from("host")
}

pub fn new_pack(options: &PackOptions) -> anyhow::Result<Verdict> {
    let names = Names::of(&options.id)?;
    let workspace = Workspace::open(options.workspace.as_deref())?;
    for name in [&names.pack_crate, &names.contract_crate] {
        if workspace.member(name).is_some() {
            bail!(
                "{}: `{name}` is already a member; pick another pack id",
                workspace.manifest().display()
            );
        }
    }
    let host = workspace.host()?;
    add_pack(&workspace.root, &workspace.folder_of(host), &names)?;
    println!(
        "created pack `{0}` (packs/{1}, contracts/{1}) and installed it in `{2}`",
        names.id,
        names.id.replace('_', "-"),
        host.name
    );
    Ok(Verdict::Clean)
}

/// The pack's and its contract's folders and files, and their lines in the workspace's and
/// the host's manifests.
fn add_pack(root: &Path, host_folder: &Path, names: &Names) -> anyhow::Result<()> {
    let folder_id = names.id.replace('_', "-");
    let pack_folder = PathBuf::from("packs").join(&folder_id);
    let contract_folder = PathBuf::from("contracts").join(&folder_id);
    for folder in [&pack_folder, &contract_folder] {
        if root.join(folder).exists() {
            bail!(
                "{}: already exists; nothing was written",
                root.join(folder).display()
            );
        }
    }
    // Both manifests are read and edited in memory before anything is written, so a
    // manifest that cannot take the pack leaves the workspace as it was.
    let mut workspace = Manifest::read(&root.join("Cargo.toml"))?;
    let mut host = Manifest::read(&root.join(host_folder).join("Cargo.toml"))?;
    if !workspace.has_workspace_dependency("ops-core") {
        bail!(
            "{}: `[workspace.dependencies]` has no `ops-core`; add the framework's crates there first (`cargo ops new` writes them)",
            root.join("Cargo.toml").display()
        );
    }
    let inherited = |key: &str| workspace.inherits_package_field(key);
    let package_fields: String = ["edition", "rust-version", "license", "publish"]
        .iter()
        .filter(|key| inherited(key))
        .map(|key| format!("{key}.workspace = true\n"))
        .collect();
    let package_fields = if package_fields.contains("edition") {
        package_fields
    } else {
        format!("edition = \"2024\"\n{package_fields}")
    };
    let manifest = |name: &str, description: &str, dependencies: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\ndescription = \"{description}\"\n{package_fields}\n[dependencies]\n{dependencies}\n[lints.rust]\n# cargo passes this to rustc as `--forbid unsafe_code`: no attribute in the source can loosen it\nunsafe_code = \"forbid\"\n"
        )
    };
    let contract = &names.contract_crate;
    workspace.add_member(&contract_folder)?;
    workspace.add_member(&pack_folder)?;
    workspace.add_workspace_dependency(contract, &contract_folder, "0.1.0")?;
    workspace.add_workspace_dependency(&names.pack_crate, &pack_folder, "0.1.0")?;
    if !workspace.has_workspace_dependency("serde") {
        workspace.add_registry_dependency("serde", "1", &["derive"])?;
    }
    host.add_workspace_dependency_use(&names.pack_crate)?;
    create(
        &root.join(&contract_folder).join("Cargo.toml"),
        &manifest(
            contract,
            &format!("The public events and commands of pack `{}`", names.id),
            "ops-core.workspace = true\n",
        ),
    )?;
    create(
        &root.join(&pack_folder).join("Cargo.toml"),
        &manifest(
            &names.pack_crate,
            &format!("Pack `{}`", names.id),
            &format!(
                "ops-core.workspace = true\n{contract}.workspace = true\nserde.workspace = true\n"
            ),
        ),
    )?;
    let files = [
        (
            &contract_folder,
            "src/lib.rs",
            include_str!("../templates/pack/contract.rs.tmpl"),
        ),
        (
            &pack_folder,
            "src/lib.rs",
            include_str!("../templates/pack/pack.rs.tmpl"),
        ),
        (
            &pack_folder,
            "tests/decisions.rs",
            include_str!("../templates/pack/tests.rs.tmpl"),
        ),
        (
            &pack_folder,
            "sample/items/0001.jsonl",
            include_str!("../templates/pack/sample.jsonl.tmpl"),
        ),
    ];
    for (folder, file, template) in files {
        create(&root.join(folder).join(file), &names.fill(template))?;
    }
    workspace.write()?;
    host.write()
}

#[cfg(test)]
mod framework_source {
    use super::FrameworkSource;

    /// A URL or revision that would close the TOML string stays one value: the manifest
    /// names exactly what was given, and nothing else.
    #[test]
    fn what_the_operator_gives_stays_one_value_of_the_manifest() {
        let url = "file:///srv/x\", path = \"/etc\nops-host = { path = \"/tmp\" }";
        let rev = "abc\"def";
        let source = FrameworkSource::Git {
            url: url.to_owned(),
            rev: Some(rev.to_owned()),
        };
        let text = format!(
            "[workspace.dependencies]\n{}",
            source.dependencies(None).unwrap()
        );
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        let dependencies = manifest["workspace"]["dependencies"].as_table().unwrap();
        assert_eq!(dependencies.len(), 3, "{text}");
        for (_, spec) in dependencies {
            let spec = spec.as_table().unwrap();
            assert_eq!(spec["git"].as_str(), Some(url));
            assert_eq!(spec["rev"].as_str(), Some(rev));
            assert!(!spec.contains_key("path"), "{text}");
        }
    }
}
