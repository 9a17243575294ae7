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
    /// A token the sandbox cannot read the way rustc does: it fails closed.
    Unreadable,
    /// A macro called, an attribute or a module named through a `macro_rules!` fragment:
    /// what it becomes is decided where the rules cannot see it.
    Fragment,
    /// Pointer addresses (raw pointers, `{:p}`, `addr_of!`, `core::ptr`): they differ
    /// between runs, so a fold that reads one is not deterministic.
    Address,
    /// The library root is not `src/lib.rs`, or a file under `src/` is a link.
    SourceLayout,
}

impl Rule {
    pub const ALL: [Rule; 21] = [
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
        Rule::Unreadable,
        Rule::Fragment,
        Rule::Address,
        Rule::SourceLayout,
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
            Rule::Unreadable => "sandbox/unreadable",
            Rule::Fragment => "sandbox/fragment",
            Rule::Address => "sandbox/address",
            Rule::SourceLayout => "sandbox/source-layout",
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
            Rule::Unreadable => {
                "the sandbox cannot read this token the way rustc does, so it cannot tell what the code around it is"
            }
            Rule::Fragment => {
                "a macro, attribute or module named through a `macro_rules!` fragment becomes code the sandbox cannot see"
            }
            Rule::Address => {
                "a pointer's address differs between runs, so what a fold or decision derives from it is not deterministic (and `concat!` can assemble a format string that prints one)"
            }
            Rule::SourceLayout => {
                "rustc would compile a file the sandbox does not read as this crate's source"
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
            Rule::Unreadable => {
                "write it with the literals and identifiers of stable Rust (plain, raw, byte and C strings; no reserved prefixes)"
            }
            Rule::Fragment => {
                "call the macro, write the attribute or declare the module by its own name; pass values, not names, to a `macro_rules!`"
            }
            Rule::Address => {
                "compare and order values by their content (ids are content-addressed), and write format strings as one literal"
            }
            Rule::SourceLayout => {
                "keep the library at `src/lib.rs` (remove `path` from `[lib]`) and its modules as plain files under `src/`"
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

/// The file rustc compiles as the library of the package in `manifest_dir`: its manifest's
/// `[lib] path`, or `src/lib.rs`. The ops macros and deps-check both scan from here, so the
/// compile-time rules and the gate read the same crate.
pub fn library_root(manifest_dir: &Path) -> Result<PathBuf, ScanError> {
    let manifest = manifest_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|error| ScanError {
        file: manifest.clone(),
        error,
    })?;
    let parsed: toml::Table = toml::from_str(&text).map_err(|error| ScanError {
        file: manifest.clone(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
    })?;
    let declared = parsed
        .get("lib")
        .and_then(|lib| lib.get("path"))
        .and_then(|path| path.as_str());
    Ok(manifest_dir.join(declared.unwrap_or("src/lib.rs")))
}

/// Every finding in the library of the package in `manifest_dir`, sorted by place: its root
/// must be `src/lib.rs`, and every `.rs` file under `src/` is read, whether or not a `mod`
/// the scan can see declares it (a module declared inside a macro is still a file there),
/// so no file rustc may compile as this crate's is left unread.
pub fn scan_package(manifest_dir: &Path) -> Result<Vec<Finding>, ScanError> {
    let src = manifest_dir.join("src");
    let standard_root = src.join("lib.rs");
    let root = library_root(manifest_dir)?;
    let mut layout = Vec::new();
    let at = |file: &Path, found: String| Finding {
        file: file.to_owned(),
        line: 1,
        column: 1,
        rule: Rule::SourceLayout,
        found,
    };
    if root != standard_root {
        layout.push(at(
            &manifest_dir.join("Cargo.toml"),
            format!(
                "[lib] path = \"{}\"",
                root.strip_prefix(manifest_dir).unwrap_or(&root).display()
            ),
        ));
    }
    let mut files = vec![root.clone()];
    let mut folders: Vec<PathBuf> = src.is_dir().then(|| src.clone()).into_iter().collect();
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|error| ScanError {
            file: folder.clone(),
            error,
        })?;
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            let path = entry.path();
            let kind = entry.file_type().map_err(|error| ScanError {
                file: path.clone(),
                error,
            })?;
            if kind.is_symlink() {
                layout.push(at(&path, "a link under `src/`".to_owned()));
            } else if kind.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path != root {
                files.push(path);
            }
        }
    }
    let mut findings = scan_files(&files)?;
    findings.extend(layout);
    findings.sort();
    Ok(findings)
}

/// Every finding in one file read as a crate root (a trybuild case, a binary).
pub fn scan_root_file(file: &Path) -> Result<Vec<Finding>, ScanError> {
    scan_files(&[file.to_owned()])
}

/// The findings of `files`, the first of them the crate root.
fn scan_files(files: &[PathBuf]) -> Result<Vec<Finding>, ScanError> {
    let sources: Vec<String> = files
        .iter()
        .map(|file| {
            std::fs::read_to_string(file).map_err(|error| ScanError {
                file: file.clone(),
                error,
            })
        })
        .collect::<Result<_, _>>()?;
    // Every file of the crate first: a name bound to `std` in one module (`extern crate std
    // as platform;` at the root) is the standard library in all of them.
    let lexed: Vec<Vec<Token<'_>>> = sources.iter().map(|source| lex::tokens(source)).collect();
    let mut std_names = vec!["std".to_owned()];
    for tokens in &lexed {
        std_names.extend(aliases_of_std(tokens));
    }
    let mut findings = Vec::new();
    for (index, (file, tokens)) in files.iter().zip(&lexed).enumerate() {
        let scan = Scan {
            file,
            std_names: &std_names,
            at: None,
        };
        findings.extend(scan.tokens(tokens, index == 0, 0));
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
        .map(|w| w[2].text.to_string())
        .filter(|alias| alias != "_")
        .collect()
}

/// How one file is read: its name, the names bound to `std` in the crate, and, for the code
/// inside a string literal that a derive macro parses as Rust (`#[serde(with = "…")]`), the
/// place of that literal, which every finding inside it takes.
struct Scan<'s> {
    file: &'s Path,
    std_names: &'s [String],
    at: Option<(usize, usize)>,
}

/// Keys of attribute strings that hold prose or data, never code: their contents are not
/// read as Rust. Every other string inside an attribute is (`with`, `bound`, `crate`,
/// `default`, `schema_with`, …: derive macros parse those as paths and code).
const PROSE_KEYS: [&str; 12] = [
    "rename",
    "rename_all",
    "alias",
    "tag",
    "content",
    "expecting",
    "title",
    "description",
    "note",
    "since",
    "message",
    "label",
];

impl Scan<'_> {
    fn tokens(&self, tokens: &[Token<'_>], is_root: bool, depth: usize) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut nested = Vec::new();
        let mut found = |rule: Rule, token: &Token<'_>, text: String| {
            let (line, column) = self.at.unwrap_or((token.line, token.column));
            findings.push(Finding {
                file: self.file.to_owned(),
                line,
                column,
                rule,
                found: text,
            })
        };
        if is_root {
            root_attributes(tokens, &mut found);
        }
        // The bracket depth at which an attribute `#[...]` opened, while inside one, and
        // whether it is a doc attribute (prose).
        let mut attribute: Option<(usize, bool)> = None;
        let mut brackets = 0usize;
        // Inside `use …;`: a renamed import hides a name from the rules that look at what
        // follows it (`use core::env as e;`).
        let mut in_use = false;
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
                        attribute = Some((brackets, next(1).is_some_and(|t| t.is_ident("doc"))));
                    }
                    brackets += 1;
                }
                Kind::Punct(']') => {
                    brackets = brackets.saturating_sub(1);
                    if attribute.is_some_and(|(at, _)| at == brackets) {
                        attribute = None;
                    }
                }
                Kind::Punct(';') => in_use = false,
                Kind::Punct('$') => {
                    let fragment = next(1).map_or(String::new(), |t| t.text.to_string());
                    if attribute.is_some() {
                        found(Rule::Fragment, token, format!("#[… ${fragment} …]"));
                    } else if next(2).is_some_and(|t| t.is_punct('!')) {
                        found(Rule::Fragment, token, format!("${fragment}!"));
                    } else if previous(1).is_some_and(|t| t.is_ident("mod")) {
                        found(Rule::Fragment, token, format!("mod ${fragment}"));
                    }
                }
                Kind::Punct('*')
                    if next(1).is_some_and(|t| t.is_ident("const") || t.is_ident("mut")) =>
                {
                    let pointer = format!("*{}", next(1).map_or("", |t| &*t.text));
                    found(Rule::Address, token, pointer);
                }
                Kind::Unreadable(reason) => {
                    found(
                        Rule::Unreadable,
                        token,
                        format!("{} ({reason})", token.text),
                    );
                }
                Kind::Str => {
                    if has_pointer_format(&token.text) {
                        found(Rule::Address, token, format!("\"{}\"", token.text));
                    }
                    let key = previous(1)
                        .filter(|t| t.is_punct('='))
                        .and(previous(2))
                        .map(|t| &*t.text);
                    let code_in_attribute = attribute.is_some_and(|(_, doc)| !doc)
                        && !key.is_some_and(|key| PROSE_KEYS.contains(&key));
                    if code_in_attribute && depth < 2 {
                        let inner = Scan {
                            file: self.file,
                            std_names: self.std_names,
                            at: Some(self.at.unwrap_or((token.line, token.column))),
                        };
                        nested.extend(inner.tokens(&lex::tokens(&token.text), false, depth + 1));
                    }
                }
                _ => {}
            }
            if token.kind != Kind::Ident || index < reported_until {
                continue;
            }
            let text = &*token.text;
            let followed_by_bang = next(1).is_some_and(|t| t.is_punct('!'));
            let path_follows = next(1).is_some_and(|t| t.is_punct(':'))
                && next(2).is_some_and(|t| t.is_punct(':'));
            let after_path = previous(1).is_some_and(|t| t.is_punct(':'))
                && previous(2).is_some_and(|t| t.is_punct(':'));
            // A name used as a macro or an item, not a local word: `name!`, `…::name`,
            // `name as alias`, or anywhere in a `use`.
            let named_as_item = followed_by_bang
                || after_path
                || in_use
                || next(1).is_some_and(|t| t.is_ident("as"));
            if text == "use" {
                in_use = true;
            }
            // A macro as written: `env!` when called, the bare name when imported or renamed.
            let spelled = |name: &str| {
                if followed_by_bang {
                    format!("{name}!")
                } else {
                    name.to_owned()
                }
            };
            if self.std_names.iter().any(|name| name == text) {
                let (uses, end) = std_uses(tokens, index);
                for (rule, text) in uses {
                    found(rule, token, text);
                }
                reported_until = end;
                continue;
            }
            match text {
                "unsafe" => found(Rule::Unsafe, token, "unsafe".to_owned()),
                "asm" | "global_asm" | "naked_asm" if followed_by_bang => {
                    found(Rule::Unsafe, token, format!("{text}!"))
                }
                "option_env" => found(Rule::BuildEnvironment, token, spelled(text)),
                "env" if named_as_item => found(Rule::BuildEnvironment, token, spelled(text)),
                "include_str" | "include_bytes" => found(Rule::BuildFiles, token, spelled(text)),
                "include" if named_as_item => found(Rule::BuildFiles, token, spelled(text)),
                "concat" if followed_by_bang => found(Rule::Address, token, "concat!".to_owned()),
                "addr_of"
                | "addr_of_mut"
                | "expose_provenance"
                | "expose_addr"
                | "with_exposed_provenance"
                | "as_ptr"
                | "as_mut_ptr"
                | "as_ptr_range"
                | "as_mut_ptr_range"
                | "into_raw"
                | "Pointer" => found(Rule::Address, token, text.to_owned()),
                // A cast to a function pointer, the step before its address as an integer.
                "as" if next(1).is_some_and(|t| t.is_ident("fn")) => {
                    found(Rule::Address, token, "as fn".to_owned())
                }
                "addr" if previous(1).is_some_and(|t| t.is_punct('.')) => {
                    found(Rule::Address, token, ".addr()".to_owned())
                }
                "ptr" if after_path || path_follows => {
                    found(Rule::Address, token, "ptr".to_owned())
                }
                "extern" if next(1).is_some_and(|t| t.kind == Kind::Str) => found(
                    Rule::ForeignCode,
                    token,
                    format!("extern \"{}\"", next(1).map_or("", |t| &*t.text)),
                ),
                "now" if after_path => found(Rule::Clock, token, "::now()".to_owned()),
                "SystemTime" | "Instant" | "UNIX_EPOCH" => {
                    found(Rule::Clock, token, text.to_owned())
                }
                "RandomState" | "getrandom" | "OsRng" | "thread_rng" | "HashMap" | "HashSet" => {
                    found(Rule::Randomness, token, text.to_owned())
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
                    found(Rule::CoreInternals, token, text.to_owned())
                }
                name if name.ends_with("Registration") && name.len() > "Registration".len() => {
                    found(Rule::CoreInternals, token, name.to_owned())
                }
                name if MACRO_ONLY_TRAITS.contains(&name)
                    && next(1).is_some_and(|t| t.is_ident("as")) =>
                {
                    found(Rule::CoreInternals, token, format!("{name} as …"))
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
                    found(Rule::ForeignCode, token, format!("#[{text}]"))
                }
                _ => {}
            }
        }
        findings.extend(nested);
        findings
    }
}

