//! `cargo ops schema-diff OLD.json NEW.json [--format text|json]`.

use std::path::Path;

use anyhow::{Context, anyhow};
use schema_compat::{Report, Verdict as Answer, compare};

use crate::Verdict;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Exit 0 whenever the two schemas could be compared, whatever the verdict.
pub fn run(old: &Path, new: &Path, format: Format) -> anyhow::Result<Verdict> {
    let (old_schema, new_schema) = (read_json(old)?, read_json(new)?);
    let report = compare(&old_schema, &new_schema).map_err(|error| {
        let file = if error.which == "old" { old } else { new };
        anyhow!(
            "{}: at `{}`: {}",
            file.display(),
            error.pointer,
            error.message
        )
    })?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Text => print!("{}", text(&report)),
    }
    Ok(Verdict::Clean)
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        anyhow!(
            "{}: not JSON at line {}, column {}: {error}",
            path.display(),
            error.line(),
            error.column()
        )
    })
}

pub fn text(report: &Report) -> String {
    let verdict = |verdict: &Answer, producer: &str| match verdict {
        Answer::Compatible => "compatible".to_owned(),
        Answer::Incompatible { witness } => {
            format!("BREAKING: {producer} writes {witness}, which the other side refuses")
        }
        Answer::Undecidable { reason } => format!("BREAKING (cannot be decided: {reason})"),
    };
    let mut out = format!(
        "backward (new reads old): {}\nforward (old reads new): {}\n",
        verdict(&report.backward, "old"),
        verdict(&report.forward, "new")
    );
    for change in &report.changes {
        let breaks = match (change.backward, change.forward) {
            (true, true) => "breaks both",
            (true, false) => "breaks backward",
            (false, true) => "breaks forward",
            (false, false) => "compatible",
        };
        out.push_str(&format!(
            "  {:<16} {:<28} old {} new {}: {}{}\n",
            breaks,
            change.rule.id(),
            change.old_pointer.as_deref().unwrap_or("-"),
            change.new_pointer.as_deref().unwrap_or("-"),
            change.message,
            change
                .witness
                .as_ref()
                .map(|w| format!(" (for example {w})"))
                .unwrap_or_default()
        ));
    }
    out
}
