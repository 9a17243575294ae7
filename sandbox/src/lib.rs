//! `ops-sandbox`: what the source of a pack, contract or shared crate may not say.
//!
//! Those crates have no ambient authority: no network, filesystem, processes or threads,
//! environment, foreign or `unsafe` code, wall clock or OS randomness (a handler, projection
//! or reaction is a pure function of its inputs, so a replay gives the same result), and no
//! core internals (the registrations and traits only the ops macros write). The build
//! refuses most of this by itself, because such a crate is `#![no_std]` and
//! `#![forbid(unsafe_code)]`; these rules add what the compiler cannot see (`extern crate
//! std` under any name, `env!` and `include_str!` reading the build machine, a hand-written
//! registration) and name, for every refusal, what to use instead.
//!
//! [`scan_crate`] reads a crate from its root file through its `mod` declarations. The ops
//! macros run it while the crate compiles (a compile error), and `deps-check` runs it over
//! every such crate in the dependency graph (a CI gate, for crates that use no ops macro).
//! The rules are lexical: a token and its neighbours, inside macro bodies too, so a
//! `macro_rules!` cannot hide a spelling from them.

mod lex;

use std::fmt;
use std::path::{Path, PathBuf};

use lex::{Kind, Token};

/// One rule of the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// The crate root lacks `#![no_std]`.
    NoStd,
    /// The crate root lacks `#![forbid(unsafe_code)]`.
    ForbidUnsafe,
    Network,
    Filesystem,
    Process,
    Environment,
    Clock,
    Randomness,
    /// Atomics and `static mut`: state kept between calls, outside the fold.
    SharedState,
    Unsafe,
    ForeignCode,
    /// `env!`, `option_env!`: the build machine's environment compiled in.
    BuildEnvironment,
    /// `include!`, `include_str!`, `include_bytes!`: the build machine's files compiled in.
    BuildFiles,
    /// The standard library in general (it carries all of the above).
    Std,
    /// `#[path]` on a module can load a file from anywhere.
    ModulePath,
    /// The registrations and traits only the ops macros write.
    CoreInternals,
    /// The core runtime or a crate that does I/O, named in pack code.
    IoCrate,
}

impl Rule {
    pub const ALL: [Rule; 17] = [
        Rule::NoStd,
        Rule::ForbidUnsafe,
        Rule::Network,
        Rule::Filesystem,
        Rule::Process,
        Rule::Environment,
        Rule::Clock,
        Rule::Randomness,
        Rule::SharedState,
        Rule::Unsafe,
        Rule::ForeignCode,
        Rule::BuildEnvironment,
        Rule::BuildFiles,
        Rule::Std,
        Rule::ModulePath,
        Rule::CoreInternals,
        Rule::IoCrate,
    ];

