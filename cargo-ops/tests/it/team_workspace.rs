//! A team's own workspace, end to end, outside this repository: `cargo ops new` makes it;
//! the team adds an event, a command with its handler and a projection; its tests pass;
//! its host runs the demo with exactly its pack and answers the rest of the ops CLI;
//! `cargo ops contract-diff --bless` records its contracts; a breaking change exits 1 with
//! the rule that it broke; a version 2 with an upcaster (and the crates' bumps) exits 0;
//! `cargo ops deps-check` and `cargo ops acceptance delete-pack` hold there too.
//!
//! The framework comes as a team gets it: a git repository (this checkout, served as a
//! `file://` repository at its last commit) at a revision. It builds in the target
//! directory of this workspace's copies, kept across runs, so the registry's crates build
//! once and a second run builds only what changed, on the framework's `Cargo.lock`.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::{Run, copies_target, edit};

struct Team {
    dir: PathBuf,
    target: PathBuf,
}

impl Team {
    fn tool(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .output()
            .unwrap()
    }

    fn cargo_ops(&self, args: &[&str]) -> Output {
        self.tool(env!("CARGO_BIN_EXE_cargo-ops"), args)
    }

    fn cargo(&self, args: &[&str]) -> Output {
        self.tool(env!("CARGO"), args)
    }

    fn append(&self, file: &str, text: &str) {
        let path = self.dir.join(file);
        let before = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, before + text).unwrap();
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        edit(&self.dir, file, from, to);
    }

    /// `cargo ops contract-diff --format json`.
    fn contract_diff(&self, extra: &[&str]) -> Run {
        let mut args = vec!["contract-diff", "--format", "json"];
        args.extend_from_slice(extra);
        Run::of(&self.cargo_ops(&args))
    }
}

fn said(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

const CONTRACT: &str = "contracts/items/src/lib.rs";
const PACK: &str = "packs/items/src/lib.rs";
const RECORDED: &str = "pack.items.item.ItemRecorded";

/// What the team adds to its pack: a private event, a command and its handler, and a
/// projection of the new event.
const ARCHIVING: &str = r#"
/// An item was archived; private to this pack.
#[event(domain = "item")]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ItemArchived {
    item_id: String,
}

#[command(domain = "item", safety = WRITE_INTERNAL)]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArchiveItem {
    item_id: String,
}

pub(crate) struct ArchiveItemHandler;

impl Handler for ArchiveItemHandler {
    type Pack = ItemsPack;
    type Command = ArchiveItem;
    type State = ItemState;
    type Rejection = String;

    fn decide(&self, command: &ArchiveItem, item: &ItemState) -> Result<Vec<Decided>, String> {
        if !item.recorded {
            return Err(format!("item {} was never recorded", command.item_id));
        }
        Ok(vec![Decided::event(&ItemArchived { item_id: command.item_id.clone() })])
    }
}

ops_core::install_handler!(ArchiveItemHandler);

/// Archived item ids.
pub const ARCHIVED: Table<bool> = Table::new("archived");

pub struct Archive;

impl Projection for Archive {
    type Pack = ItemsPack;
    const NAME: &'static str = "archive";
    const VERSION: u32 = 1;
    const EVENTS: &'static [EventType] = &[EventType::of::<ItemArchived>()];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        if let Some(archived) = event.decode::<ItemArchived>() {
            let archived = archived.map_err(|error| error.to_string())?;
            ARCHIVED.put(state, &archived.item_id, &true)?;
        }
        Ok(())
    }
}

ops_core::install_projection!(Archive);

#[cfg(test)]
mod archiving {
    use super::*;
    use ops_core::testing::{fold, given};

