//! The contract policy, rule by rule, on synthetic exports: each case changes one thing
//! between the snapshot and the current export and checks the findings it produces.

use ops_core::contract::{DedupeKind, Kind, SafetyClass, Visibility};
use ops_core::pack::{PackManifest, ProvidedType};
use ops_registry::contract_policy::{Finding, Level, compare, semver_findings};
use ops_registry::document::{Export, PackEntry};
use ops_registry::generated::{self, event, insert, set_schema, struct_schema};
use ops_registry::snapshot::Snapshot;
use serde_json::json;

const OPENED: &str = "pack.a.generated.Opened";
const CLOSED: &str = "pack.a.generated.Closed";

fn base() -> Export {
    let mut export = generated::empty();
    insert(
        &mut export,
        event("a", "Opened", 1),
        struct_schema("Opened", 1),
    );
    insert(
        &mut export,
        event("a", "Closed", 1),
        struct_schema("Closed", 2),
    );
    export
}

/// Findings of the policy plus the semver check, as `(rule, subject)` pairs.
fn findings(old: &Export, new: &Export) -> Vec<Finding> {
    let snapshot = Snapshot::of(old);
    let mut findings = compare(&snapshot, new).findings;
    let semver = semver_findings(&snapshot, &snapshot.blessed(new), &findings);
    findings.extend(semver);
    findings
}

fn rules(findings: &[Finding]) -> Vec<(&'static str, &str)> {
    let mut rules: Vec<_> = findings
        .iter()
        .map(|f| (f.rule, f.subject.as_str()))
        .collect();
    rules.sort();
    rules
}

fn set_crate_version(export: &mut Export, version: &str) {
    for entry in &mut export.document.types {
        entry.owner_crate_version = version.to_owned();
    }
}

fn edit_entry(
    export: &mut Export,
    name: &str,
    edit: impl Fn(&mut ops_registry::document::TypeEntry),
) {
    for entry in export.document.types.iter_mut().filter(|t| t.name == name) {
        edit(entry);
    }
}

#[test]
fn an_unchanged_registry_has_no_findings() {
    assert_eq!(rules(&findings(&base(), &base())), vec![]);
}

#[test]
fn removing_a_public_type_needs_a_major_bump() {
    let mut new = base();
    new.document.types.retain(|t| t.name != CLOSED);
    assert_eq!(
        rules(&findings(&base(), &new)),
        vec![
            ("semver-bump-too-small", "ops-contract-a"),
            ("type-removed", CLOSED)
        ]
    );
    let fix = findings(&base(), &new)
        .into_iter()
        .find(|f| f.rule == "semver-bump-too-small")
        .and_then(|f| f.fix)
        .unwrap();
    assert!(fix.contains("0.2.0"), "{fix}");
    set_crate_version(&mut new, "0.2.0");
    assert_eq!(
        rules(&findings(&base(), &new)),
        vec![("type-removed", CLOSED)]
    );
}

#[test]
fn a_rename_with_renamed_from_keeps_the_history() {
    let mut new = base();
    new.document.types.retain(|t| t.name != CLOSED);
    let mut renamed = event("a", "Shut", 1);
    renamed.renamed_from = Some(CLOSED.to_owned());
    insert(&mut new, renamed, struct_schema("Closed", 2));
    set_crate_version(&mut new, "0.1.1");
    let found = findings(&base(), &new);
    assert_eq!(
        rules(&found),
        vec![("type-renamed", "pack.a.generated.Shut")]
    );
    let blessed = Snapshot::of(&base()).blessed(&new);
    assert!(blessed.types[CLOSED].removed);
    assert_eq!(
        blessed.types["pack.a.generated.Shut"]
            .renamed_from
            .as_deref(),
        Some(CLOSED)
    );
}

#[test]
fn making_a_public_type_private_is_major_and_the_snapshot_keeps_it() {
    let mut new = base();
    edit_entry(&mut new, CLOSED, |t| t.visibility = Visibility::Private);
    assert_eq!(
        rules(&findings(&base(), &new)),
        vec![
            ("semver-bump-too-small", "ops-contract-a"),
            ("visibility-narrowed", CLOSED)
        ]
    );
    let blessed = Snapshot::of(&base()).blessed(&new);
    assert_eq!(blessed.types[CLOSED].visibility, Visibility::Private);
    assert_eq!(blessed.types[CLOSED].versions.len(), 1);
}

