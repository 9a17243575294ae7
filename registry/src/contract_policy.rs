//! The contract policy of constitution Sections 1 and 4: what may change between the
//! committed snapshot and the current export, and which semver bump each change needs.
//!
//! | change | finding |
//! |---|---|
//! | public type removed (no type declares `renamed_from` it) | `type-removed`, major |
//! | public type renamed with `renamed_from` | `type-renamed`, minor |
//! | public type added | `type-added`, minor |
//! | public type made private | `visibility-narrowed`, major |
//! | kind, owner or dedupe scope changed | `kind-changed` / `owner-changed` / `dedupe-changed`, major |
//! | command safety class raised | `safety-raised`, major |
//! | command safety class lowered | `safety-lowered`, error until accepted after review |
//! | schema changed within a version, compatible both ways | `schema-changed-compatibly`, patch |
//! | schema changed within a version otherwise | `schema-changed-in-place`, error |
//! | latest version no longer declared | `version-removed`, error |
//! | new payload version | `version-added`, minor, and its upcaster is checked ([`UpcastCheck`]) |
//! | pack manifest: type, contract or table prefix removed or changed | `manifest-*`, major |
//! | pack manifest: type or contract added | `manifest-*`, minor |
//! | `envelope_version` changed | `envelope-version-changed`, error until core review accepts it |
//!
//! Then [`semver_findings`] checks that each crate's (or pack's) version moved at least as
//! far as its largest impact, with Cargo's reading of `0.y.z` versions: the leftmost
//! non-zero component is the major one, so for `0.y.z` a breaking change bumps `y` and an
//! addition bumps `z`.

use std::collections::BTreeMap;

use ops_core::contract::{Kind, SafetyClass, Visibility};
use ops_core::pack::PackManifest;
use semver::Version;
use serde::Serialize;
use serde_json::Value;

use crate::document::{Export, SourceLocation, TypeEntry};
use crate::snapshot::{Snapshot, TypeHistory};
use schema_compat::{self as compat, Change};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Note,
    Warning,
    Error,
}

/// How far a change moves the version of whatever it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    Patch,
    Minor,
    Major,
}

impl std::fmt::Display for Impact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Impact::Patch => "patch",
            Impact::Minor => "minor",
            Impact::Major => "major",
        })
    }
}

