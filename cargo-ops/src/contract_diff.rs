//! `cargo ops contract-diff`: builds the current registry through the host's export,
//! compares it with the committed snapshot under the policy of `ops_registry::contract_policy`, runs
//! the upcasters of new payload versions on samples of the old ones, checks semver, applies
//! the committed acceptances and reports.

mod acceptances;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use ops_registry::contract_policy::{self as policy, Finding, Level, UpcastCheck};
use ops_registry::document::Export;
use ops_registry::snapshot::{SNAPSHOT_FORMAT, Snapshot};
use schema_compat::instances;
use serde_json::{Value, json};

pub use report::Format;

use crate::Verdict;
use crate::workspace::{Host, Workspace};

pub const SNAPSHOT_PATH: &str = "registry/snapshot.json";
pub const ACCEPTANCES_PATH: &str = "registry/acceptances.toml";

#[derive(clap::Args)]
pub struct Options {
    /// The snapshot to compare with: a file, or a git ref whose `registry/snapshot.json`
    /// is read (default: the committed file in the working tree).
    #[arg(long, value_name = "PATH|GIT_REF")]
    against: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// After a deliberate change, record the current registry in the snapshot. Refused
    /// while violations remain.
    #[arg(long)]
    bless: bool,
    /// Fail when the snapshot does not record the current registry yet (CI uses this, so
    /// the history never skips a version).
    #[arg(long)]
    require_blessed: bool,
    /// The workspace to check (default: the current directory's).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

pub fn run(options: &Options) -> anyhow::Result<Verdict> {
    let checked = Workspace::open(options.workspace.as_deref())?;
    let workspace = checked.root.clone();
    let acceptances = acceptances::read(&workspace.join(ACCEPTANCES_PATH))?;
    let host = Host::new(&checked)?;
    let scratch = Scratch::new()?;
    let export = host.export(&scratch.0)?;
    let snapshot_path = workspace.join(SNAPSHOT_PATH);
    let old = match &options.against {
        Some(against) => read_against(&workspace, against)?,
        None if !snapshot_path.exists() && options.bless => Snapshot {
            format: SNAPSHOT_FORMAT,
            envelope_version: export.document.envelope_version,
            crates: Default::default(),
            types: Default::default(),
            packs: Default::default(),
        },
        None if !snapshot_path.exists() => bail!(
            "{}: no snapshot yet; record the current registry with `cargo ops contract-diff --bless`",
            snapshot_path.display()
        ),
        None => Snapshot::read(&snapshot_path)?,
    };

    let comparison = policy::compare(&old, &export);
    let mut findings = comparison.findings;
    findings.extend(check_upcasters(
        &comparison.upcast_checks,
        &host,
        &scratch.0,
    )?);
    let blessed = old.blessed(&export);
    findings.extend(policy::semver_findings(&old, &blessed, &findings));
    if blessed != old && !options.bless {
        let level = if options.require_blessed {
            Level::Error
        } else {
            Level::Note
        };
        findings.push(Finding::new(
            "snapshot-not-blessed",
            level,
            SNAPSHOT_PATH,
            "the snapshot does not record the current registry yet".to_owned(),
        ));
        if let Some(last) = findings.last_mut() {
            last.fix = Some(
                "review the findings above, then run `cargo ops contract-diff --bless` and commit the snapshot".to_owned(),
            );
        }
    }
    let unused = acceptances.apply(&mut findings);
    findings.extend(unused);
    findings.sort_by(|a, b| {
        (b.level, &a.subject, a.version, a.rule).cmp(&(a.level, &b.subject, b.version, b.rule))
    });

    print!("{}", options.format.render(&findings));
    let violations = findings.iter().filter(|f| f.is_violation()).count();
    if options.bless {
        if violations > 0 {
            eprintln!("not blessed: {violations} violation(s) remain; fix or accept them first");
            return Ok(Verdict::Violations);
        }
        blessed.write(&snapshot_path)?;
        eprintln!("blessed {}", snapshot_path.display());
        return Ok(Verdict::Clean);
    }
    Ok(if violations > 0 {
        Verdict::Violations
    } else {
        Verdict::Clean
    })
}

/// A file path, or else a git ref of the checked workspace.
fn read_against(workspace: &Path, against: &str) -> anyhow::Result<Snapshot> {
    let as_path = PathBuf::from(against);
    if as_path.is_file() {
        return Ok(Snapshot::read(&as_path)?);
    }
    let origin = format!("{against}:{SNAPSHOT_PATH}");
    let output = Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(["show", &origin])
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!(
            "--against `{against}` is neither a file nor a git ref with {SNAPSHOT_PATH}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(Snapshot::parse(
        &String::from_utf8_lossy(&output.stdout),
        &origin,
    )?)
}