#[test]
fn schema_changes_within_a_version_must_be_compatible_both_ways() {
    let mut annotated = struct_schema("Opened", 1);
    annotated["description"] = json!("documented now");
    let mut new = base();
    set_schema(&mut new, OPENED, 1, annotated);
    let found = findings(&base(), &new);
    assert_eq!(rules(&found), vec![("schema-changed-compatibly", OPENED)]);
    assert_eq!(found[0].level, Level::Note);

    let mut narrowed = struct_schema("Opened", 1);
    narrowed["properties"]["count"]["type"] = json!("string");
    set_schema(&mut new, OPENED, 1, narrowed);
    let found = findings(&base(), &new);
    assert_eq!(rules(&found), vec![("schema-changed-in-place", OPENED)]);
    let finding = &found[0];
    assert!(finding.is_violation());
    assert_eq!(finding.version, Some(1));
    assert_eq!(
        finding.changes[0].new_pointer.as_deref(),
        Some("/properties/count")
    );
    let fix = finding.fix.as_deref().unwrap();
    assert!(fix.contains("upcast_from = opened_v1::Opened"), "{fix}");
    assert!(fix.contains("pub mod opened_v1 {"), "{fix}");
    // The payload that shows the break: an old event whose `count` is a number.
    let witness = &finding.witnesses[0];
    assert_eq!(witness.direction, "backward");
    assert!(witness.payload["count"].is_u64(), "{witness:?}");
}

#[test]
fn a_new_version_asks_for_its_upcaster_to_be_checked_from_every_old_version() {
    let mut old = base();
    insert(
        &mut old,
        event("a", "Opened", 2),
        struct_schema("Opened", 3),
    );
    let mut new = old_clone(&old);
    let mut v3 = struct_schema("Opened", 4);
    v3["properties"]["extra"] = json!({"type": "boolean"});
    insert(&mut new, event("a", "Opened", 3), v3.clone());
    set_crate_version(&mut new, "0.1.1");
    let snapshot = Snapshot::of(&old);
    let comparison = compare(&snapshot, &new);
    assert_eq!(rules(&comparison.findings), vec![("version-added", OPENED)]);
    let checks: Vec<(u32, u32)> = comparison
        .upcast_checks
        .iter()
        .map(|c| (c.from_version, c.to_version))
        .collect();
    assert_eq!(checks, vec![(1, 3), (2, 3)]);
    assert_eq!(comparison.upcast_checks[0].new_schema, v3);
    assert_eq!(
        comparison.upcast_checks[0].old_schema,
        struct_schema("Opened", 1)
    );
}

fn old_clone(export: &Export) -> Export {
    Export {
        document: export.document.clone(),
        schemas: export.schemas.clone(),
    }
}

#[test]
fn dropping_the_latest_version_is_refused() {
    let mut old = base();
    insert(
        &mut old,
        event("a", "Opened", 2),
        struct_schema("Opened", 3),
    );
    let found = findings(&old, &base());
    assert_eq!(rules(&found), vec![("version-removed", OPENED)]);
    assert!(found[0].is_violation());
}

#[test]
fn safety_raised_is_major_and_lowered_needs_review() {
    let command = |safety| {
        let mut export = base();
        edit_entry(&mut export, OPENED, |t| {
            t.kind = Kind::Command;
            t.safety = Some(safety);
        });
        export
    };
    let internal = command(SafetyClass::WriteInternal);
    let mut raised = command(SafetyClass::WriteExternalSideEffect);
    set_crate_version(&mut raised, "0.2.0");
    assert_eq!(
        rules(&findings(&internal, &raised)),
        vec![("safety-raised", OPENED)]
    );
    let mut lowered = command(SafetyClass::Read);
    set_crate_version(&mut lowered, "0.1.1");
    let found = findings(&internal, &lowered);
    assert_eq!(rules(&found), vec![("safety-lowered", OPENED)]);
    assert!(
        found[0].message.contains("READ (was WRITE_INTERNAL)"),
        "{}",
        found[0].message
    );
    assert!(found[0].is_violation());
}

#[test]
fn kind_owner_and_dedupe_changes_are_major() {
    let mut new = base();
    edit_entry(&mut new, OPENED, |t| {
        t.kind = Kind::Command;
        t.dedupe = Some(DedupeKind::Command);
    });
    edit_entry(&mut new, CLOSED, |t| {
        t.owner_crate = "ops-contract-b".to_owned()
    });
    let all = findings(&base(), &new);
    let found = rules(&all);
    assert!(found.contains(&("kind-changed", OPENED)), "{found:?}");
    assert!(found.contains(&("dedupe-changed", OPENED)), "{found:?}");
    assert!(found.contains(&("owner-changed", CLOSED)), "{found:?}");
}

#[test]
fn a_needless_major_bump_is_a_warning_and_a_lowered_version_an_error() {
    let mut new = base();
    insert(&mut new, event("a", "Added", 1), struct_schema("Added", 9));
    set_crate_version(&mut new, "1.0.0");
    let found = findings(&base(), &new);
    assert_eq!(
        rules(&found),
        vec![
            ("semver-needless-major", "ops-contract-a"),
            ("type-added", "pack.a.generated.Added")
        ]
    );
    assert!(found.iter().all(|f| !f.is_violation()));
    let mut old = base();
    set_crate_version(&mut old, "0.3.0");
    let lowered = new_with_version("0.2.9");
    let found = findings(&old, &lowered);
    assert!(rules(&found).contains(&("semver-version-lowered", "ops-contract-a")));
}

fn new_with_version(version: &str) -> Export {
    let mut export = base();
    insert(
        &mut export,
        event("a", "Added", 1),
        struct_schema("Added", 9),
    );
    set_crate_version(&mut export, version);
    export
}