/// As written in `#[command(safety = ...)]`.
fn safety_name(safety: SafetyClass) -> String {
    serde_json::to_value(safety)
        .ok()
        .and_then(|name| name.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn noun(kind: Kind) -> &'static str {
    match kind {
        Kind::Event => "event",
        Kind::Command => "command",
    }
}

/// The versioned artifact a change counts against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Versioned {
    /// A crate owning public types; its version is in its `Cargo.toml`.
    Crate(String),
    /// A pack; its version is in `#[pack(version = "...")]`.
    Pack(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub level: Level,
    /// A type name, crate name, pack id or `envelope`.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    pub message: String,
    /// What to do about it, when something must be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<(Impact, Versioned)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceLocation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Payloads that show a schema break: valid as one side writes them, refused by the
    /// other side's readers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<Witness>,
    /// The reason from the acceptances file, when this finding was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

impl Finding {
    pub fn new(rule: &'static str, level: Level, subject: &str, message: String) -> Self {
        Finding {
            rule,
            level,
            subject: subject.to_owned(),
            version: None,
            message,
            fix: None,
            impact: None,
            location: None,
            changes: Vec::new(),
            witnesses: Vec::new(),
            accepted: None,
        }
    }

    fn at_version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    fn with_fix(mut self, fix: String) -> Self {
        self.fix = Some(fix);
        self
    }

    fn counts(mut self, impact: Impact, against: Versioned) -> Self {
        self.impact = Some((impact, against));
        self
    }

    fn located(mut self, location: Option<&SourceLocation>) -> Self {
        self.location = location.cloned();
        self
    }

    /// An error nobody accepted: this fails the gate.
    pub fn is_violation(&self) -> bool {
        self.level == Level::Error && self.accepted.is_none()
    }
}

/// A payload one side of a schema change writes and the other side's readers refuse.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Witness {
    /// `backward`: an old event new code cannot read; `forward`: a new event old code
    /// cannot read.
    pub direction: &'static str,
    pub payload: Value,
}

impl Witness {
    /// "this v1 event no longer reads: {…}".
    pub fn sentence(&self, version: Option<u32>) -> String {
        let version = version.map(|v| format!("v{v} ")).unwrap_or_default();
        match self.direction {
            "backward" => format!("this {version}event no longer reads: {}", self.payload),
            _ => format!(
                "old code cannot read this new {version}event: {}",
                self.payload
            ),
        }
    }
}

/// What each rule of the policy means, for SARIF rule descriptions and `--explain`-style
/// help; every rule a finding can carry is here (a test checks the sources).
pub const RULES: &[(&str, &str)] = &[
    (
        "type-removed",
        "A public type was removed; stored events of it can no longer be read by name.",
    ),
    (
        "type-renamed",
        "A public type was renamed and declares `renamed_from` the old name.",
    ),
    ("type-added", "A public type was added."),
    (
        "visibility-narrowed",
        "A public type was made private; other packs that read it break.",
    ),
    ("kind-changed", "A type changed between event and command."),
    ("owner-changed", "A type moved to another owning crate."),
    ("dedupe-changed", "A command's dedupe scope changed."),
    ("compensation-changed", "A command's compensation changed."),
    (
        "safety-raised",
        "A command's safety class was raised; callers need new capabilities.",
    ),
    (
        "safety-lowered",
        "A command's safety class was lowered; accepted only after review.",
    ),
    (
        "schema-changed-compatibly",
        "A payload schema changed within its version, and old and new payloads stay valid both ways.",
    ),
    (
        "schema-changed-in-place",
        "A payload schema changed within its version incompatibly; the witness shows a payload that breaks.",
    ),
    (
        "schema-unreadable",
        "A payload schema could not be compared; the message names the JSON pointer.",
    ),
    (
        "version-removed",
        "The latest payload version of a type is no longer declared.",
    ),
    (
        "version-added",
        "A new payload version was declared; its upcaster is run on samples of the old ones.",
    ),
    (
        "manifest-type-removed",
        "A pack no longer declares one of its types.",
    ),
    ("manifest-type-added", "A pack declares a new type."),
    (
        "manifest-contract-removed",
        "A pack no longer declares a contract it used.",
    ),
    ("manifest-contract-added", "A pack declares a new contract."),
    (
        "manifest-changed",
        "A pack's manifest changed (table prefix or identity).",
    ),
    (
        "pack-removed",
        "A pack is no longer installed; its events stay readable as raw envelopes.",
    ),
    ("pack-added", "A pack was installed."),
    (
        "envelope-version-changed",
        "The envelope version changed; core review must accept it.",
    ),
    (
        "semver-bump-too-small",
        "A crate's or pack's version moved less than its largest change needs.",
    ),
    (
        "semver-needless-major",
        "A crate's or pack's version moved a major step for smaller changes.",
    ),
    (
        "semver-version-lowered",
        "A crate's or pack's version went down.",
    ),
    (
        "snapshot-not-blessed",
        "The committed snapshot does not record the current registry yet.",
    ),
    (
        "acceptance-unused",
        "An acceptance in the acceptances file matches no finding.",
    ),
    (
        "upcaster-checked",
        "The upcaster of a new payload version turned samples of the old one into valid payloads.",
    ),
    (
        "upcaster-unchecked",
        "The upcaster of a new payload version could not be run on any sample of the old one (an error: add an example to the old version).",
    ),
    (
        "upcaster-failed",
        "The upcaster of a new payload version failed or produced an invalid payload.",
    ),
];

pub fn describe(rule: &str) -> Option<&'static str> {
    RULES
        .iter()
        .find(|(id, _)| *id == rule)
        .map(|(_, text)| *text)
}