/// The crate root says `#![no_std]` and `#![forbid(unsafe_code)]`, spelled as rustc reads
/// them: `forbid(clippy::unsafe_code)` names a tool lint and forbids nothing.
fn root_attributes(tokens: &[Token<'_>], found: &mut impl FnMut(Rule, &Token<'_>, String)) {
    let Some(first) = tokens.first() else {
        return;
    };
    let attributes = inner_attributes(tokens);
    if !attributes
        .iter()
        .any(|a| a.len() == 1 && a[0].is_ident("no_std"))
    {
        found(Rule::NoStd, first, "crate root".to_owned());
    }
    let forbids_unsafe = attributes.iter().any(|a| {
        a.first().is_some_and(|t| t.is_ident("forbid"))
            && a.iter()
                .enumerate()
                .any(|(i, t)| t.is_ident("unsafe_code") && !(i > 0 && a[i - 1].is_punct(':')))
    });
    if !forbids_unsafe {
        found(Rule::ForbidUnsafe, first, "crate root".to_owned());
    }
}

/// Whether a string holds a format placeholder of type `p` (`{:p}`, `{x:#p}`, `{0:>8p}`):
/// it prints an address, which differs between runs.
fn has_pointer_format(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(escaped) = rest.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        let Some(close) = rest.find('}') else {
            return false;
        };
        if let Some((_, spec)) = rest[..close].split_once(':')
            && spec.ends_with('p')
        {
            return true;
        }
        rest = &rest[close + 1..];
    }
    false
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
fn implemented_trait<'t>(tokens: &'t [Token<'_>], impl_at: usize) -> Option<&'t str> {
    let mut angle = 0i32;
    let mut last = None;
    for token in &tokens[impl_at + 1..] {
        match token.kind {
            Kind::Punct('<') => angle += 1,
            Kind::Punct('>') => angle -= 1,
            Kind::Punct('{' | ';') => return None,
            Kind::Ident if angle == 0 && token.text == "for" => return last,
            Kind::Ident if angle == 0 => last = Some(&*token.text),
            _ => {}
        }
    }
    None
}

/// What `std` at `at` reaches: one finding per kind of authority its path names, or
/// [`Rule::Std`] when it names none (`use std;`, `extern crate std as s;`).
fn std_uses(tokens: &[Token<'_>], at: usize) -> (Vec<(Rule, String)>, usize) {
    let mut uses = Vec::new();
    let name = &*tokens[at].text;
    let mut segments: Vec<&str> = Vec::new();
    let mut index = at + 1;
    while tokens.get(index).is_some_and(|t| t.is_punct(':'))
        && tokens.get(index + 1).is_some_and(|t| t.is_punct(':'))
    {
        match tokens.get(index + 2) {
            Some(token) if token.kind == Kind::Ident => {
                segments.push(&token.text);
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
                            if let Some(rule) = authority_of(&inner.text) {
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
