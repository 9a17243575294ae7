//! `registry/acceptances.toml`: findings accepted one at a time, each with its reason.
//!
//! ```toml
//! [[accept]]
//! rule = "envelope-version-changed"
//! subject = "envelope"
//! # version = 2          (optional: only this payload version)
//! reason = "core review 2026-11-20: adds `tenant_id`, readers upgraded first"
//! ```

use std::path::Path;

use anyhow::{Context, bail};
use ops_registry::contract_policy::{Finding, Level};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptances {
    #[serde(default)]
    accept: Vec<Acceptance>,
    #[serde(skip)]
    origin: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Acceptance {
    rule: String,
    subject: String,
    version: Option<u32>,
    reason: Option<String>,
}

/// A missing file accepts nothing; an acceptance without a reason is an input error.
pub fn read(path: &Path) -> anyhow::Result<Acceptances> {
    let origin = path.display().to_string();
    if !path.exists() {
        return Ok(Acceptances {
            origin,
            ..Acceptances::default()
        });
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{origin}: cannot read"))?;
    parse(&text, &origin)
}

fn parse(text: &str, origin: &str) -> anyhow::Result<Acceptances> {
    let mut acceptances: Acceptances =
        toml::from_str(text).with_context(|| format!("{origin}: not an acceptances file"))?;
    for (index, acceptance) in acceptances.accept.iter().enumerate() {
        if acceptance
            .reason
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
        {
            bail!(
                "{origin}: acceptance {} (rule `{}`, subject `{}`) has no reason; add `reason = \"...\"` saying why the change is acceptable",
                index + 1,
                acceptance.rule,
                acceptance.subject
            );
        }
    }
    acceptances.origin = origin.to_owned();
    Ok(acceptances)
}

impl Acceptances {
    /// Marks the matching findings accepted; returns a warning for each acceptance that
    /// matched nothing, so stale ones get cleaned up.
    pub fn apply(&self, findings: &mut [Finding]) -> Vec<Finding> {
        let mut unused = Vec::new();
        for acceptance in &self.accept {
            let mut matched = false;
            for finding in findings.iter_mut().filter(|finding| {
                finding.rule == acceptance.rule
                    && finding.subject == acceptance.subject
                    && acceptance
                        .version
                        .is_none_or(|v| finding.version == Some(v))
            }) {
                finding.accepted = acceptance.reason.clone();
                matched = true;
            }
            if !matched {
                let mut finding = Finding::new(
                    "acceptance-unused",
                    Level::Warning,
                    &acceptance.subject,
                    format!(
                        "{} accepts `{}` for `{}`, but there is no such finding",
                        self.origin, acceptance.rule, acceptance.subject
                    ),
                );
                finding.fix = Some(format!("remove it from {}", self.origin));
                unused.push(finding);
            }
        }
        unused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &'static str, subject: &str) -> Finding {
        Finding::new(rule, Level::Error, subject, "message".to_owned())
    }

    #[test]
    fn an_acceptance_without_a_reason_is_an_error_naming_it() {
        let error = parse(
            "[[accept]]\nrule = \"safety-lowered\"\nsubject = \"pack.a.b.C\"\nreason = \" \"\n",
            "acceptances.toml",
        )
        .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("acceptance 1") && message.contains("safety-lowered"),
            "{message}"
        );
        assert!(parse("[[accept]]\nrule = \"r\"\nsubject = \"s\"\n", "f").is_err());
    }

    #[test]
    fn acceptances_match_rule_subject_and_version() {
        let acceptances = parse(
            "[[accept]]\nrule = \"safety-lowered\"\nsubject = \"pack.a.b.C\"\nreason = \"reviewed\"\n\n[[accept]]\nrule = \"schema-changed-in-place\"\nsubject = \"pack.a.b.C\"\nversion = 9\nreason = \"gone\"\n",
            "acceptances.toml",
        )
        .unwrap();
        let mut findings = vec![
            finding("safety-lowered", "pack.a.b.C"),
            finding("safety-lowered", "pack.a.b.D"),
        ];
        let unused = acceptances.apply(&mut findings);
        assert_eq!(findings[0].accepted.as_deref(), Some("reviewed"));
        assert!(!findings[0].is_violation());
        assert!(findings[1].is_violation());
        assert_eq!(unused.len(), 1);
        assert_eq!(unused[0].rule, "acceptance-unused");
    }
}