#[test]
fn the_envelope_version_is_flagged_for_core_review() {
    let mut new = base();
    new.document.envelope_version += 1;
    let found = findings(&base(), &new);
    assert_eq!(
        rules(&found),
        vec![("envelope-version-changed", "envelope")]
    );
    assert!(found[0].is_violation());
}

fn with_pack(mut export: Export, version: &str, provides: &[&str], contracts: &[&str]) -> Export {
    let manifest = PackManifest {
        id: "a".to_owned(),
        version: semver::Version::parse(version).unwrap(),
        crate_name: "pack-a".to_owned(),
        contracts: contracts.iter().map(|c| (*c).to_owned()).collect(),
        provides: provides
            .iter()
            .map(|name| ProvidedType {
                name: (*name).to_owned(),
                version: 1,
                kind: Kind::Event,
                visibility: Visibility::Private,
            })
            .collect(),
        migrations_prefix: "pack_a_".to_owned(),
    };
    export.document.packs = vec![PackEntry {
        content_id: manifest.content_id().unwrap(),
        manifest,
    }];
    export
}

#[test]
fn manifest_removals_are_major_and_additions_minor_for_the_pack() {
    let old = with_pack(
        base(),
        "0.1.0",
        &["pack.a.x.One", "pack.a.x.Two"],
        &["ops-contract-a"],
    );
    let removed = with_pack(base(), "0.1.1", &["pack.a.x.One"], &["ops-contract-a"]);
    assert_eq!(
        rules(&findings(&old, &removed)),
        vec![
            ("manifest-type-removed", "a"),
            ("semver-bump-too-small", "a")
        ]
    );
    let added = with_pack(
        base(),
        "0.1.1",
        &["pack.a.x.One", "pack.a.x.Two", "pack.a.x.Three"],
        &["ops-contract-a", "ops-shared-people"],
    );
    assert_eq!(
        rules(&findings(&old, &added)),
        vec![
            ("manifest-contract-added", "a"),
            ("manifest-type-added", "a")
        ]
    );
}

#[test]
fn blessing_never_drops_a_version_or_a_removed_type() {
    let mut old = base();
    insert(
        &mut old,
        event("a", "Opened", 2),
        struct_schema("Opened", 3),
    );
    let mut new = base();
    new.document.types.retain(|t| t.name != CLOSED);
    let blessed = Snapshot::of(&old).blessed(&new);
    assert_eq!(blessed.types[OPENED].versions.len(), 2);
    assert!(blessed.types[CLOSED].removed);
    assert_eq!(blessed.types[CLOSED].versions.len(), 1);
    // A removed type is history, not a finding, on the next comparison.
    assert_eq!(
        rules(&compare(&blessed, &new).findings),
        vec![("version-removed", OPENED)]
    );
}

#[test]
fn snapshots_round_trip_through_their_file_format() {
    let snapshot = Snapshot::of(&with_pack(base(), "0.1.0", &["pack.a.x.One"], &[]));
    let text = serde_json::to_string_pretty(&snapshot).unwrap();
    assert_eq!(Snapshot::parse(&text, "snapshot.json").unwrap(), snapshot);
    let error = Snapshot::parse("{\"format\": 99}", "snapshot.json").unwrap_err();
    assert!(error.to_string().contains("format 99"), "{error}");
    let error = Snapshot::parse("{\"format\": 1, \"types\": 3}", "snapshot.json").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("snapshot.json: not a registry snapshot at line 1"),
        "{error}"
    );
}

#[test]
fn the_first_version_fix_names_every_crate_and_the_exact_version() {
    let with_second_crate = || {
        let mut export = base();
        insert(&mut export, event("b", "Paid", 1), struct_schema("Paid", 3));
        insert(
            &mut export,
            event("b", "Refunded", 1),
            struct_schema("Refunded", 4),
        );
        export
    };
    let (old, mut new) = (with_second_crate(), with_second_crate());
    edit_entry(&mut new, CLOSED, |t| t.visibility = Visibility::Private);
    edit_entry(&mut new, "pack.b.generated.Paid", |t| {
        t.visibility = Visibility::Private
    });
    let found = findings(&old, &new);
    let fixes: Vec<&str> = found
        .iter()
        .filter(|f| f.rule == "semver-bump-too-small")
        .filter_map(|f| f.fix.as_deref())
        .collect();
    assert_eq!(fixes.len(), 2, "{found:?}");
    for name in ["ops-contract-a", "ops-contract-b"] {
        assert!(
            fixes[0].contains(&format!("`{name}`'s Cargo.toml to 0.2.0")),
            "{}",
            fixes[0]
        );
    }
}

#[test]
fn blessing_a_workspace_without_a_registry_folder_creates_it() {
    let folder = std::env::temp_dir().join(format!("registry-bless-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let path = folder.join("registry/snapshot.json");
    Snapshot::of(&base()).write(&path).unwrap();
    let read = Snapshot::read(&path).unwrap();
    assert_eq!(read, Snapshot::of(&base()));
    std::fs::remove_dir_all(&folder).unwrap();
}