/// A new payload version whose upcaster must be run on instances of an old version; the
/// caller runs it (it needs the built binary) and validates the result against `new_schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct UpcastCheck {
    /// The current name (differs from the stored one after a rename).
    pub type_name: String,
    /// The name the old events are stored under.
    pub stored_name: String,
    pub from_version: u32,
    pub to_version: u32,
    pub old_schema: Value,
    pub new_schema: Value,
    pub location: Option<SourceLocation>,
}

pub struct Comparison {
    pub findings: Vec<Finding>,
    pub upcast_checks: Vec<UpcastCheck>,
}

/// The declarations of one type in the current export, sorted by version.
struct Declared<'a> {
    name: &'a str,
    versions: Vec<&'a TypeEntry>,
}

impl<'a> Declared<'a> {
    fn latest(&self) -> &'a TypeEntry {
        self.versions.last().expect("a declared type has a version")
    }

    fn version(&self, version: u32) -> Option<&'a TypeEntry> {
        self.versions.iter().find(|t| t.version == version).copied()
    }
}

fn declared<'a>(export: &'a Export) -> BTreeMap<&'a str, Declared<'a>> {
    let mut by_name: BTreeMap<&str, Declared> = BTreeMap::new();
    for entry in &export.document.types {
        by_name
            .entry(&entry.name)
            .or_insert_with(|| Declared {
                name: &entry.name,
                versions: Vec::new(),
            })
            .versions
            .push(entry);
    }
    for declared in by_name.values_mut() {
        declared.versions.sort_by_key(|t| t.version);
    }
    by_name
}

pub fn compare(old: &Snapshot, current: &Export) -> Comparison {
    let declared = declared(current);
    let mut comparison = Comparison {
        findings: Vec::new(),
        upcast_checks: Vec::new(),
    };
    let mut continued: Vec<&str> = Vec::new();
    for (name, history) in old.live_types() {
        let successor = declared.get(name.as_str()).or_else(|| {
            declared
                .values()
                .find(|d| d.latest().renamed_from.as_deref() == Some(name.as_str()))
        });
        match successor {
            Some(now) => {
                continued.push(now.name);
                compare_type(name, history, now, current, &mut comparison);
            }
            None => comparison.findings.push(removed(name, history)),
        }
    }
    for now in declared.values() {
        let latest = now.latest();
        if latest.visibility == Visibility::Public && !continued.contains(&now.name) {
            let revived = old.types.contains_key(now.name);
            comparison.findings.push(
                Finding::new(
                    "type-added",
                    Level::Note,
                    now.name,
                    if revived {
                        format!("`{}` is public again", now.name)
                    } else {
                        format!("`{}` is a new public {}", now.name, noun(latest.kind))
                    },
                )
                .counts(Impact::Minor, Versioned::Crate(latest.owner_crate.clone()))
                .located(Some(&latest.source)),
            );
        }
    }
    if old.envelope_version != current.document.envelope_version {
        comparison.findings.push(
            Finding::new(
                "envelope-version-changed",
                Level::Error,
                "envelope",
                format!(
                    "the envelope version changed from {} to {}; every stored event and every reader is affected",
                    old.envelope_version, current.document.envelope_version
                ),
            )
            .with_fix("have core reviewers approve it, then accept this finding with their reason in registry/acceptances.toml".to_owned()),
        );
    }
    compare_packs(old, current, &mut comparison.findings);
    comparison
}

fn removed(name: &str, history: &TypeHistory) -> Finding {
    Finding::new(
        "type-removed",
        Level::Warning,
        name,
        format!("public {} `{name}` is no longer declared", noun(history.kind)),
    )
    .with_fix(format!(
        "if it was renamed, declare `renamed_from = \"{name}\"` on the new type; otherwise this is a breaking change: bump the major version of `{}`",
        history.owner_crate
    ))
    .counts(Impact::Major, Versioned::Crate(history.owner_crate.clone()))
}

