//! What the end-to-end tests share: where this repository is and where its copies build,
//! editing a file of a workspace under test, and reading contract-diff's JSON report.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-ops is inside the repository")
        .to_owned()
}

/// Where copies of this workspace build (shared with `cargo ops acceptance`).
pub fn copies_target() -> PathBuf {
    cargo_ops::workspace::Workspace::open(Some(&repository()))
        .unwrap()
        .copies_target_dir()
}

/// Replaces the first `from` in `dir/file` with `to`; `from` must be there.
pub fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// A run of `cargo ops contract-diff --format json`.
pub struct Run {
    pub code: Option<i32>,
    pub report: Value,
    pub stderr: String,
}

impl Run {
    pub fn of(output: &Output) -> Run {
        Run {
            code: output.status.code(),
            report: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `(rule, subject)` of every finding.
    pub fn rules(&self) -> Vec<(String, String)> {
        self.report["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("no report; stderr:\n{}", self.stderr))
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_owned(),
                    f["subject"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub fn has(&self, rule: &str, subject: &str) -> bool {
        self.rules().iter().any(|(r, s)| r == rule && s == subject)
    }
}
