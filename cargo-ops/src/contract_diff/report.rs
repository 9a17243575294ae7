//! The four outputs of contract-diff: text for people, JSON for tools, GitHub workflow
//! annotations, and SARIF 2.1.0 for code-scanning dashboards.

use ops_registry::contract_policy::{self, Finding, Level};
use schema_compat::{Change, Rule};
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
        for line in detail_lines(finding) {
            out.push_str(&format!("  = {line}\n"));
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

fn breaks(change: &Change) -> &'static str {
    match (change.backward, change.forward) {
        (true, true) => "breaks backward and forward",
        (true, false) => "breaks backward",
        (false, true) => "breaks forward",
        (false, false) => "compatible",
    }
}

/// One line per schema change (rule, pointers, direction, witness), then one per payload
/// that shows the break.
fn detail_lines(finding: &Finding) -> Vec<String> {
    let mut lines: Vec<String> = finding
        .changes
        .iter()
        .map(|change| {
            let mut line = format!(
                "{} (old {}, new {}), {}: {}",
                change.rule,
                change.old_pointer.as_deref().unwrap_or("-"),
                change.new_pointer.as_deref().unwrap_or("-"),
                breaks(change),
                change.message
            );
            if let Some(witness) = &change.witness {
                line.push_str(&format!("; for example {witness}"));
            }
            line
        })
        .collect();
    lines.extend(
        finding
            .witnesses
            .iter()
            .map(|w| w.sentence(finding.version)),
    );
    lines
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
    for line in detail_lines(finding) {
        message.push_str(&format!("\n{line}"));
    }
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
            for line in detail_lines(finding) {
                text.push_str(&format!("\n{line}"));
            }
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
            if !finding.changes.is_empty() || !finding.witnesses.is_empty() {
                result["properties"] =
                    json!({"changes": finding.changes, "witnesses": finding.witnesses});
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
                "rules": rules.iter().map(|id| sarif_rule(id)).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    })
}

/// A SARIF rule with its description: the policy's rules, and the schema change rules
/// findings carry.
fn sarif_rule(id: &str) -> Value {
    let description = contract_policy::describe(id)
        .or_else(|| {
            Rule::ALL
                .iter()
                .find(|r| r.id() == id)
                .map(|r| r.description())
        })
        .unwrap_or("A contract-diff finding.");
    json!({
        "id": id,
        "shortDescription": {"text": description},
        "fullDescription": {"text": description},
        "help": {"text": description},
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

    /// Every rule literal a finding is made with, in the policy and in contract-diff.
    fn rules_in_sources() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        let files = [
            "registry/src/contract_policy.rs",
            "cargo-ops/src/contract_diff.rs",
            "cargo-ops/src/contract_diff/acceptances.rs",
        ];
        let mut rules = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            for call in ["Finding::new(", "upcast_finding("] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    if let Some(start) = rest
                        .find('"')
                        .filter(|&q| rest[..q].matches(',').count() <= 1)
                    {
                        let literal = &rest[start + 1..];
                        let end = literal.find('"').unwrap();
                        rules.push(literal[..end].to_owned());
                    }
                }
            }
        }
        rules.retain(|rule| rule.contains('-'));
        rules.sort();
        rules.dedup();
        rules
    }

    #[test]
    fn every_rule_a_finding_can_carry_has_a_description() {
        let rules = rules_in_sources();
        assert!(rules.len() >= 15, "{rules:?}");
        for rule in rules {
            assert!(
                contract_policy::describe(&rule).is_some(),
                "rule `{rule}` has no description in `contract_policy::RULES`"
            );
        }
    }

    #[test]
    fn every_finding_shows_its_changes_and_witnesses_in_every_format() {
        let mut finding = finding();
        finding.changes = vec![Change {
            rule: Rule::TypeNarrowed,
            old_pointer: Some("/properties/by".to_owned()),
            new_pointer: Some("/properties/by".to_owned()),
            backward: true,
            forward: false,
            message: "`string` values are no longer allowed".to_owned(),
            witness: Some(json!("ana")),
        }];
        finding.witnesses = vec![ops_registry::contract_policy::Witness {
            direction: "backward",
            payload: json!({"by": "ana"}),
        }];
        let text = text(std::slice::from_ref(&finding));
        assert!(
            text.contains(
                "type-narrowed (old /properties/by, new /properties/by), breaks backward"
            ),
            "{text}"
        );
        assert!(
            text.contains("this v1 event no longer reads: {\"by\":\"ana\"}"),
            "{text}"
        );
        let annotation = github(&finding);
        assert!(
            annotation.contains("type-narrowed")
                && annotation.contains("this v1 event no longer reads"),
            "{annotation}"
        );
        let document = sarif(std::slice::from_ref(&finding));
        let result = &document["runs"][0]["results"][0];
        assert_eq!(result["properties"]["changes"][0]["rule"], "type-narrowed");
        assert_eq!(result["properties"]["changes"][0]["witness"], "ana");
        assert_eq!(result["properties"]["witnesses"][0]["payload"]["by"], "ana");
        let rule = &document["runs"][0]["tool"]["driver"]["rules"][0];
        assert_eq!(
            rule["shortDescription"]["text"],
            contract_policy::describe("schema-changed-in-place").unwrap()
        );
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