fn compare_type(
    name: &str,
    old: &TypeHistory,
    now: &Declared,
    current: &Export,
    comparison: &mut Comparison,
) {
    let latest = now.latest();
    let location = Some(&latest.source);
    let owner = || Versioned::Crate(latest.owner_crate.clone());
    let mut metadata = Vec::new();
    let mut push = |rule, level, impact, message: String| {
        metadata.push(
            Finding::new(rule, level, now.name, message)
                .counts(impact, owner())
                .located(location),
        );
    };
    if now.name != name {
        push(
            "type-renamed",
            Level::Note,
            Impact::Minor,
            format!(
                "`{name}` is renamed to `{}`; its stored events read under the new name",
                now.name
            ),
        );
    }
    if latest.visibility == Visibility::Private {
        push(
            "visibility-narrowed",
            Level::Warning,
            Impact::Major,
            format!("`{}` was public and is now private to its pack", now.name),
        );
        comparison.findings.append(&mut metadata);
        return;
    }
    let declaration_changes = [
        (
            latest.kind != old.kind,
            "kind-changed",
            Level::Warning,
            Impact::Major,
            format!(
                "`{}` changed from {} to {}",
                now.name,
                noun(old.kind),
                noun(latest.kind)
            ),
        ),
        (
            latest.owner_crate != old.owner_crate,
            "owner-changed",
            Level::Warning,
            Impact::Major,
            format!(
                "`{}` moved from crate `{}` to `{}`",
                now.name, old.owner_crate, latest.owner_crate
            ),
        ),
        (
            latest.dedupe != old.dedupe,
            "dedupe-changed",
            Level::Warning,
            Impact::Major,
            format!(
                "`{}` deduplicates by {:?} instead of {:?}; senders build different dedupe scopes",
                now.name, latest.dedupe, old.dedupe
            ),
        ),
        (
            latest.compensation != old.compensation,
            "compensation-changed",
            Level::Note,
            Impact::Minor,
            format!(
                "`{}` is compensated by {:?} instead of {:?}",
                now.name, latest.compensation, old.compensation
            ),
        ),
    ];
    for (changed, rule, level, impact, message) in declaration_changes {
        if changed {
            push(rule, level, impact, message);
        }
    }
    match (old.safety, latest.safety) {
        (Some(before), Some(after)) if after > before => push(
            "safety-raised",
            Level::Warning,
            Impact::Major,
            format!(
                "`{}` is now {} (was {}); senders need the approvals of the higher class",
                now.name,
                safety_name(after),
                safety_name(before)
            ),
        ),
        (Some(before), Some(after)) if after < before => comparison.findings.push(
            Finding::new(
                "safety-lowered",
                Level::Error,
                now.name,
                format!(
                    "`{}` is now {} (was {}); it would skip checks the gateway applies to {}",
                    now.name,
                    safety_name(after),
                    safety_name(before),
                    safety_name(before)
                ),
            )
            .with_fix("if the command truly has no such effect any more, have it reviewed and accept this finding with the reason in registry/acceptances.toml".to_owned())
            .counts(Impact::Minor, owner())
            .located(location),
        ),
        _ => {}
    }
    comparison.findings.append(&mut metadata);
    for (&version, recorded) in &old.versions {
        match now.version(version) {
            Some(entry) if entry.schema_hash == recorded.schema_hash => {}
            Some(entry) => comparison.findings.push(schema_changed(
                now.name,
                version,
                &recorded.schema,
                current.schema(&entry.name, version).unwrap_or(&Value::Null),
                entry,
            )),
            None => comparison.findings.push(
                Finding::new(
                    "version-removed",
                    Level::Error,
                    now.name,
                    format!(
                        "version {version} of `{}` is no longer declared; its stored events cannot be read",
                        now.name
                    ),
                )
                .at_version(version)
                .with_fix(format!(
                    "declare version {version} again (keep the old type in a `v{version}` module) with its upcaster"
                ))
                .located(location),
            ),
        }
    }
    let recorded_latest = old.latest_version();
    if latest.version > recorded_latest && recorded_latest > 0 {
        comparison.findings.push(
            Finding::new(
                "version-added",
                Level::Note,
                now.name,
                format!(
                    "`{}` has new payload version {} (recorded up to {recorded_latest})",
                    now.name, latest.version
                ),
            )
            .at_version(latest.version)
            .counts(Impact::Minor, owner())
            .located(location),
        );
        let new_schema = current.schema(now.name, latest.version).cloned();
        for (&from_version, recorded) in &old.versions {
            comparison.upcast_checks.push(UpcastCheck {
                type_name: now.name.to_owned(),
                stored_name: name.to_owned(),
                from_version,
                to_version: latest.version,
                old_schema: recorded.schema.clone(),
                new_schema: new_schema.clone().unwrap_or(Value::Null),
                location: location.cloned(),
            });
        }
    }
}

