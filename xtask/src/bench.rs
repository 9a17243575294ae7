//! `cargo xtask bench`: performance, always as a ratio against a baseline measured in the
//! same run on the same data, because this machine is shared and noisy. Benchmarks build
//! in release: from a debug build the command re-runs itself through `cargo run --release`.
//! The storage benchmarks live in `ops-tests` (`storage_bench`), which links the packs'
//! types; this command runs them and prints every result the same way.

use cargo_ops::workspace::cargo;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ops_registry::contract_policy::{compare, semver_findings};
use ops_registry::document::Export;
use ops_registry::generated::{self, event, insert, set_schema, struct_schema};
use ops_registry::snapshot::Snapshot;
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    /// The contract-diff policy over a generated registry of 5,000 types.
    ContractDiff,
    /// The schema engine on every pair of the public corpus (`schema-compat/tests/corpus`).
    SchemaEngine,
    /// Append, replay and event ids on SQLite and PostgreSQL (needs `DATABASE_URL`).
    Storage,
    /// A contract crate's compile time with our macros against plain `serde` + `schemars`.
    CompileTime,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    /// One JSON object per line: `{"name", "ours_per_s", "baseline_per_s", "ratio"}`.
    Json,
}

const RUNS: usize = 7;

pub fn run(only: Option<Bench>, format: Format) -> anyhow::Result<crate::Verdict> {
    if cfg!(debug_assertions) {
        return rerun_in_release(only, format);
    }
    let wanted = |bench| only.is_none_or(|only| only == bench);
    if wanted(Bench::ContractDiff) {
        print_line(&contract_diff(5_000), format);
    }
    if wanted(Bench::SchemaEngine) {
        print_line(&schema_engine()?, format);
    }
    if wanted(Bench::CompileTime) {
        print_line(&compile_time()?, format);
    }
    if wanted(Bench::Storage) {
        let output = cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "ops-tests",
                "--bin",
                "storage_bench",
            ])
            .output()
            .context("running the storage benchmarks")?;
        if !output.status.success() {
            bail!(
                "the storage benchmarks failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // Rows `<bench>_<workers>_<backend>`: each one's throughput over the same bench's
        // with one worker, measured earlier in the same run.
        let mut one_worker: std::collections::HashMap<String, f64> = Default::default();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let timing: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("the storage benchmarks printed `{line}`"))?;
            let seconds =
                |key: &str| Duration::from_secs_f64(timing[key].as_f64().unwrap_or_default());
            let mut result = measurement(
                timing["name"].as_str().unwrap_or_default(),
                timing["items"].as_u64().unwrap_or_default() as usize,
                seconds("ours_s"),
                seconds("baseline_s"),
            );
            for passed_on in [
                "p50_us",
                "p99_us",
                "peak_rss_mb",
                "rss_before_mb",
                "baseline_peak_rss_mb",
                "baseline_rss_before_mb",
            ] {
                if let Some(value) = timing.get(passed_on) {
                    result[passed_on] = value.clone();
                }
            }
            if timing.get("engine_s").is_some() {
                let items = timing["items"].as_f64().unwrap_or_default();
                let engine_per_s = items / seconds("engine_s").as_secs_f64();
                result["engine_per_s"] = json!(engine_per_s.round());
                result["ratio_to_engine"] = json!(
                    ((result["ours_per_s"].as_f64().unwrap_or_default() / engine_per_s) * 1000.0)
                        .round()
                        / 1000.0
                );
            }
            if let Some((bench, workers)) = per_workers(result["name"].as_str().unwrap_or_default())
            {
                let ours_per_s = result["ours_per_s"].as_f64().unwrap_or_default();
                if workers == 1 {
                    one_worker.insert(bench.clone(), ours_per_s);
                }
                if let Some(one) = one_worker.get(&bench) {
                    result["speedup_over_1_worker"] =
                        json!((ours_per_s / one * 100.0).round() / 100.0);
                }
            }
            print_line(&result, format);
        }
    }
    Ok(crate::Verdict::Clean)
}

/// A row of a bench run with several worker counts, `<bench>_<workers>_<backend>`: the
/// bench with its count left out, and the count.
fn per_workers(name: &str) -> Option<(String, u32)> {
    let mut parts: Vec<&str> = name.split('_').collect();
    let backend = parts.pop()?;
    let workers: u32 = parts.pop()?.parse().ok()?;
    let known = [
        "dispatch",
        "projection_catch_up",
        "projection_catch_up_split",
    ];
    let bench = parts.join("_");
    known
        .contains(&bench.as_str())
        .then(|| (format!("{bench}_{backend}"), workers))
}

