//! `cargo xtask bench`: performance, always as a ratio against a baseline measured in the
//! same run on the same data, because this machine is shared and noisy. Benchmarks build
//! in release: from a debug build the command re-runs itself through `cargo run --release`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ops_registry::document::Export;
use ops_registry::generated::{self, event, insert, set_schema, struct_schema};
use ops_registry::policy::{compare, semver_findings};
use ops_registry::snapshot::Snapshot;
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    /// The contract-diff policy over a generated registry of 5,000 types.
    ContractDiff,
}

const RUNS: usize = 7;

pub fn run(only: Option<Bench>) -> anyhow::Result<crate::Verdict> {
    if cfg!(debug_assertions) {
        return rerun_in_release(only);
    }
    if only.is_none_or(|bench| bench == Bench::ContractDiff) {
        contract_diff(5_000);
    }
    Ok(crate::Verdict::Clean)
}

fn rerun_in_release(only: Option<Bench>) -> anyhow::Result<crate::Verdict> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "xtask",
        "--",
        "bench",
    ]);
    if let Some(Bench::ContractDiff) = only {
        command.arg("contract-diff");
    }
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!("the release build of the benchmarks failed");
    }
    Ok(crate::Verdict::Clean)
}

/// The median of `RUNS` timed runs of `work`.
fn median(mut work: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn report(name: &str, ours: Duration, baseline_name: &str, baseline: Duration) {
    println!(
        "{name}: {:.1} ms; baseline ({baseline_name}): {:.1} ms; ratio {:.2}x",
        ours.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
}

/// A registry of `count` types against a copy where one type in ten changed compatibly,
/// one in fifty incompatibly, twenty were removed and fifty added.
fn contract_diff(count: usize) {
    let old_export = generated::export(count);
    let old = Snapshot::of(&old_export);
    let new = changed_copy(&old_export, count);
    let mut findings = 0;
    let ours = median(|| {
        let comparison = compare(&old, &new);
        let blessed = old.blessed(&new);
        findings =
            comparison.findings.len() + semver_findings(&old, &blessed, &comparison.findings).len();
    });
    // The least any diff does: look up every recorded schema and test it for equality.
    let baseline = median(|| {
        let mut differing = 0;
        for (name, history) in &old.types {
            for (version, recorded) in &history.versions {
                if new.schema(name, *version) != Some(&recorded.schema) {
                    differing += 1;
                }
            }
        }
        std::hint::black_box(differing);
    });
    report(
        &format!("contract-diff policy, {count} types, {findings} findings"),
        ours,
        "look up and compare every schema for equality",
        baseline,
    );
}

fn changed_copy(old: &Export, count: usize) -> Export {
    let mut new = Export {
        document: old.document.clone(),
        schemas: old.schemas.clone(),
    };
    for index in (0..count).step_by(10) {
        let name = format!("Event{index}");
        let mut schema = struct_schema(&name, index);
        if index % 50 == 0 {
            schema["properties"]["count"] = json!({"type": "string"});
        } else {
            schema["properties"]["extra"] = json!({"type": ["string", "null"]});
        }
        set_schema(&mut new, &type_name(index), 1, schema);
    }
    let removed: Vec<String> = (0..20).map(|i| type_name(i * 97 + 3)).collect();
    new.document.types.retain(|t| !removed.contains(&t.name));
    for index in count..count + 50 {
        let name = format!("Event{index}");
        insert(
            &mut new,
            event(&format!("p{}", index / 50), &name, 1),
            struct_schema(&name, index),
        );
    }
    new
}

fn type_name(index: usize) -> String {
    format!("pack.p{}.generated.Event{index}", index / 50)
}
