//! `pattern` and `patternProperties` as automata. A JSON Schema pattern is an ECMA-262
//! regular expression that matches anywhere in the string; each is translated to
//! `regex-syntax`'s dialect and compiled twice: a matcher for the evaluator and, on demand,
//! an anchored DFA over UTF-8 bytes for `(?s:.)*(?:pattern)(?s:.)*`.
//!
//! String constraints are then decided exactly by searching the product of the DFAs (each
//! positive pattern must accept, each negated one must not, a UTF-8 automaton keeps the
//! strings valid) with the length in code points as a counter: the search either finds
//! strings, proves there are none, or stops at a size bound and says so. Patterns outside
//! the regular subset (look-around, back references) are never guessed at.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use regex_automata::dfa::dense::{self, DFA};
use regex_automata::dfa::{Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, meta, util::syntax};

pub type PatternId = usize;

type SharedDfa = Arc<DFA<Vec<u32>>>;

/// Product states explored before a string question is answered "cannot be decided".
const SEARCH_LIMIT: usize = 60_000;
/// Automaton states one comparison may explore in all its string searches.
const WORK_LIMIT: usize = 1_000_000;

/// Bytes of DFA per pattern before it is given up.
const DFA_LIMIT: usize = 4 << 20;

struct Pattern {
    source: String,
    translated: Option<String>,
    matcher: Option<meta::Regex>,
    dfa: OnceCell<Option<SharedDfa>>,
}

#[derive(Default)]
pub struct Patterns {
    list: Vec<Pattern>,
    by_source: HashMap<String, PatternId>,
    any_char: OnceCell<Option<SharedDfa>>,
    /// Automaton states explored since the comparison began: one comparison never spends
    /// more than `WORK_LIMIT`, however many string questions it asks.
    spent: std::cell::Cell<usize>,
}

/// What a string must be: lengths in code points, patterns it must and must not match.
#[derive(Clone, Debug, Default)]
pub struct StringSpec {
    pub min_length: u64,
    pub max_length: Option<u64>,
    pub matching: Vec<PatternId>,
    pub not_matching: Vec<PatternId>,
    pub excluded: Vec<String>,
}

pub enum Search {
    Found(Vec<String>),
    Empty,
    Unknown(String),
}

/// Each regex is compiled once per process: a contract diff compares thousands of schemas
/// that share their patterns (and every string search needs the UTF-8 automaton).
fn build(regex: &str) -> Option<SharedDfa> {
    static BUILT: Compiled<SharedDfa> = OnceLock::new();
    once(&BUILT, regex, compile)
}

/// Compiled automata by their source, for the whole process.
type Compiled<T> = OnceLock<Mutex<HashMap<String, Option<T>>>>;

/// `make(source)`, compiled once per process: a contract diff compares thousands of
/// schemas that share their patterns.
fn once<T: Clone>(
    cache: &Compiled<T>,
    source: &str,
    make: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    let cache = cache.get_or_init(Default::default);
    if let Some(found) = cache.lock().ok().and_then(|map| map.get(source).cloned()) {
        return found;
    }
    let made = make(source);
    if let Ok(mut map) = cache.lock() {
        map.insert(source.to_owned(), made.clone());
    }
    made
}

fn compile(regex: &str) -> Option<SharedDfa> {
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Anchored)
                .dfa_size_limit(Some(DFA_LIMIT))
                .determinize_size_limit(Some(DFA_LIMIT)),
        )
        .syntax(syntax::Config::new().unicode(true).utf8(true))
        .build(regex)
        .ok()
        .map(Arc::new)
}

impl Patterns {
    pub fn intern(&mut self, source: &str) -> PatternId {
        if let Some(&id) = self.by_source.get(source) {
            return id;
        }
        let translated = translate(source);
        let matcher = translated.as_deref().and_then(matcher);
        let translated = translated.filter(|_| matcher.is_some());
        self.list.push(Pattern {
            source: source.to_owned(),
            translated,
            matcher,
            dfa: OnceCell::new(),
        });
        self.by_source
            .insert(source.to_owned(), self.list.len() - 1);
        self.list.len() - 1
    }

    /// Starts a comparison's budget of string work afresh.
    pub fn reset_work(&self) {
        self.spent.set(0);
    }