    /// A stable id: `sandbox/<name>`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::NoStd => "sandbox/no-std",
            Rule::ForbidUnsafe => "sandbox/forbid-unsafe",
            Rule::Network => "sandbox/network",
            Rule::Filesystem => "sandbox/filesystem",
            Rule::Process => "sandbox/process",
            Rule::Environment => "sandbox/environment",
            Rule::Clock => "sandbox/clock",
            Rule::Randomness => "sandbox/randomness",
            Rule::SharedState => "sandbox/shared-state",
            Rule::Unsafe => "sandbox/unsafe",
            Rule::ForeignCode => "sandbox/foreign-code",
            Rule::BuildEnvironment => "sandbox/build-environment",
            Rule::BuildFiles => "sandbox/build-files",
            Rule::Std => "sandbox/std",
            Rule::ModulePath => "sandbox/module-path",
            Rule::CoreInternals => "sandbox/core-internals",
            Rule::IoCrate => "sandbox/io-crate",
        }
    }

    /// What is wrong, as the middle of a sentence.
    pub fn what(self) -> &'static str {
        match self {
            Rule::NoStd => {
                "the crate root does not say `#![no_std]`, so the whole standard library (network, files, processes, environment, clock) is in reach"
            }
            Rule::ForbidUnsafe => {
                "the crate root does not say `#![forbid(unsafe_code)]`, so foreign and unsafe code can be written"
            }
            Rule::Network => "a pack has no network access",
            Rule::Filesystem => "a pack has no filesystem or standard streams",
            Rule::Process => "a pack starts no processes or threads",
            Rule::Environment => "a pack reads no environment variables",
            Rule::Clock => "a pack has no wall clock (a replay must give the same result)",
            Rule::Randomness => {
                "a pack has no randomness, and hash maps seeded from the OS iterate differently on every run"
            }
            Rule::SharedState => {
                "a handler, projection or reaction keeps no state between calls (a replay would see what an earlier run left)"
            }
            Rule::Unsafe => "a pack runs no unsafe code",
            Rule::ForeignCode => "a pack calls and exports no foreign (C) code",
            Rule::BuildEnvironment => "this compiles the build machine's environment into the pack",
            Rule::BuildFiles => "this compiles the build machine's files into the pack",
            Rule::Std => {
                "the standard library carries network, files, processes, environment and clock, so a pack is `#![no_std]`"
            }
            Rule::ModulePath => "`#[path]` can load a module from anywhere on the build machine",
            Rule::CoreInternals => {
                "this is written only by the ops macros, which check what it claims"
            }
            Rule::IoCrate => {
                "the core runtime and crates that do I/O (databases, HTTP, sockets, processes, OS calls) belong to the host, never to a pack"
            }
        }
    }

    /// What to use instead.
    pub fn instead(self) -> &'static str {
        match self {
            Rule::NoStd => {
                "add `#![no_std]` at the top of the crate root; `ops_core::prelude` has `String`, `Vec`, `BTreeMap`, `format!`, `vec!` and serde"
            }
            Rule::ForbidUnsafe => "add `#![forbid(unsafe_code)]` at the top of the crate root",
            Rule::Network | Rule::Process => {
                "ask for the effect with a `WRITE_EXTERNAL_SIDE_EFFECT` command: the egress gateway sends it, fenced, with a receipt"
            }
            Rule::Filesystem => {
                "read a source through a connector (the runtime's `SourceReader` feeds `Connector::interpret`) and keep state in a projection"
            }
            Rule::Environment => {
                "take configuration from the host, and hold a credential as a `SecretHandle`, which only the host's executor redeems"
            }
            Rule::Clock => {
                "use the envelope's `occurred_at` (`ProjectedEvent::envelope`, the event a reaction answers)"
            }
            Rule::Randomness => {
                "derive what you need from the event (ids are content-addressed) and use `BTreeMap`/`BTreeSet`"
            }
            Rule::SharedState => {
                "keep state in the projection's `State` rows, or decide from the target's history"
            }
            Rule::Unsafe | Rule::ForeignCode => {
                "write it in safe Rust; an effect outside the pack is a `WRITE_EXTERNAL_SIDE_EFFECT` command"
            }
            Rule::BuildEnvironment => {
                "take configuration from the host, and hold a credential as a `SecretHandle`"
            }
            Rule::BuildFiles => {
                "write the data into the source, or read it at run time through a connector's `SourceReader`"
            }
            Rule::Std => {
                "use `core` and `alloc` through `ops_core::prelude`; for I/O, a command through the egress gateway or a connector"
            }
            Rule::ModulePath => "keep modules in the crate's `src/` folder under their own names",
            Rule::CoreInternals => {
                "declare types with `#[event]`, `#[command]`, `#[data]` and `#[pack]`, and install with `install_projection!`, `install_handler!`, `install_reaction!` or `install_connector!`"
            }
            Rule::IoCrate => {
                "remove the dependency: state goes through projections, effects through `WRITE_EXTERNAL_SIDE_EFFECT` commands, sources through connectors"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A place where a crate breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub rule: Rule,
    /// What was written there (`std::net`, `unsafe`, `env!`).
    pub found: String,
}

impl Finding {
    /// `rule: `found` at file:line:col: what; instead`, with the file relative to `base`.
    pub fn message(&self, base: &Path) -> String {
        let file = self.file.strip_prefix(base).unwrap_or(&self.file);
        let place = match self.rule {
            Rule::NoStd | Rule::ForbidUnsafe => format!("{}", file.display()),
            _ => format!(
                "`{}` at {}:{}:{}",
                self.found,
                file.display(),
                self.line,
                self.column
            ),
        };
        format!(
            "{place}: {}; {} [{}]",
            self.rule.what(),
            self.rule.instead(),
            self.rule.id()
        )
    }
}

#[derive(Debug)]
pub struct ScanError {
    pub file: PathBuf,
    pub error: std::io::Error,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}: {}", self.file.display(), self.error)
    }
}