fn schema_changed(
    name: &str,
    version: u32,
    old_schema: &Value,
    new_schema: &Value,
    entry: &TypeEntry,
) -> Finding {
    let location = Some(&entry.source);
    let report = match compat::compare(old_schema, new_schema) {
        Ok(report) => report,
        Err(error) => {
            return Finding::new(
                "schema-unreadable",
                Level::Error,
                name,
                format!("version {version} of `{name}` cannot be compared: {error}"),
            )
            .at_version(version)
            .located(location);
        }
    };
    if report.backward_compatible && report.forward_compatible {
        let mut finding = Finding::new(
            "schema-changed-compatibly",
            Level::Note,
            name,
            format!(
                "the schema of `{name}` v{version} changed, and old and new payloads stay valid both ways"
            ),
        )
        .at_version(version)
        .counts(Impact::Patch, Versioned::Crate(entry.owner_crate.clone()))
        .located(location);
        finding.changes = report.changes;
        return finding;
    }
    let breaks = match (report.backward_compatible, report.forward_compatible) {
        (false, false) => "new code cannot read old events and old code cannot read new ones",
        (false, true) => "new code cannot read old events",
        _ => "old code cannot read new events",
    };
    let undecided: Vec<String> = [("backward", &report.backward), ("forward", &report.forward)]
        .into_iter()
        .filter_map(|(direction, verdict)| match verdict {
            compat::Verdict::Undecidable { reason } => Some(format!(
                "{direction} cannot be decided ({reason}), so it counts as breaking"
            )),
            _ => None,
        })
        .collect();
    let breaks = if undecided.is_empty() {
        breaks.to_owned()
    } else {
        format!("{breaks}; {}", undecided.join("; "))
    };
    let mut finding = Finding::new(
        "schema-changed-in-place",
        Level::Error,
        name,
        format!("the schema of `{name}` v{version} changed incompatibly: {breaks}"),
    )
    .at_version(version)
    .with_fix(upcaster_skeleton(entry))
    .located(location);
    finding.changes = report.changes;
    finding.witnesses = [("backward", &report.backward), ("forward", &report.forward)]
        .into_iter()
        .filter_map(|(direction, verdict)| {
            verdict.witness().map(|payload| Witness {
                direction,
                payload: payload.clone(),
            })
        })
        .collect();
    finding
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_uppercase() && index > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// What to paste into the owning crate, as it compiles: the old shape kept as the previous
/// version, the new one upcasting from it, and the exact crate version to set.
pub fn upcaster_skeleton(entry: &TypeEntry) -> String {
    let rust = entry
        .rust_type
        .rsplit("::")
        .next()
        .unwrap_or(&entry.rust_type);
    let (version, next) = (entry.version, entry.version + 1);
    let attribute = noun(entry.kind);
    let arguments = |version: u32| {
        let mut arguments = Vec::new();
        if entry.visibility == Visibility::Public {
            arguments.push("public".to_owned());
        }
        // `pack.<id>.<domain>.<Name>`: the domain is the segment before the name.
        let segments: Vec<&str> = entry.name.split('.').collect();
        if segments.len() == 4 && segments[0] == "pack" {
            arguments.push(format!("domain = \"{}\"", segments[2]));
        }
        if let Some(safety) = entry.safety {
            arguments.push(format!("safety = {}", safety_name(safety).to_uppercase()));
        }
        if let Some(dedupe) = entry.dedupe
            && let Some(name) = serde_json::to_value(dedupe)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        {
            arguments.push(format!("dedupe = {name}"));
        }
        if let Some(compensation) = &entry.compensation {
            arguments.push(format!(
                "compensation = {}",
                compensation.rsplit('.').next().unwrap_or(compensation)
            ));
        }
        arguments.push(format!("version = {version}"));
        arguments.join(", ")
    };
    let bumped = Version::parse(&entry.owner_crate_version)
        .map(|v| next_version(&v, Impact::Minor).to_string())
        .unwrap_or_else(|_| "its next minor version".to_owned());
    // The module is named after the type (`incident_opened_v1`), so the skeleton compiles
    // in a crate that already keeps other types' old versions in a `v1`.
    let module = format!("{}_v{version}", snake_case(rust));
    format!(
        "keep the old shape as version {version} and declare the new one as version {next} with an upcaster:\n\
         \n    pub mod {module} {{\n        #[ops_core::{attribute}({old_arguments})]\n        pub struct {rust} {{\n            // the fields as they were in version {version}\n        }}\n    }}\n\
         \n    #[ops_core::{attribute}({new_arguments}, upcast_from = {module}::{rust})]\n    pub struct {rust} {{\n        // the new fields\n    }}\n\
         \n    impl ops_core::contract::Upcast<{module}::{rust}> for {rust} {{\n        fn upcast(old: {module}::{rust}) -> Self {{\n            let _ = old;\n            {rust} {{\n                // build version {next} from every field of `old`\n            }}\n        }}\n    }}\n\
         \nthen set `version` in the `[package]` of `{crate_name}`'s Cargo.toml to {bumped}",
        old_arguments = arguments(version),
        new_arguments = arguments(next),
        crate_name = entry.owner_crate,
    )
}

fn compare_packs(old: &Snapshot, current: &Export, findings: &mut Vec<Finding>) {
    let current_packs: BTreeMap<&str, &PackManifest> = current
        .document
        .packs
        .iter()
        .map(|pack| (pack.manifest.id.as_str(), &pack.manifest))
        .collect();
    for (id, before) in &old.packs {
        match current_packs.get(id.as_str()) {
            Some(after) => compare_manifests(before, after, findings),
            None => findings.push(Finding::new(
                "pack-removed",
                Level::Note,
                id,
                format!(
                    "pack `{id}` is no longer installed; its events stay readable as raw envelopes"
                ),
            )),
        }
    }
    for id in current_packs
        .keys()
        .filter(|id| !old.packs.contains_key(**id))
    {
        findings.push(Finding::new(
            "pack-added",
            Level::Note,
            id,
            format!("pack `{id}` is newly installed"),
        ));
    }
}

/// The manifest is the pack's interface to the host: what it takes away is major.
fn compare_manifests(before: &PackManifest, after: &PackManifest, findings: &mut Vec<Finding>) {
    let id = &after.id;
    let pack = || Versioned::Pack(id.clone());
    let mut push = |rule, impact, message: String| {
        findings.push(Finding::new(rule, Level::Note, id, message).counts(impact, pack()));
    };
    let provided = |manifest: &PackManifest| -> Vec<String> {
        manifest
            .provides
            .iter()
            .map(|t| {
                let visibility = match t.visibility {
                    Visibility::Public => "public",
                    Visibility::Private => "private",
                };
                format!("{} v{} ({visibility})", t.name, t.version)
            })
            .collect()
    };
    for (rule_removed, rule_added, what, old_items, new_items) in [
        (
            "manifest-type-removed",
            "manifest-type-added",
            "type",
            provided(before),
            provided(after),
        ),
        (
            "manifest-contract-removed",
            "manifest-contract-added",
            "contract",
            before.contracts.clone(),
            after.contracts.clone(),
        ),
    ] {
        for item in old_items.iter().filter(|item| !new_items.contains(item)) {
            push(
                rule_removed,
                Impact::Major,
                format!("pack `{id}` no longer has {what} {item}"),
            );
        }
        for item in new_items.iter().filter(|item| !old_items.contains(item)) {
            push(
                rule_added,
                Impact::Minor,
                format!("pack `{id}` has new {what} {item}"),
            );
        }
    }
    for (field, before, after) in [
        (
            "migrations prefix",
            &before.migrations_prefix,
            &after.migrations_prefix,
        ),
        ("crate", &before.crate_name, &after.crate_name),
    ] {
        if before != after {
            push(
                "manifest-changed",
                Impact::Major,
                format!("the {field} of pack `{id}` changed from `{before}` to `{after}`"),
            );
        }
    }
}

/// How a version moved, in Cargo's compatibility terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bump {
    Lowered,
    None,
    Patch,
    Minor,
    Major,
}

