//! The public corpus: compatibility cases from six other tools' own test suites
//! (`tests/corpus/<suite>.json`, with where each came from and how that tool defines
//! compatibility), mapped to this crate's semantics (`tests/corpus/mapping.json`: every
//! verdict flipped from the tool's, with the reason). Each direction a suite states is
//! scored; an "incompatible" answer counts only with a witness that the independent
//! `jsonschema` crate confirms.

use std::collections::BTreeMap;

mod common;

use common::check_witness;
use schema_compat::{Verdict, compare};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Suite {
    suite: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    old: Value,
    new: Value,
    backward: Option<bool>,
    forward: Option<bool>,
}

#[derive(Deserialize)]
struct Mapping {
    suite: String,
    id: String,
    direction: String,
    compatible: bool,
    reason: String,
}

const SUITES: &[&str] = &[
    "jsoncompat",
    "confluent",
    "apicurio",
    "redpanda",
    "sentry",
    "karapace",
];

fn read(name: &str) -> String {
    let path = format!("{}/tests/corpus/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Default)]
struct Score {
    directions: usize,
    right: usize,
    /// Answers equal to the tool's own verdict, before mapping.
    agree: usize,
    unsound: usize,
    undecidable: usize,
}

#[test]
fn the_public_corpus_is_answered_soundly_and_almost_always_right() {
    let mappings: Vec<Mapping> = serde_json::from_str(&read("mapping")).expect("mapping.json");
    let mut flips: BTreeMap<(String, String, String), &Mapping> = BTreeMap::new();
    for mapping in &mappings {
        assert!(
            !mapping.reason.trim().is_empty(),
            "{}: a flipped verdict needs its reason",
            mapping.id
        );
        let key = (
            mapping.suite.clone(),
            mapping.id.clone(),
            mapping.direction.clone(),
        );
        assert!(
            flips.insert(key, mapping).is_none(),
            "{} {}: mapped twice",
            mapping.suite,
            mapping.id
        );
    }
    let mut used = 0;
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut bad_witnesses = Vec::new();
    for name in SUITES {
        let suite: Suite = serde_json::from_str(&read(name)).expect("a corpus file");
        let score = scores.entry(suite.suite.clone()).or_default();
        for case in &suite.cases {
            let report = compare(&case.old, &case.new);
            for (direction, stated) in [("backward", case.backward), ("forward", case.forward)] {
                let Some(stated) = stated else { continue };
                let key = (suite.suite.clone(), case.id.clone(), direction.to_owned());
                let expected = match flips.get(&key) {
                    Some(mapping) => {
                        used += 1;
                        assert_ne!(
                            mapping.compatible, stated,
                            "{key:?}: the mapping repeats the suite's verdict"
                        );
                        mapping.compatible
                    }
                    None => stated,
                };
                score.directions += 1;
                let verdict = match &report {
                    Ok(report) if direction == "backward" => report.backward.clone(),
                    Ok(report) => report.forward.clone(),
                    Err(error) => Verdict::Undecidable {
                        reason: error.to_string(),
                    },
                };
                let (producer, reader) = if direction == "backward" {
                    (&case.old, &case.new)
                } else {
                    (&case.new, &case.old)
                };
                if let Verdict::Incompatible { witness } = &verdict
                    && let Err(why) = check_witness(producer, reader, witness)
                {
                    bad_witnesses.push(format!("{key:?}: {why}"));
                }
                if verdict.is_compatible() == stated {
                    score.agree += 1;
                }
                match (&verdict, expected) {
                    (Verdict::Compatible, true) | (Verdict::Incompatible { .. }, false) => {
                        score.right += 1
                    }
                    (Verdict::Compatible, false) => {
                        score.unsound += 1;
                        wrong.push(format!(
                            "UNSOUND {key:?}\n  old {}\n  new {}",
                            case.old, case.new
                        ));
                    }
                    (Verdict::Undecidable { reason }, _) => {
                        score.undecidable += 1;
                        wrong.push(format!("undecidable {key:?} (expected {expected}): {reason}\n  old {}\n  new {}", case.old, case.new));
                    }
                    (Verdict::Incompatible { witness }, true) => {
                        wrong.push(format!(
                            "cautious {key:?}: witness {witness}\n  old {}\n  new {}",
                            case.old, case.new
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(
        used,
        mappings.len(),
        "every mapping names a direction a suite states"
    );
    let total: Score = scores.values().fold(Score::default(), |mut sum, s| {
        sum.directions += s.directions;
        sum.right += s.right;
        sum.agree += s.agree;
        sum.unsound += s.unsound;
        sum.undecidable += s.undecidable;
        sum
    });
    let mut table =
        String::from("suite        directions  right    unsound  undecidable  same as the tool\n");
    for (name, s) in scores.iter().chain([(&"all".to_owned(), &total)]) {
        table.push_str(&format!(
            "{name:<12} {:>10}  {:>6.2}%  {:>7}  {:>11}  {:>6.2}%\n",
            s.directions,
            100.0 * s.right as f64 / s.directions.max(1) as f64,
            s.unsound,
            s.undecidable,
            100.0 * s.agree as f64 / s.directions.max(1) as f64
        ));
    }
    println!("{table}");
    if std::env::var_os("CORPUS_DETAILS").is_some() {
        println!("{}", wrong.join("\n"));
    }
    assert!(
        bad_witnesses.is_empty(),
        "witnesses that do not hold:\n{}",
        bad_witnesses.join("\n")
    );
    assert_eq!(total.unsound, 0, "{table}\n{}", wrong.join("\n"));
    assert!(
        total.right * 100 >= total.directions * 97,
        "{table}\n{}",
        wrong.join("\n")
    );
}