fn rerun_in_release(only: Option<Bench>, format: Format) -> anyhow::Result<crate::Verdict> {
    let mut command = cargo();
    command.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "xtask",
        "--",
        "bench",
    ]);
    match only {
        Some(Bench::ContractDiff) => command.arg("contract-diff"),
        Some(Bench::Storage) => command.arg("storage"),
        Some(Bench::SchemaEngine) => command.arg("schema-engine"),
        Some(Bench::CompileTime) => command.arg("compile-time"),
        None => &mut command,
    };
    if format == Format::Json {
        command.args(["--format", "json"]);
    }
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!("the release build of the benchmarks failed");
    }
    Ok(crate::Verdict::Clean)
}

fn print_line(measurement: &serde_json::Value, format: Format) {
    match format {
        Format::Json => println!("{measurement}"),
        Format::Text => println!(
            "{:<32} ours {:>12}/s  baseline {:>12}/s  ratio {:.2}{}{}{}{}{}",
            measurement["name"].as_str().unwrap_or_default(),
            measurement["ours_per_s"],
            measurement["baseline_per_s"],
            measurement["ratio"].as_f64().unwrap_or_default(),
            measurement["p99_us"]
                .as_f64()
                .map(|p99| format!("  p99 {p99} µs"))
                .unwrap_or_default(),
            measurement["peak_rss_mb"]
                .as_u64()
                .map(|peak| format!(
                    "  peak RSS {peak} MiB (baseline {} MiB)",
                    measurement["baseline_peak_rss_mb"]
                ))
                .unwrap_or_default(),
            measurement["speedup_over_1_worker"]
                .as_f64()
                .map(|speedup| format!("  {speedup:.2}x one worker"))
                .unwrap_or_default(),
            measurement["ratio_to_engine"]
                .as_f64()
                .map(|ratio| format!(
                    "  engine {}/s, ratio to it {ratio:.2}",
                    measurement["engine_per_s"]
                ))
                .unwrap_or_default(),
            measurement["ours_s"]
                .as_f64()
                .map(|s| format!(
                    "  {:.3} s a run, {:.1} µs an item",
                    s,
                    measurement["us_per_item"].as_f64().unwrap_or_default()
                ))
                .unwrap_or_default()
        ),
    }
}