pub fn bump(old: &Version, new: &Version) -> Bump {
    use std::cmp::Ordering;
    match new.cmp_precedence(old) {
        Ordering::Less => return Bump::Lowered,
        Ordering::Equal => return Bump::None,
        Ordering::Greater => {}
    }
    match (old.major, old.minor) {
        _ if new.major != old.major => Bump::Major,
        (0, 0) => Bump::Major,
        (0, _) if new.minor != old.minor => Bump::Major,
        (0, _) if new.patch != old.patch => Bump::Minor,
        (0, _) => Bump::Patch,
        _ if new.minor != old.minor => Bump::Minor,
        _ => Bump::Patch,
    }
}

/// The smallest version after `old` that makes a bump of `impact`.
fn next_version(old: &Version, impact: Impact) -> Version {
    let (major, minor, patch) = match (impact, old.major, old.minor) {
        (Impact::Major, 0, 0) | (Impact::Minor, 0, 0) | (Impact::Patch, 0, 0) => {
            (0, 0, old.patch + 1)
        }
        (Impact::Major, 0, _) => (0, old.minor + 1, 0),
        (Impact::Minor | Impact::Patch, 0, _) => (0, old.minor, old.patch + 1),
        (Impact::Major, _, _) => (old.major + 1, 0, 0),
        (Impact::Minor, _, _) => (old.major, old.minor + 1, 0),
        (Impact::Patch, _, _) => (old.major, old.minor, old.patch + 1),
    };
    Version::new(major, minor, patch)
}