    /// Counts `states` explored; `false` once the comparison's budget is spent.
    fn work(&self, states: usize) -> bool {
        self.spent.set(self.spent.get() + states);
        self.spent.get() <= WORK_LIMIT
    }

    pub fn source(&self, id: PatternId) -> &str {
        &self.list[id].source
    }

    /// Whether `text` matches; `None` when the pattern is outside the supported subset.
    pub fn is_match(&self, id: PatternId, text: &str) -> Option<bool> {
        self.list[id].matcher.as_ref().map(|m| m.is_match(text))
    }

    fn dfa(&self, id: PatternId) -> Option<SharedDfa> {
        let pattern = &self.list[id];
        pattern
            .dfa
            .get_or_init(|| {
                let translated = pattern.translated.as_ref()?;
                build(&format!("(?s:.)*(?:{translated})(?s:.)*"))
            })
            .clone()
    }

    /// Up to `limit` strings meeting `spec`, shortest first, or a proof there are none.
    pub fn search(&self, spec: &StringSpec, limit: usize) -> Search {
        if !self.work(1) {
            return Search::Unknown(format!(
                "the comparison explored more than {WORK_LIMIT} automaton states"
            ));
        }
        let mut automata: Vec<(SharedDfa, bool)> = Vec::new();
        let Some(any) = self.any_char.get_or_init(|| build("(?s:.)*")).clone() else {
            return Search::Unknown("the UTF-8 automaton could not be built".into());
        };
        automata.push((any, true));
        for (ids, wanted) in [(&spec.matching, true), (&spec.not_matching, false)] {
            for &id in ids {
                match self.dfa(id) {
                    Some(dfa) => automata.push((dfa, wanted)),
                    None => {
                        return Search::Unknown(format!(
                            "pattern `{}` is outside the regular subset the engine decides",
                            self.source(id)
                        ));
                    }
                }
            }
        }
        if spec.max_length.is_some_and(|max| max < spec.min_length) {
            return Search::Empty;
        }
        // Lengths are told apart up to one past the longest excluded string, so a string
        // longer than every excluded one is reached whenever the language has one.
        let longest_excluded = spec
            .excluded
            .iter()
            .map(|e| e.chars().count() as u64 + 1)
            .max()
            .unwrap_or(0);
        let cap = spec
            .max_length
            .map_or(spec.min_length.max(longest_excluded), |max| max + 1);
        if cap > 4096 {
            return Search::Unknown(format!("a length bound of {cap} is beyond the search"));
        }
        let classes = byte_classes(&automata);
        let alphabet: Vec<u8> = classes.iter().map(|members| members[0]).collect();
        let config = start::Config::new().anchored(Anchored::Yes);
        let mut first = Vec::with_capacity(automata.len());
        for (dfa, _) in &automata {
            match dfa.start_state(&config) {
                Ok(state) => first.push(state),
                Err(_) => return Search::Unknown("a pattern has no anchored start".into()),
            }
        }
        let accepts = |states: &[StateID]| {
            automata.iter().zip(states).all(|((dfa, wanted), &state)| {
                dfa.is_match_state(dfa.next_eoi_state(state)) == *wanted
            })
        };
        // Breadth-first over (states, length so far), remembering how each was reached.
        let mut seen: HashSet<(Vec<StateID>, u64)> = HashSet::new();
        let mut trail: Vec<(usize, u8)> = Vec::new();
        let mut queue: VecDeque<(Vec<StateID>, u64, usize)> = VecDeque::new();
        let mut found = Vec::new();
        let mut accepted_any = false;
        seen.insert((first.clone(), 0));
        trail.push((usize::MAX, 0));
        queue.push_back((first.clone(), 0, 0));
        while let Some((states, length, at)) = queue.pop_front() {
            let long_enough = length >= spec.min_length;
            if long_enough && accepts(&states) {
                accepted_any = true;
                let text = spell(&trail, at);
                if !spec.excluded.contains(&text) {
                    found.push(text);
                    if found.len() >= limit {
                        return Search::Found(found);
                    }
                }
            }
            for &byte in &alphabet {
                let Some((next, grown)) = step(&automata, &states, byte, length, spec) else {
                    continue;
                };
                let counted = grown.min(cap);
                if seen.insert((next.clone(), counted)) {
                    if seen.len() > SEARCH_LIMIT || !self.work(1) {
                        return if found.is_empty() {
                            Search::Unknown(format!(
                                "the string automata have more than {SEARCH_LIMIT} states"
                            ))
                        } else {
                            Search::Found(found)
                        };
                    }
                    trail.push((at, byte));
                    queue.push_back((next, counted, trail.len() - 1));
                }
            }
        }
        match (found.is_empty(), accepted_any) {
            (false, _) => Search::Found(found),
            (true, false) => Search::Empty,
            // Every string reached was excluded: the language may be finite, so list it.
            (true, true) if self.spent.get() <= WORK_LIMIT => {
                // Strings that differ only within a byte class reach the same states, so
                // the listing needs more than one member of each class.
                let keep = (spec.excluded.len() + 1).min(KEEP_LIMIT);
                let wide: Vec<u8> = classes
                    .iter()
                    .flat_map(|members| members.iter().take(keep).copied())
                    .collect();
                let listed = exhaust(&automata, &wide, keep, &first, spec, &accepts);
                self.work(EXHAUST_LIMIT / 4);
                listed
            }
            (true, true) => Search::Unknown(format!(
                "the comparison explored more than {WORK_LIMIT} automaton states"
            )),
        }
    }
}