fn measurement(name: &str, items: usize, ours: Duration, baseline: Duration) -> serde_json::Value {
    let ours_per_s = items as f64 / ours.as_secs_f64();
    let baseline_per_s = items as f64 / baseline.as_secs_f64();
    json!({
        "name": name,
        "ours_per_s": ours_per_s.round(),
        "baseline_per_s": baseline_per_s.round(),
        "ratio": ((ours_per_s / baseline_per_s) * 1000.0).round() / 1000.0,
    })
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

/// A registry of `count` types against a copy where one type in ten changed compatibly,
/// one in fifty incompatibly, twenty were removed and fifty added.
fn contract_diff(count: usize) -> serde_json::Value {
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
    std::hint::black_box(findings);
    // Per type: how many types a second the policy compares.
    let mut result = measurement("contract_diff_5000_types", count, ours, baseline);
    with_absolute(&mut result, count, ours);
    result
}

/// The whole run's time and the time per item, where a target is absolute (the policy
/// over 5,000 types under 0.3 s) or the figure asked for is per item.
fn with_absolute(result: &mut serde_json::Value, items: usize, ours: Duration) {
    result["ours_s"] = json!((ours.as_secs_f64() * 1e6).round() / 1e6);
    result["us_per_item"] = json!((ours.as_secs_f64() * 1e7 / items as f64).round() / 10.0);
}

/// Both directions of every pair of the public corpus, against a baseline that reads the
/// same pairs into validators (what any checker does before it compares).
fn schema_engine() -> anyhow::Result<serde_json::Value> {
    let folder = crate::repo_root().join("schema-compat/tests/corpus");
    let mut pairs: Vec<(serde_json::Value, serde_json::Value)> = Vec::new();
    for entry in
        std::fs::read_dir(&folder).with_context(|| format!("{}: cannot list", folder.display()))?
    {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let document: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        for case in document["cases"].as_array().into_iter().flatten() {
            pairs.push((case["old"].clone(), case["new"].clone()));
        }
    }
    let ours = median(|| {
        for (old, new) in &pairs {
            std::hint::black_box(schema_compat::compare(old, new).ok());
        }
    });
    let baseline = median(|| {
        for (old, new) in &pairs {
            std::hint::black_box((
                jsonschema::validator_for(old).is_ok(),
                jsonschema::validator_for(new).is_ok(),
            ));
        }
    });
    let mut result = measurement(
        "schema_engine_public_corpus_pairs",
        pairs.len(),
        ours,
        baseline,
    );
    with_absolute(&mut result, pairs.len(), ours);
    Ok(result)
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

/// Event types in each crate of the compile-time benchmark.
const COMPILED_TYPES: usize = 60;

/// A contract crate of [`COMPILED_TYPES`] public event types declared with our macros
/// (`#[event]`: namespaced name, JSON Schema, registration, ownership checks) against the same
/// types with plain `serde` + `schemars` derives (the same `Serialize`, `Deserialize` and
/// `JsonSchema`, nothing else): the same work a contract crate asks of the compiler, less what
/// only our macros add. Both crates are generated into `target/compile-bench/` (a workspace
/// of its own, this repository's lock file, so the same dependency versions), built once for
/// their dependencies, then rebuilt with only their own source touched; the median of
/// [`RUNS`] each. Rate: types compiled a second (aim: ours at least 1/1.2 of plain).
fn compile_time() -> anyhow::Result<serde_json::Value> {
    let root = crate::repo_root();
    let dir = root.join("target/compile-bench");
    let fields = "    pub id: String,\n    pub count: u32,\n    pub note: Option<String>,\n    pub tags: Vec<String>,\n";
    let ours_source: String = (0..COMPILED_TYPES)
        .map(|n| {
            format!(
                "/// Bench event {n}.\n#[event(public, domain = \"bench\", version = 1)]\n#[derive(Clone, Debug, PartialEq)]\npub struct Happened{n} {{\n{fields}}}\n\n"
            )
        })
        .collect();
    let plain_source: String = (0..COMPILED_TYPES)
        .map(|n| {
            format!(
                "/// Bench event {n}.\n#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]\npub struct Happened{n} {{\n{fields}}}\n\n"
            )
        })
        .collect();
    let core = root.join("core/api");
    let crates = [
        (
            "ours",
            "ops-contract-benchtypes",
            format!("ops-core = {{ path = {:?} }}\n", core.display().to_string()),
            format!(
                "#![no_std]\n#![forbid(unsafe_code)]\nextern crate alloc;\nuse alloc::string::String;\nuse alloc::vec::Vec;\nuse ops_core::event;\nuse ops_core::prelude::*;\n\n{ours_source}"
            ),
        ),
        (
            "plain",
            "plain-benchtypes",
            "serde = { version = \"1\", features = [\"derive\"] }\nschemars = \"1\"\n".to_owned(),
            plain_source,
        ),
    ];
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"ours\", \"plain\"]\nresolver = \"3\"\n",
    )?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    for (name, package, dependencies, source) in &crates {
        std::fs::create_dir_all(dir.join(name).join("src"))?;
        std::fs::write(
            dir.join(name).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n{dependencies}"
            ),
        )?;
        std::fs::write(dir.join(name).join("src/lib.rs"), source)?;
    }
    let build = |(name, package, _, _): &(&str, &str, String, String)| -> anyhow::Result<Duration> {
        let source = dir.join(name).join("src/lib.rs");
        // A new modification time: cargo rebuilds the crate and nothing it depends on.
        std::fs::File::options()
            .append(true)
            .open(&source)?
            .set_modified(std::time::SystemTime::now())?;
        let started = Instant::now();
        let output = cargo()
            .args(["build", "--quiet", "--package", package])
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .current_dir(&dir)
            .output()
            .context("running cargo")?;
        if !output.status.success() {
            bail!(
                "the {name} crate of the compile-time benchmark did not build:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(started.elapsed())
    };
    // Dependencies first, outside the timings.
    let [ours_crate, plain_crate] = &crates;
    build(ours_crate)?;
    build(plain_crate)?;
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(build(ours_crate)?);
        plain.push(build(plain_crate)?);
    }
    ours.sort();
    plain.sort();
    let mut result = measurement(
        "compile_time_60_event_types",
        COMPILED_TYPES,
        ours[RUNS / 2],
        plain[RUNS / 2],
    );
    with_absolute(&mut result, COMPILED_TYPES, ours[RUNS / 2]);
    Ok(result)
}
