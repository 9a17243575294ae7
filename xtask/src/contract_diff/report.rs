//! The four outputs of contract-diff: text for people, JSON for tools, GitHub workflow
//! annotations, and SARIF 2.1.0 for code-scanning dashboards.

use ops_registry::contract_policy::{Finding, Level};
use serde_json::{Value, json};

use super::SNAPSHOT_PATH;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Github,
    Sarif,
}

impl Format {
    pub fn render(self, findings: &[Finding]) -> String {
        match self {
            Format::Text => text(findings),
            Format::Json => {
                let violations = findings.iter().filter(|f| f.is_violation()).count();
                let document = json!({"violations": violations, "findings": findings});
                format!("{document}\n")
            }
            Format::Github => findings.iter().map(github).collect(),
            Format::Sarif => format!("{:#}\n", sarif(findings)),
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Note => "note",
    }
}

fn heading(finding: &Finding) -> String {
    let version = finding
        .version
        .map(|v| format!(" v{v}"))
        .unwrap_or_default();
    format!("{}{version}: {}", finding.subject, finding.message)
}

fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let label = if finding.accepted.is_some() {
            "accepted"
        } else {
            level_name(finding.level)
        };
        out.push_str(&format!("{label}[{}] {}\n", finding.rule, heading(finding)));
        if let Some(location) = &finding.location {
            out.push_str(&format!("  --> {}:{}\n", location.file, location.line));
        }
        for change in &finding.changes {
            out.push_str(&format!(
                "  = {} (old {}, new {}): {}\n",
                change.rule,
                change.old_pointer.as_deref().unwrap_or("-"),
                change.new_pointer.as_deref().unwrap_or("-"),
                change.message
            ));
        }
        if let Some(reason) = &finding.accepted {
            out.push_str(&format!("  = accepted because: {reason}\n"));
        } else if let Some(fix) = &finding.fix {
            out.push_str(&format!("  = fix: {}\n", fix.replace('\n', "\n    ")));
        }
    }
    let count = |level| {
        findings
            .iter()
            .filter(|f| f.level == level && f.accepted.is_none())
            .count()
    };
    let accepted = findings.iter().filter(|f| f.accepted.is_some()).count();
    out.push_str(&format!(
        "contract-diff: {} error(s), {} warning(s), {} note(s), {accepted} accepted\n",
        count(Level::Error),
        count(Level::Warning),
        count(Level::Note)
    ));
    out
}

/// `::error file=F,line=L,title=T::message`, escaped as the workflow command syntax asks.
fn github(finding: &Finding) -> String {
    let command = match (finding.accepted.is_some(), finding.level) {
        (true, _) | (false, Level::Note) => "notice",
        (false, Level::Warning) => "warning",
        (false, Level::Error) => "error",
    };
    let escape_data = |text: &str| {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_property = |text: &str| escape_data(text).replace(':', "%3A").replace(',', "%2C");
    let mut properties = Vec::new();
    if let Some(location) = &finding.location {
        properties.push(format!("file={}", escape_property(&location.file)));
        properties.push(format!("line={}", location.line));
    } else {
        properties.push(format!("file={SNAPSHOT_PATH}"));
    }
    properties.push(format!(
        "title={}",
        escape_property(&format!("contract-diff {}", finding.rule))
    ));
    let mut message = heading(finding);
    if let Some(reason) = &finding.accepted {
        message.push_str(&format!("\naccepted because: {reason}"));
    } else if let Some(fix) = &finding.fix {
        message.push_str(&format!("\nfix: {fix}"));
    }
    format!(
        "::{command} {}::{}\n",
        properties.join(","),
        escape_data(&message)
    )
}

fn sarif(findings: &[Finding]) -> Value {
    let mut rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = findings
        .iter()
        .map(|finding| {
            let (uri, line) = finding
                .location
                .as_ref()
                .map_or((SNAPSHOT_PATH, 1), |l| (l.file.as_str(), l.line.max(1)));
            let mut text = heading(finding);
            if let Some(fix) = &finding.fix {
                text.push_str(&format!("\nfix: {fix}"));
            }
            let mut result = json!({
                "ruleId": finding.rule,
                "ruleIndex": rules.binary_search(&finding.rule).unwrap_or_default(),
                "level": level_name(finding.level),
                "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": line}
                }}],
            });
            if let Some(reason) = &finding.accepted {
                result["suppressions"] = json!([{"kind": "external", "justification": reason}]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "contract-diff",
                "rules": rules.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ops_registry::document::SourceLocation;

    fn finding() -> Finding {
        let mut finding = Finding::new(
            "schema-changed-in-place",
            Level::Error,
            "pack.a.b.C",
            "50% changed, badly".to_owned(),
        );
        finding.version = Some(1);
        finding.fix = Some("line one\nline two".to_owned());
        finding.location = Some(SourceLocation {
            file: "contracts/a/src/lib.rs".to_owned(),
            line: 7,
        });
        finding
    }

    #[test]
    fn github_annotations_escape_their_data() {
        let line = github(&finding());
        assert_eq!(
            line,
            "::error file=contracts/a/src/lib.rs,line=7,title=contract-diff schema-changed-in-place::pack.a.b.C v1: 50%25 changed, badly%0Afix: line one%0Aline two\n"
        );
    }

    #[test]
    fn sarif_has_the_required_shape_and_marks_acceptances_as_suppressions() {
        let mut accepted = finding();
        accepted.accepted = Some("reviewed".to_owned());
        let document = sarif(&[finding(), accepted]);
        assert_eq!(document["version"], "2.1.0");
        let results = document["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["level"], "error");
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            7
        );
        assert!(results[0].get("suppressions").is_none());
        assert_eq!(results[1]["suppressions"][0]["justification"], "reviewed");
        assert_eq!(
            document["runs"][0]["tool"]["driver"]["rules"][0]["id"],
            "schema-changed-in-place"
        );
    }
}