impl std::error::Error for ScanError {}

/// Every finding in the crate whose root file is `root`, following its `mod` declarations,
/// sorted by place.
pub fn scan_crate(root: &Path) -> Result<Vec<Finding>, ScanError> {
    // Every file of the crate first: a name bound to `std` in one module (`extern crate std
    // as platform;` at the root) is the standard library in all of them.
    let children = root.parent().map(Path::to_owned).unwrap_or_default();
    let mut queue = vec![(root.to_owned(), children)];
    let mut files: Vec<(PathBuf, String, PathBuf)> = Vec::new();
    while let Some((file, children)) = queue.pop() {
        if files.iter().any(|(seen, _, _)| *seen == file) {
            continue;
        }
        let source = std::fs::read_to_string(&file).map_err(|error| ScanError {
            file: file.clone(),
            error,
        })?;
        for module in modules_of(&lex::tokens(&source), &children) {
            queue.push((module.file, module.children));
        }
        files.push((file, source, children));
    }
    let lexed: Vec<Vec<Token<'_>>> = files
        .iter()
        .map(|(_, source, _)| lex::tokens(source))
        .collect();
    let mut std_names = vec!["std".to_owned()];
    for tokens in &lexed {
        std_names.extend(aliases_of_std(tokens));
    }
    let mut findings = Vec::new();
    for (index, ((file, _, _), tokens)) in files.iter().zip(&lexed).enumerate() {
        findings.extend(scan_file(file, tokens, index == 0, &std_names));
    }
    findings.sort();
    Ok(findings)
}