/// The product states after one more byte and the length in code points, or `None` when a
/// pattern that must match can no longer, or the string would be too long.
fn step(
    automata: &[(SharedDfa, bool)],
    states: &[StateID],
    byte: u8,
    length: u64,
    spec: &StringSpec,
) -> Option<(Vec<StateID>, u64)> {
    let next: Vec<StateID> = automata
        .iter()
        .zip(states)
        .map(|((dfa, _), &state)| dfa.next_state(state, byte))
        .collect();
    if automata
        .iter()
        .zip(&next)
        .any(|((dfa, wanted), &state)| *wanted && dfa.is_dead_state(state))
    {
        return None;
    }
    // A continuation byte adds no code point.
    let grown = if byte & 0xC0 == 0x80 {
        length
    } else {
        length + 1
    };
    if spec.max_length.is_some_and(|max| grown > max) {
        return None;
    }
    Some((next, grown))
}

/// Strings kept in all while listing a language whose reached strings were all excluded.
const EXHAUST_LIMIT: usize = 20_000;
/// Strings kept per state (and bytes per class) while listing; the listing proves there is
/// no other string only while the excluded strings are fewer than this.
const KEEP_LIMIT: usize = 8;

/// Decides a search whose first pass found only excluded strings, exactly: breadth-first
/// again, keeping up to `excluded + 1` distinct strings per state instead of one. A state
/// reached by more strings than that keeps that many, so an accepting state either shows
/// every string that reaches it or one that is not excluded.
fn exhaust(
    automata: &[(SharedDfa, bool)],
    alphabet: &[u8],
    keep: usize,
    first: &[StateID],
    spec: &StringSpec,
    accepts: &dyn Fn(&[StateID]) -> bool,
) -> Search {
    let exact = keep > spec.excluded.len();
    let cap = spec.max_length.map_or(spec.min_length, |max| max + 1);
    let mut kept: HashMap<(Vec<StateID>, u64), usize> = HashMap::new();
    let mut queue: VecDeque<(Vec<StateID>, Vec<u8>, u64)> = VecDeque::new();
    kept.insert((first.to_vec(), 0), 1);
    queue.push_back((first.to_vec(), Vec::new(), 0));
    let mut total = 0;
    while let Some((states, bytes, length)) = queue.pop_front() {
        if length >= spec.min_length
            && accepts(&states)
            && let Ok(text) = String::from_utf8(bytes.clone())
            && !spec.excluded.contains(&text)
        {
            return Search::Found(vec![text]);
        }
        for &byte in alphabet {
            let Some((next, grown)) = step(automata, &states, byte, length, spec) else {
                continue;
            };
            let count = kept.entry((next.clone(), grown.min(cap))).or_insert(0);
            if *count >= keep {
                continue;
            }
            *count += 1;
            total += 1;
            if total > EXHAUST_LIMIT {
                return Search::Unknown(format!(
                    "more than {EXHAUST_LIMIT} strings would have to be listed to get past the excluded ones"
                ));
            }
            let mut longer = bytes.clone();
            longer.push(byte);
            queue.push_back((next, longer, grown));
        }
    }
    if exact {
        Search::Empty
    } else {
        Search::Unknown("too many strings are excluded to list the rest".into())
    }
}