    #[test]
    fn only_a_recorded_item_is_archived() {
        let archive = ArchiveItem { item_id: "A-1".to_owned() };
        assert_eq!(
            given().when(&ArchiveItemHandler, &archive).rejection(),
            Some(&"item A-1 was never recorded".to_owned())
        );
        let recorded = ItemRecorded { item_id: "A-1".to_owned(), title: "First".to_owned() };
        let archived = given().event(&recorded).when(&ArchiveItemHandler, &archive);
        assert_eq!(archived.then::<ItemArchived>(), [ItemArchived { item_id: "A-1".to_owned() }]);
        let folded = fold(&Archive).event("items/item/A-1", &archived.then::<ItemArchived>()[0]);
        assert_eq!(ARCHIVED.get(folded.state(), "A-1"), Ok(Some(true)));
    }
}
"#;

#[test]
fn a_team_makes_runs_and_gates_its_own_workspace_with_cargo_ops() {
    let base = std::env::temp_dir().join(format!("ops-team-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let team = Team {
        dir: base.join("acme"),
        // Shared with the copies of this workspace that the other tests build: the
        // registry's crates build once for all of them.
        target: copies_target(),
    };

    // The team gets the framework as a git repository at a revision: this checkout, served
    // as a `file://` repository at its last commit.
    let checkout = crate::support::repository();
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&checkout)
        .output()
        .unwrap();
    assert!(head.status.success(), "{}", said(&head));
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let url = format!("file://{}", checkout.display());
    let made = Command::new(env!("CARGO_BIN_EXE_cargo-ops"))
        .args(["ops", "new"])
        .arg(&team.dir)
        .args(["--pack", "items", "--git", &url, "--rev", &head])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", said(&made));
    assert!(team.dir.join("host/src/main.rs").is_file());
    let manifest = std::fs::read_to_string(team.dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "ops-core = {{ git = \"{url}\", rev = \"{head}\", version = "
        )) && !manifest.contains("path = \"/"),
        "{manifest}"
    );
    // A second `new` into the same folder overwrites nothing.
    let again = team.cargo_ops(&["new", team.dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", said(&again));
    // Nor into a folder that holds anything, nor a pack whose id is taken.
    let occupied = base.join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let refused = team.cargo_ops(&["new", occupied.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);
    let manifests = |team: &Team| {
        ["Cargo.toml", "host/Cargo.toml"]
            .map(|file| std::fs::read_to_string(team.dir.join(file)).unwrap())
    };
    let before = manifests(&team);
    let taken = team.cargo_ops(&["new-pack", "items"]);
    assert_eq!(taken.status.code(), Some(2), "{}", said(&taken));
    assert!(
        said(&taken).contains("`pack-items` is already a member"),
        "{}",
        said(&taken)
    );
    assert_eq!(manifests(&team), before);

    team.append(PACK, ARCHIVING);
    let tested = team.cargo(&["test", "--quiet", "--workspace"]);
    assert!(tested.status.success(), "{}", said(&tested));
    let tests = said(&tested);
    assert!(
        tests.contains("test result: ok. 1 passed") && tests.contains("test result: ok. 2 passed"),
        "{tests}"
    );

    let data = base.join("ops-data");
    let data = data.to_str().unwrap();
    let demo = team.cargo(&["run", "--quiet", "--", "demo", "--data", data]);
    let shown = said(&demo);
    assert!(demo.status.success(), "{shown}");
    for line in [
        "== installed packs (pack-items)",
        "pack.items.item.ArchiveItem",
        "connector items/items: 2 records, 2 new events",
        "projection items/archive v1",
        "items/A-1 {\"title\":\"First item\"}",
    ] {
        assert!(shown.contains(line), "no `{line}` in:\n{shown}");
    }
    assert!(!shown.contains("pack incidents"), "{shown}");
    // The host's CLI is the whole of ops-host's: a read-only verb on the demo's store.
    let releases = team.cargo(&["run", "--quiet", "--", "releases", "list", "--data", data]);
    assert!(
        releases.status.success() && said(&releases).contains("pack `items` 0.1.0 cid_"),
        "{}",
        said(&releases)
    );

    // Nothing recorded yet: contract-diff says how to start.
    let unrecorded = team.contract_diff(&[]);
    assert_eq!(unrecorded.code, Some(2), "{}", unrecorded.stderr);
    assert!(
        unrecorded
            .stderr
            .contains("cargo ops contract-diff --bless"),
        "{}",
        unrecorded.stderr
    );
    let blessed = team.contract_diff(&["--bless"]);
    assert_eq!(blessed.code, Some(0), "{}", blessed.stderr);
    assert!(team.dir.join("registry/snapshot.json").is_file());
    let recorded = team.contract_diff(&["--require-blessed"]);
    assert_eq!(recorded.code, Some(0), "{}", recorded.stderr);

    // A public event's field renamed on the wire: readers of stored events would break.
    team.edit(
        CONTRACT,
        "pub struct ItemRecorded {\n    pub item_id: String,\n    pub title: String,",
        "pub struct ItemRecorded {\n    pub item_id: String,\n    #[serde(rename = \"name\")]\n    pub title: String,",
    );
    let broken = team.contract_diff(&[]);
    assert_eq!(broken.code, Some(1), "{}", broken.stderr);
    assert!(
        broken.has("schema-changed-in-place", RECORDED),
        "{:?}",
        broken.rules()
    );

    // Version 1 kept as it was, version 2 upcast from it, both crates bumped.
    team.edit(
        CONTRACT,
        "#[event(public, domain = \"item\")]",
        "#[event(public, domain = \"item\", version = 2, upcast_from = v1::ItemRecorded)]",
    );
    team.append(
        CONTRACT,
        r#"
/// Earlier payload versions, kept so stored events stay readable.
pub mod v1 {
    use ops_core::prelude::*;

    #[event(public, domain = "item", version = 1)]
    #[derive(Clone, Debug, PartialEq)]
    #[schemars(example = ItemRecorded { item_id: "A-1".to_owned(), title: "First item".to_owned() })]
    pub struct ItemRecorded {
        pub item_id: String,
        pub title: String,
    }
}

impl Upcast<v1::ItemRecorded> for ItemRecorded {
    fn upcast(old: v1::ItemRecorded) -> Self {
        ItemRecorded { item_id: old.item_id, title: old.title }
    }
}
"#,
    );
    team.edit(
        "contracts/items/Cargo.toml",
        "version = \"0.1.0\"",
        "version = \"0.1.1\"",
    );
    team.edit(
        "packs/items/Cargo.toml",
        "version = \"0.1.0\"",
        "version = \"0.1.1\"",
    );
    let fixed = team.contract_diff(&[]);
    assert_eq!(fixed.code, Some(0), "{:?}\n{}", fixed.rules(), fixed.stderr);
    assert!(
        fixed.has("upcaster-checked", RECORDED),
        "{:?}",
        fixed.rules()
    );

    let deps = team.cargo_ops(&["deps-check"]);
    assert_eq!(deps.status.code(), Some(0), "{}", said(&deps));
    // `cargo ops acceptance delete-pack items` ends as `code`, saying `text`.
    let deletes = |code: i32, text: &str| {
        let deleted = team.cargo_ops(&["acceptance", "delete-pack", "items"]);
        assert_eq!(deleted.status.code(), Some(code), "{}", said(&deleted));
        assert!(said(&deleted).contains(text), "{}", said(&deleted));
    };
    deletes(0, "events stored before is still stored and reads");

    // A host whose build writes into its own folder changes a file the deletion did not
    // delete: the acceptance fails, naming it.
    team.edit(
        "host/build.rs",
        "    ops_host_build::link_installed_packs();",
        "    ops_host_build::link_installed_packs();\n    let manifest = std::fs::read_to_string(\"Cargo.toml\").unwrap();\n    std::fs::write(\"linked.txt\", manifest.lines().filter(|line| line.starts_with(\"pack-\")).collect::<Vec<_>>().join(\"\\n\")).unwrap();",
    );
    deletes(
        1,
        "FAIL no other file changed, but these did: host/linked.txt",
    );

    // The copy the acceptance kept goes too: no later run copies this workspace.
    let mut workspace = cargo_ops::workspace::Workspace::open(Some(&team.dir)).unwrap();
    workspace.target_dir = team.target.clone();
    workspace.kept_copy().unwrap().discard().unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}