/// Names bound to the standard library: `extern crate std as x;`, `use std as x;`,
/// `use ::std as x;`.
fn aliases_of_std(tokens: &[Token<'_>]) -> Vec<String> {
    tokens
        .windows(3)
        .filter(|w| w[0].is_ident("std") && w[1].is_ident("as") && w[2].kind == Kind::Ident)
        .map(|w| w[2].text.to_owned())
        .filter(|alias| alias != "_")
        .collect()
}

/// The files that `mod name;` declarations load (`name.rs` or `name/mod.rs`, in the folder
/// of the enclosing inline modules), each with the folder of its own children.
fn modules_of(tokens: &[Token<'_>], children: &Path) -> Vec<ModuleFile> {
    let mut modules = Vec::new();
    let mut inline: Vec<(PathBuf, usize)> = Vec::new();
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate() {
        match token.kind {
            Kind::Punct('{') => depth += 1,
            Kind::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, at)| *at == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        if !token.is_ident("mod") {
            continue;
        }
        let Some(name) = tokens.get(index + 1).filter(|t| t.kind == Kind::Ident) else {
            continue;
        };
        let dir = inline
            .last()
            .map_or_else(|| children.to_owned(), |(dir, _)| dir.clone());
        match tokens.get(index + 2) {
            Some(t) if t.is_punct('{') => inline.push((dir.join(name.text), depth)),
            Some(t) if t.is_punct(';') => {
                let flat = dir.join(format!("{}.rs", name.text));
                let nested = dir.join(name.text).join("mod.rs");
                if let Some(file) = [flat, nested].into_iter().find(|file| file.is_file()) {
                    modules.push(ModuleFile {
                        file,
                        children: dir.join(name.text),
                    });
                }
            }
            _ => {}
        }
    }
    modules
}

/// A module file a `mod name;` declaration loads, and where its own children live.
struct ModuleFile {
    file: PathBuf,
    children: PathBuf,
}

fn scan_file(
    file: &Path,
    tokens: &[Token<'_>],
    is_root: bool,
    std_names: &[String],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut found = |rule: Rule, token: &Token<'_>, text: String| {
        findings.push(Finding {
            file: file.to_owned(),
            line: token.line,
            column: token.column,
            rule,
            found: text,
        })
    };
    if is_root {
        let attributes = inner_attributes(tokens);
        if let Some(first) = tokens.first() {
            if !attributes
                .iter()
                .any(|a| a.len() == 1 && a[0].is_ident("no_std"))
            {
                found(Rule::NoStd, first, "crate root".to_owned());
            }
            let forbids_unsafe = attributes.iter().any(|a| {
                a.first().is_some_and(|t| t.is_ident("forbid"))
                    && a.iter().any(|t| t.is_ident("unsafe_code"))
            });
            if !forbids_unsafe {
                found(Rule::ForbidUnsafe, first, "crate root".to_owned());
            }
        }
    }
    // The bracket depth at which an attribute `#[...]` opened, while inside one.
    let mut attribute: Option<usize> = None;
    let mut brackets = 0usize;
    // The rest of a `std::…` path already reported is not reported again piece by piece.
    let mut reported_until = 0usize;
    for (index, token) in tokens.iter().enumerate() {
        let next = |n: usize| tokens.get(index + n);
        let previous = |n: usize| index.checked_sub(n).and_then(|i| tokens.get(i));
        match token.kind {
            Kind::Punct('[') => {
                let opens_attribute = previous(1).is_some_and(|t| t.is_punct('#'))
                    || (previous(1).is_some_and(|t| t.is_punct('!'))
                        && previous(2).is_some_and(|t| t.is_punct('#')));
                if opens_attribute && attribute.is_none() {
                    attribute = Some(brackets);
                }
                brackets += 1;
            }
            Kind::Punct(']') => {
                brackets = brackets.saturating_sub(1);
                if attribute == Some(brackets) {
                    attribute = None;
                }
            }
            _ => {}
        }
        if token.kind != Kind::Ident || index < reported_until {
            continue;
        }
        let followed_by_bang = next(1).is_some_and(|t| t.is_punct('!'));
        let path_follows =
            next(1).is_some_and(|t| t.is_punct(':')) && next(2).is_some_and(|t| t.is_punct(':'));
        let after_path = previous(1).is_some_and(|t| t.is_punct(':'))
            && previous(2).is_some_and(|t| t.is_punct(':'));
        if std_names.iter().any(|name| name == token.text) {
            let (uses, end) = std_uses(tokens, index);
            for (rule, text) in uses {
                found(rule, token, text);
            }
            reported_until = end;
            continue;
        }
        match token.text {
            "unsafe" => found(Rule::Unsafe, token, "unsafe".to_owned()),
            "asm" | "global_asm" | "naked_asm" if followed_by_bang => {
                found(Rule::Unsafe, token, format!("{}!", token.text))
            }
            "env" | "option_env" if followed_by_bang => {
                found(Rule::BuildEnvironment, token, format!("{}!", token.text))
            }
            "include" | "include_str" | "include_bytes" if followed_by_bang => {
                found(Rule::BuildFiles, token, format!("{}!", token.text))
            }
            "extern" if next(1).is_some_and(|t| t.kind == Kind::Str) => found(
                Rule::ForeignCode,
                token,
                format!("extern \"{}\"", next(1).map_or("", |t| t.text)),
            ),
            "now" if after_path => found(Rule::Clock, token, "::now()".to_owned()),
            "SystemTime" | "Instant" | "UNIX_EPOCH" => {
                found(Rule::Clock, token, token.text.to_owned())
            }
            "RandomState" | "getrandom" | "OsRng" | "thread_rng" | "HashMap" | "HashSet" => {
                found(Rule::Randomness, token, token.text.to_owned())
            }
            "rand" if path_follows => found(Rule::Randomness, token, "rand::".to_owned()),
            name if name.starts_with("Atomic") && name.len() > "Atomic".len() => {
                found(Rule::SharedState, token, name.to_owned())
            }
            "static" if next(1).is_some_and(|t| t.is_ident("mut")) => {
                found(Rule::SharedState, token, "static mut".to_owned())
            }
            name if IO_CRATES.contains(&name)
                && (path_follows || previous(1).is_some_and(|t| t.is_ident("crate"))) =>
            {
                found(Rule::IoCrate, token, name.to_owned())
            }
            "__private" | "inventory" | "TypeDescriptor" | "PackDescriptor" => {
                found(Rule::CoreInternals, token, token.text.to_owned())
            }
            name if name.ends_with("Registration") && name.len() > "Registration".len() => {
                found(Rule::CoreInternals, token, name.to_owned())
            }
            "impl" => {
                if let Some(trait_name) = implemented_trait(tokens, index)
                    && MACRO_ONLY_TRAITS.contains(&trait_name)
                {
                    found(Rule::CoreInternals, token, format!("impl {trait_name}"));
                }
            }
            "path" if attribute.is_some() && next(1).is_some_and(|t| t.is_punct('=')) => {
                found(Rule::ModulePath, token, "#[path]".to_owned())
            }
            "link" | "link_name" | "no_mangle" | "export_name" | "link_section" | "used"
                if attribute.is_some() =>
            {
                found(Rule::ForeignCode, token, format!("#[{}]", token.text))
            }
            _ => {}
        }
    }
    findings
}

/// Crates a pack may never name (`name::…` or `extern crate name`): the core runtime and
/// what does I/O. deps-check refuses them as dependencies too; naming them here makes the
/// pack's own build say so.
const IO_CRATES: [&str; 24] = [
    "ops_core_runtime",
    "ops_host",
    "sqlx",
    "rusqlite",
    "postgres",
    "tokio_postgres",
    "diesel",
    "sea_orm",
    "redis",
    "reqwest",
    "hyper",
    "hyper_util",
    "ureq",
    "isahc",
    "curl",
    "surf",
    "attohttpc",
    "tokio",
    "async_std",
    "socket2",
    "mio",
    "libc",
    "nix",
    "rustix",
];

/// Traits whose impls the ops macros write and check; a hand-written one claims what it likes.
const MACRO_ONLY_TRAITS: [&str; 9] = [
    "Contract",
    "Event",
    "Command",
    "ExternalEffect",
    "Pack",
    "DynProjection",
    "DynHandler",
    "DynReaction",
    "DynConnector",
];

/// The bracketed contents of the crate root's leading inner attributes (`#![...]`).
fn inner_attributes<'t, 'a>(tokens: &'t [Token<'a>]) -> Vec<&'t [Token<'a>]> {
    let mut attributes = Vec::new();
    let mut index = 0;
    while tokens.get(index).is_some_and(|t| t.is_punct('#'))
        && tokens.get(index + 1).is_some_and(|t| t.is_punct('!'))
        && tokens.get(index + 2).is_some_and(|t| t.is_punct('['))
    {
        let start = index + 3;
        let mut depth = 1;
        let mut end = start;
        while end < tokens.len() && depth > 0 {
            match tokens[end].kind {
                Kind::Punct('[') => depth += 1,
                Kind::Punct(']') => depth -= 1,
                _ => {}
            }
            end += 1;
        }
        attributes.push(&tokens[start..end.saturating_sub(1).max(start)]);
        index = end;
    }
    attributes
}