/// What contract-diff asks of the checked workspace's host: its registry, and its
/// upcasters on samples.
impl Host {
    pub fn export(&self, scratch: &Path) -> anyhow::Result<Export> {
        let dir = scratch.join("export");
        self.run(&["registry", "export", "--out", path_str(&dir)?])?;
        Ok(Export::read_from(&dir)?)
    }

    fn upcast(&self, scratch: &Path, stored: &[Value]) -> anyhow::Result<Vec<Value>> {
        let input = scratch.join("upcast-input.json");
        std::fs::write(&input, serde_json::to_vec(stored)?)
            .with_context(|| format!("writing {}", input.display()))?;
        let answer = self.run(&["registry", "upcast", "--input", path_str(&input)?])?;
        let answers: Vec<Value> = serde_json::from_str(&answer)
            .context("`ops-host registry upcast` did not answer a JSON array")?;
        if answers.len() != stored.len() {
            bail!(
                "`ops-host registry upcast` answered {} payloads for {}",
                answers.len(),
                stored.len()
            );
        }
        Ok(answers)
    }
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("contract-diff-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Each check's valid samples of its old version. A check with none cannot be run, and
/// that is an error: an upcaster nothing has run is not known to read stored events.
fn samples_of(checks: &[UpcastCheck]) -> (Vec<Finding>, Vec<(&UpcastCheck, Vec<Value>)>) {
    let mut findings = Vec::new();
    let mut sampled = Vec::new();
    for check in checks {
        let samples: Vec<Value> = match jsonschema::validator_for(&check.old_schema) {
            Ok(validator) => instances::samples(&check.old_schema)
                .into_iter()
                .filter(|sample| validator.is_valid(sample))
                .collect(),
            Err(error) => {
                findings.push(upcast_finding(
                    check,
                    "upcaster-unchecked",
                    Level::Error,
                    format!(
                        "the recorded schema of v{} is not usable, so the upcaster cannot be run: {error}",
                        check.from_version
                    ),
                ));
                continue;
            }
        };
        if samples.is_empty() {
            let mut finding = upcast_finding(
                check,
                "upcaster-unchecked",
                Level::Error,
                format!(
                    "no valid sample of v{} could be made, so the upcaster cannot be run on any",
                    check.from_version
                ),
            );
            finding.fix = Some(format!(
                "add `#[schemars(example = ...)]` to v{} of `{}`, so its upcaster is run on it",
                check.from_version, check.type_name
            ));
            findings.push(finding);
            continue;
        }
        sampled.push((check, samples));
    }
    (findings, sampled)
}

/// Samples of each old version, read through the new build's upcasters, must be valid
/// under the new schema.
fn check_upcasters(
    checks: &[UpcastCheck],
    host: &Host,
    scratch: &Path,
) -> anyhow::Result<Vec<Finding>> {
    let (mut findings, sampled) = samples_of(checks);
    let stored: Vec<Value> = sampled
        .iter()
        .flat_map(|(check, samples)| {
            samples.iter().map(|sample| {
                json!({"type": check.stored_name, "version": check.from_version, "payload": sample})
            })
        })
        .collect();
    let mut answers = if stored.is_empty() {
        Vec::new()
    } else {
        host.upcast(scratch, &stored)?
    }
    .into_iter();
    for (check, samples) in sampled {
        let validator = jsonschema::validator_for(&check.new_schema).map_err(|error| {
            anyhow!(
                "the schema of `{}` v{}: {error}",
                check.type_name,
                check.to_version
            )
        })?;
        let mut failures = Vec::new();
        for sample in &samples {
            let answer = answers.next().unwrap_or(Value::Null);
            if let Some(error) = answer.get("error").and_then(Value::as_str) {
                failures.push(format!("{sample} does not upcast: {error}"));
            } else if let Some(error) = validator.iter_errors(&answer["payload"]).next() {
                failures.push(format!(
                    "{sample} upcasts to {}, invalid at `{}`: {error}",
                    answer["payload"],
                    error.instance_path()
                ));
            }
        }
        findings.push(if failures.is_empty() {
            upcast_finding(
                check,
                "upcaster-checked",
                Level::Note,
                format!(
                    "{} sample(s) of v{} upcast to valid v{} payloads",
                    samples.len(),
                    check.from_version,
                    check.to_version
                ),
            )
        } else {
            upcast_finding(
                check,
                "upcaster-failed",
                Level::Error,
                format!(
                    "the upcaster from v{} to v{} fails on {} of {} sample(s): {}",
                    check.from_version,
                    check.to_version,
                    failures.len(),
                    samples.len(),
                    failures.join("; ")
                ),
            )
        });
    }
    Ok(findings)
}

fn upcast_finding(
    check: &UpcastCheck,
    rule: &'static str,
    level: Level,
    message: String,
) -> Finding {
    let mut finding = Finding::new(rule, level, &check.type_name, message);
    finding.version = Some(check.from_version);
    finding.location = check.location.clone();
    finding
}

/// `cargo ops export`: the host's registry export, written to `out` (default:
/// `registry/export` in the workspace).
pub fn export(workspace: Option<&Path>, out: Option<PathBuf>) -> anyhow::Result<Verdict> {
    let checked = Workspace::open(workspace)?;
    let out = out.unwrap_or_else(|| checked.root.join("registry/export"));
    let said = Host::new(&checked)?.run(&["registry", "export", "--out", path_str(&out)?])?;
    print!("{said}");
    Ok(Verdict::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(old_schema: Value) -> UpcastCheck {
        UpcastCheck {
            type_name: "pack.notes.note.NoteAdded".to_owned(),
            stored_name: "pack.notes.note.NoteAdded".to_owned(),
            from_version: 1,
            to_version: 2,
            old_schema,
            new_schema: json!({"type": "object"}),
            location: None,
        }
    }

    /// An upcaster that no sample of the old version can be run through fails the diff,
    /// naming the fix; one with samples goes on to be run.
    #[test]
    fn an_upcaster_that_cannot_be_run_is_an_error() {
        let impossible = check(json!({
            "type": "object",
            "properties": {"body": {"type": "string", "minLength": 5, "maxLength": 2}},
            "required": ["body"]
        }));
        let (findings, sampled) = samples_of(std::slice::from_ref(&impossible));
        assert!(sampled.is_empty());
        assert_eq!(findings.len(), 1);
        assert_eq!(
            (findings[0].rule, findings[0].level),
            ("upcaster-unchecked", Level::Error)
        );
        assert!(
            findings[0]
                .fix
                .as_deref()
                .is_some_and(|fix| fix.contains("#[schemars(example = ...)]")),
            "{:?}",
            findings[0].fix
        );
        let possible = check(json!({
            "type": "object",
            "properties": {"body": {"type": "string"}},
            "required": ["body"]
        }));
        let (findings, sampled) = samples_of(std::slice::from_ref(&possible));
        assert!(findings.is_empty());
        assert_eq!(sampled.len(), 1);
        assert!(!sampled[0].1.is_empty());
    }
}