fn spell(trail: &[(usize, u8)], mut at: usize) -> String {
    let mut bytes = Vec::new();
    while at != 0 {
        let (parent, byte) = trail[at];
        bytes.push(byte);
        at = parent;
    }
    bytes.reverse();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The classes of bytes every automaton treats alike, each with its members, readable
/// ones first (and the classes ordered by their first member).
fn byte_classes(automata: &[(SharedDfa, bool)]) -> Vec<Vec<u8>> {
    let preference = |byte: u8| match byte {
        b'a'..=b'z' => 0,
        b'0'..=b'9' => 1,
        b'A'..=b'Z' => 2,
        b'!'..=b'~' => 3,
        b' ' => 4,
        _ => 5,
    };
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.sort_by_key(|&byte| (preference(byte), byte));
    let mut classes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for byte in bytes {
        let class: Vec<u8> = automata
            .iter()
            .map(|(dfa, _)| dfa.byte_classes().get(byte))
            .collect();
        match classes.iter_mut().find(|(key, _)| *key == class) {
            Some((_, members)) => members.push(byte),
            None => classes.push((class, vec![byte])),
        }
    }
    classes.into_iter().map(|(_, members)| members).collect()
}

/// The evaluator's matcher for a translated pattern, compiled once per process.
fn matcher(translated: &str) -> Option<meta::Regex> {
    static BUILT: Compiled<meta::Regex> = OnceLock::new();
    once(&BUILT, translated, |source| {
        meta::Regex::builder()
            .syntax(syntax::Config::new().unicode(true).utf8(true))
            .build(source)
            .ok()
    })
}

/// ECMA-262 to `regex-syntax`: `\d`, `\w` and `.` as ECMA defines them, escapes spelled the
/// way `regex-syntax` reads them; `None` for what has no regular equivalent.
fn translate(source: &str) -> Option<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut in_class = false;
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        match c {
            '\\' => {
                let next = *chars.get(index + 1)?;
                index += 2;
                match next {
                    'd' => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                    'w' => out.push_str(if in_class {
                        "A-Za-z0-9_"
                    } else {
                        "[A-Za-z0-9_]"
                    }),
                    'D' if !in_class => out.push_str("[^0-9]"),
                    'W' if !in_class => out.push_str("[^A-Za-z0-9_]"),
                    's' | 'S' | 'n' | 'r' | 't' | 'f' | 'v' => {
                        if next == 'v' {
                            out.push_str("\\x0B");
                        } else {
                            out.push('\\');
                            out.push(next);
                        }
                    }
                    'b' | 'B' if !in_class => {
                        out.push('\\');
                        out.push(next);
                    }
                    '0' if !chars.get(index).is_some_and(char::is_ascii_digit) => {
                        out.push_str("\\x00")
                    }
                    'x' => {
                        let hex: String = chars.get(index..index + 2)?.iter().collect();
                        u8::from_str_radix(&hex, 16).ok()?;
                        out.push_str(&format!("\\x{{{hex}}}"));
                        index += 2;
                    }
                    'u' => {
                        if chars.get(index) == Some(&'{') {
                            let end = chars[index..].iter().position(|c| *c == '}')? + index;
                            let hex: String = chars[index + 1..end].iter().collect();
                            out.push_str(&format!("\\x{{{hex}}}"));
                            index = end + 1;
                        } else {
                            let hex: String = chars.get(index..index + 4)?.iter().collect();
                            let code = u32::from_str_radix(&hex, 16).ok()?;
                            char::from_u32(code)?;
                            out.push_str(&format!("\\x{{{hex}}}"));
                            index += 4;
                        }
                    }
                    'c' => {
                        let letter = *chars.get(index)?;
                        if !letter.is_ascii_alphabetic() {
                            return None;
                        }
                        out.push_str(&format!("\\x{{{:02X}}}", (letter as u8) % 32));
                        index += 1;
                    }
                    'p' | 'P' => {
                        out.push('\\');
                        out.push(next);
                    }
                    other if other.is_ascii_punctuation() => {
                        out.push_str(&format!("\\x{{{:02X}}}", other as u32));
                    }
                    _ => return None,
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // `[]` and `[^]` mean nothing and anything in ECMA; `regex-syntax` reads `]`
                // there as a literal.
                if chars.get(index + 1) == Some(&']')
                    || (chars.get(index + 1) == Some(&'^') && chars.get(index + 2) == Some(&']'))
                {
                    return None;
                }
                if chars.get(index + 1) == Some(&'^') {
                    out.push('^');
                    index += 1;
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '.' if !in_class => out.push_str("[^\\n\\r\\x{2028}\\x{2029}]"),
            '(' if !in_class && chars.get(index + 1) == Some(&'?') => {
                let kind = chars.get(index + 2).copied();
                match kind {
                    Some(':') => out.push_str("(?:"),
                    Some('<') if !matches!(chars.get(index + 3), Some('=' | '!')) => {
                        out.push_str("(?<");
                        index += 3;
                        continue;
                    }
                    _ => return None,
                }
                index += 3;
                continue;
            }
            '&' | '~' | '-' if in_class && chars.get(index + 1) == Some(&c) => {
                out.push_str(&format!("\\x{{{:02X}}}", c as u32));
            }
            '&' | '~' if in_class => out.push(c),
            _ => out.push(c),
        }
        index += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{Patterns, Search, StringSpec};

    fn found(search: Search) -> Vec<String> {
        match search {
            Search::Found(found) => found,
            Search::Empty => panic!("empty"),
            Search::Unknown(why) => panic!("unknown: {why}"),
        }
    }

    #[test]
    fn patterns_match_anywhere_as_ecma_reads_them() {
        let mut patterns = Patterns::default();
        let digits = patterns.intern("^\\d+$");
        assert_eq!(patterns.is_match(digits, "123"), Some(true));
        assert_eq!(patterns.is_match(digits, "١٢٣"), Some(false));
        let inner = patterns.intern("b");
        assert_eq!(patterns.is_match(inner, "abc"), Some(true));
        let lookahead = patterns.intern("^(?!x)");
        assert_eq!(patterns.is_match(lookahead, "a"), None);
    }

    #[test]
    fn inclusion_of_patterns_is_decided_by_the_product() {
        let mut patterns = Patterns::default();
        let letters = patterns.intern("^[a-z]+$");
        let words = patterns.intern("^\\w+$");
        let spec = StringSpec {
            matching: vec![letters],
            not_matching: vec![words],
            ..StringSpec::default()
        };
        assert!(matches!(patterns.search(&spec, 1), Search::Empty));
        let spec = StringSpec {
            matching: vec![words],
            not_matching: vec![letters],
            ..StringSpec::default()
        };
        let witness = &found(patterns.search(&spec, 1))[0];
        assert_eq!(patterns.is_match(words, witness), Some(true));
        assert_eq!(patterns.is_match(letters, witness), Some(false));
    }

    #[test]
    fn lengths_count_code_points() {
        let mut patterns = Patterns::default();
        let accented = patterns.intern("^é+$");
        let spec = StringSpec {
            min_length: 2,
            max_length: Some(2),
            matching: vec![accented],
            ..StringSpec::default()
        };
        assert_eq!(found(patterns.search(&spec, 1)), vec!["éé".to_owned()]);
    }
}

#[cfg(test)]
mod exclusions {
    use super::{Patterns, Search, StringSpec};

    #[test]
    fn strings_merged_by_state_are_still_found_past_the_excluded_ones() {
        let mut patterns = Patterns::default();
        let either = patterns.intern("^[ab]$");
        let spec = StringSpec {
            matching: vec![either],
            excluded: vec!["a".to_owned()],
            ..StringSpec::default()
        };
        match patterns.search(&spec, 3) {
            Search::Found(found) => assert_eq!(found, vec!["b".to_owned()]),
            Search::Empty => panic!("empty"),
            Search::Unknown(why) => panic!("unknown: {why}"),
        }
        let spec = StringSpec {
            matching: vec![either],
            excluded: vec!["a".to_owned(), "b".to_owned()],
            ..StringSpec::default()
        };
        assert!(matches!(patterns.search(&spec, 3), Search::Empty));
    }
}