/// The trait of `impl<...> Path<...> for Type`: the last identifier of the path outside
/// angle brackets, when a `for` follows.
fn implemented_trait<'a>(tokens: &[Token<'a>], impl_at: usize) -> Option<&'a str> {
    let mut angle = 0i32;
    let mut last = None;
    for token in &tokens[impl_at + 1..] {
        match token.kind {
            Kind::Punct('<') => angle += 1,
            Kind::Punct('>') => angle -= 1,
            Kind::Punct('{' | ';') => return None,
            Kind::Ident if angle == 0 && token.text == "for" => return last,
            Kind::Ident if angle == 0 => last = Some(token.text),
            _ => {}
        }
    }
    None
}

/// What `std` at `at` reaches: one finding per kind of authority its path names, or
/// [`Rule::Std`] when it names none (`use std;`, `extern crate std as s;`).
fn std_uses(tokens: &[Token<'_>], at: usize) -> (Vec<(Rule, String)>, usize) {
    let mut uses = Vec::new();
    let name = tokens[at].text;
    let mut segments: Vec<&str> = Vec::new();
    let mut index = at + 1;
    while tokens.get(index).is_some_and(|t| t.is_punct(':'))
        && tokens.get(index + 1).is_some_and(|t| t.is_punct(':'))
    {
        match tokens.get(index + 2) {
            Some(token) if token.kind == Kind::Ident => {
                segments.push(token.text);
                index += 3;
            }
            Some(token) if token.is_punct('{') => {
                // `std::{net, fs::File, os::unix::net}`: every identifier in the group.
                let mut depth = 0;
                for inner in &tokens[index + 2..] {
                    index += 1;
                    match inner.kind {
                        Kind::Punct('{') => depth += 1,
                        Kind::Punct('}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Kind::Ident => {
                            if let Some(rule) = authority_of(inner.text) {
                                uses.push((rule, format!("{name}::{}", inner.text)));
                            }
                        }
                        _ => {}
                    }
                }
                break;
            }
            _ => break,
        }
    }
    // `std::os::unix::net` is network access, not just OS-specific code: the most specific
    // authority along the path wins.
    let rules: Vec<Rule> = segments.iter().filter_map(|s| authority_of(s)).collect();
    if let Some(rule) = rules
        .iter()
        .find(|rule| **rule != Rule::ForeignCode)
        .or(rules.first())
    {
        uses.push((*rule, format!("{name}::{}", segments.join("::"))));
    }
    if uses.is_empty() {
        let text = if segments.is_empty() {
            name.to_owned()
        } else {
            format!("{name}::{}", segments.join("::"))
        };
        uses.push((Rule::Std, text));
    }
    uses.dedup_by(|a, b| a.0 == b.0);
    // `std as platform`: the new name is the same finding.
    if tokens.get(index).is_some_and(|t| t.is_ident("as")) {
        index += 2;
    }
    (uses, index)
}

/// The authority a module or item of `std` gives, if it gives one.
fn authority_of(segment: &str) -> Option<Rule> {
    Some(match segment {
        "net" | "TcpStream" | "TcpListener" | "UdpSocket" | "UnixStream" | "UnixListener"
        | "ToSocketAddrs" => Rule::Network,
        "fs" | "io" | "path" | "File" | "OpenOptions" | "stdin" | "stdout" | "stderr" => {
            Rule::Filesystem
        }
        "process" | "thread" | "Command" | "Child" | "exit" => Rule::Process,
        "env" | "var" | "vars" | "var_os" => Rule::Environment,
        "time" | "SystemTime" | "Instant" => Rule::Clock,
        "HashMap" | "HashSet" | "hash_map" | "hash_set" | "RandomState" => Rule::Randomness,
        "ffi" | "os" | "arch" | "intrinsics" => Rule::ForeignCode,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