/// Checks every crate's and pack's version against the largest impact counted against it.
pub fn semver_findings(old: &Snapshot, current: &Snapshot, findings: &[Finding]) -> Vec<Finding> {
    let mut needed: BTreeMap<&Versioned, (Impact, &'static str)> = BTreeMap::new();
    for finding in findings {
        if let Some((impact, against)) = &finding.impact {
            let entry = needed.entry(against).or_insert((*impact, finding.rule));
            if *impact > entry.0 {
                *entry = (*impact, finding.rule);
            }
        }
    }
    let mut out = Vec::new();
    let mut to_set: Vec<String> = Vec::new();
    for (against, (impact, because)) in needed {
        let (name, versions, declared_in) = match against {
            Versioned::Crate(name) => (
                name,
                (old.crates.get(name), current.crates.get(name)),
                format!("`version` in the `[package]` of `{name}`'s Cargo.toml"),
            ),
            Versioned::Pack(id) => (
                id,
                (
                    old.packs.get(id).map(|m| &m.version),
                    current.packs.get(id).map(|m| &m.version),
                ),
                format!("`version` in `#[pack]` of pack `{id}` and in its crate's Cargo.toml"),
            ),
        };
        let (Some(before), Some(after)) = versions else {
            continue;
        };
        let moved = bump(before, after);
        let required = match impact {
            Impact::Major => Bump::Major,
            Impact::Minor => Bump::Minor,
            Impact::Patch => Bump::None,
        };
        if moved == Bump::Lowered {
            out.push(
                Finding::new(
                    "semver-version-lowered",
                    Level::Error,
                    name,
                    format!("`{name}` went from {before} down to {after}"),
                )
                .with_fix(format!("set {declared_in} to at least {before}")),
            );
        } else if moved < required {
            let suggested = next_version(before, impact);
            out.push(
                Finding::new(
                    "semver-bump-too-small",
                    Level::Error,
                    name,
                    format!(
                        "`{name}` has a {impact} change (`{because}`) but its version went from {before} to {after}",
                    ),
                )
                .with_fix(format!("set {declared_in} to {suggested}")),
            );
            to_set.push(format!("{declared_in} to {suggested}"));
        } else if moved == Bump::Major && impact < Impact::Major {
            out.push(Finding::new(
                "semver-needless-major",
                Level::Warning,
                name,
                format!("`{name}` went from {before} to {after}, a major bump, but its largest change is {impact}"),
            ));
        }
    }
    // The first fix a reader sees names every version to set, so one edit fixes them all.
    if to_set.len() > 1
        && let Some(first) = out.iter_mut().find(|f| f.rule == "semver-bump-too-small")
    {
        first.fix = Some(format!("set {}", to_set.join("; set ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn bumps_follow_cargo_compatibility() {
        assert_eq!(bump(&v("1.2.3"), &v("2.0.0")), Bump::Major);
        assert_eq!(bump(&v("1.2.3"), &v("1.3.0")), Bump::Minor);
        assert_eq!(bump(&v("1.2.3"), &v("1.2.4")), Bump::Patch);
        assert_eq!(bump(&v("0.1.0"), &v("0.2.0")), Bump::Major);
        assert_eq!(bump(&v("0.1.0"), &v("0.1.1")), Bump::Minor);
        assert_eq!(bump(&v("0.0.1"), &v("0.0.2")), Bump::Major);
        assert_eq!(bump(&v("0.1.0"), &v("0.1.0")), Bump::None);
        assert_eq!(bump(&v("0.2.0"), &v("0.1.9")), Bump::Lowered);
        assert_eq!(bump(&v("1.0.0-rc.1"), &v("1.0.0")), Bump::Patch);
    }

    #[test]
    fn suggested_versions_are_the_smallest_sufficient_bump() {
        for (old, impact) in [
            ("0.1.0", Impact::Major),
            ("0.1.0", Impact::Minor),
            ("0.0.3", Impact::Minor),
            ("1.4.2", Impact::Major),
            ("1.4.2", Impact::Minor),
            ("1.4.2", Impact::Patch),
        ] {
            let next = next_version(&v(old), impact);
            let moved = bump(&v(old), &next);
            let needed = match impact {
                Impact::Major => Bump::Major,
                Impact::Minor => Bump::Minor,
                Impact::Patch => Bump::Patch,
            };
            assert!(
                moved >= needed,
                "{old} -> {next} is {moved:?}, needs {needed:?}"
            );
        }
        assert_eq!(next_version(&v("0.1.0"), Impact::Major), v("0.2.0"));
        assert_eq!(next_version(&v("0.1.0"), Impact::Minor), v("0.1.1"));
        assert_eq!(next_version(&v("1.4.2"), Impact::Major), v("2.0.0"));
    }
}
