use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A crate in a fresh temporary folder: `(path relative to src/, source)` pairs.
fn crate_with(files: &[(&str, &str)]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ops-sandbox-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"pack-x\"\n").expect("manifest");
    for (path, source) in files {
        let file = dir.join("src").join(path);
        std::fs::create_dir_all(file.parent().expect("a folder")).expect("folder");
        std::fs::write(file, source).expect("write");
    }
    dir
}

const HEADER: &str = "#![no_std]\n#![forbid(unsafe_code)]\n";

fn rules_in(body: &str) -> Vec<(Rule, String)> {
    let dir = crate_with(&[("lib.rs", &format!("{HEADER}{body}"))]);
    let findings = scan_package(&dir).expect("scans");
    std::fs::remove_dir_all(&dir).ok();
    findings.into_iter().map(|f| (f.rule, f.found)).collect()
}

fn rules_only(body: &str) -> Vec<Rule> {
    rules_in(body).into_iter().map(|(rule, _)| rule).collect()
}

#[test]
fn a_clean_pack_has_no_findings() {
    let body = "use ops_core::prelude::*;\npub fn f(s: &str) -> String { format!(\"{s} std::net\") }\n// std::fs in a comment\nlet path = \"x\";";
    assert_eq!(rules_in(body), vec![]);
}

#[test]
fn the_root_must_be_no_std_and_forbid_unsafe_code() {
    let dir = crate_with(&[(
        "lib.rs",
        "#![cfg_attr(any(), no_std)]\n#![deny(unsafe_code)]\npub struct A;",
    )]);
    let rules: Vec<Rule> = scan_package(&dir)
        .expect("scans")
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(rules, vec![Rule::NoStd, Rule::ForbidUnsafe]);
    let dir = crate_with(&[(
        "lib.rs",
        "#![no_std]\n#![forbid(missing_docs, unsafe_code)]\n",
    )]);
    assert_eq!(scan_package(&dir).expect("scans"), vec![]);
}

#[test]
fn network_in_every_spelling() {
    for body in [
        "use std::net::TcpStream;",
        "fn f() { let _ = ::std::net::TcpStream::connect(\"1.2.3.4:80\"); }",
        "use std::{io::Write, net as n};",
        "use std::os::unix::net::UnixStream;",
        "extern crate std as s; use s::net::TcpStream;",
        "macro_rules! m { () => { std::net::UdpSocket::bind(\"0:0\") } }",
        "use r#std::net;",
    ] {
        let rules = rules_only(body);
        assert!(
            rules.contains(&Rule::Network) || rules.contains(&Rule::Std),
            "{body}: {rules:?}"
        );
    }
    assert_eq!(
        rules_only("use std::os::unix::net::UnixStream;"),
        vec![Rule::Network]
    );
    assert_eq!(
        rules_only("use std::{fs, net};"),
        vec![Rule::Network, Rule::Filesystem]
    );
}

#[test]
fn a_name_bound_to_std_anywhere_in_the_crate_is_std_everywhere() {
    let dir = crate_with(&[
        (
            "lib.rs",
            &format!("{HEADER}extern crate std as platform;\nmod a;\n"),
        ),
        (
            "a.rs",
            "use self::super::x;\nfn f() { platform::net::TcpStream::connect(\"x\"); }\nuse std as s;\nfn g() { s::fs::remove_file(\"x\"); }",
        ),
    ]);
    let findings: Vec<(Rule, String)> = scan_package(&dir)
        .expect("scans")
        .into_iter()
        .map(|f| (f.rule, f.found))
        .collect();
    assert_eq!(
        findings,
        vec![
            (
                Rule::Network,
                "platform::net::TcpStream::connect".to_owned()
            ),
            (Rule::Std, "std".to_owned()),
            (Rule::Filesystem, "s::fs::remove_file".to_owned()),
            (Rule::Std, "std".to_owned()),
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_std_path_is_reported_once() {
    assert_eq!(
        rules_in("fn f() { std::time::SystemTime::now(); }"),
        vec![(Rule::Clock, "std::time::SystemTime::now".to_owned())]
    );
}

#[test]
fn each_kind_of_ambient_authority_is_named() {
    let cases: [(&str, Rule); 21] = [
        ("use ops_core_runtime::egress::Executor;", Rule::IoCrate),
        (
            "fn f() { let _ = reqwest::blocking::get(\"https://x\"); }",
            Rule::IoCrate,
        ),
        ("extern crate libc;", Rule::IoCrate),
        (
            "static CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);",
            Rule::SharedState,
        ),
        ("static mut SEEN: u64 = 0;", Rule::SharedState),
        ("use std::fs::read_to_string;", Rule::Filesystem),
        ("fn f() { std::io::stdout(); }", Rule::Filesystem),
        ("use std::process::Command;", Rule::Process),
        ("fn f() { std::thread::spawn(|| ()); }", Rule::Process),
        (
            "fn f() { std::env::var(\"OPS_SECRETS_KEY\"); }",
            Rule::Environment,
        ),
        (
            "const K: &str = env!(\"OPS_SECRETS_KEY\");",
            Rule::BuildEnvironment,
        ),
        (
            "const K: Option<&str> = core::option_env!(\"HOME\");",
            Rule::BuildEnvironment,
        ),
        (
            "const K: &str = include_str!(\"../../ops-data/secrets.key\");",
            Rule::BuildFiles,
        ),
        (
            "const K: &[u8] = ::core::include_bytes!(\"/etc/passwd\");",
            Rule::BuildFiles,
        ),
        ("fn f() { let _ = Timestamp::now(); }", Rule::Clock),
        ("fn f() { std::time::SystemTime::now(); }", Rule::Clock),
        (
            "type M = std::collections::HashMap<u8, u8>;",
            Rule::Randomness,
        ),
        (
            "fn f() { unsafe { core::hint::unreachable_unchecked() } }",
            Rule::Unsafe,
        ),
        (
            "unsafe extern \"C\" { safe fn abs(x: i32) -> i32; }",
            Rule::Unsafe,
        ),
        ("#[path = \"/etc/evil.rs\"] mod evil;", Rule::ModulePath),
        (
            "ops_core::__private::inventory::submit! {}",
            Rule::CoreInternals,
        ),
    ];
    for (body, rule) in cases {
        let rules = rules_only(body);
        assert!(rules.contains(&rule), "{body}: {rules:?}");
    }
    assert!(rules_only("extern \"C\" fn f() {}").contains(&Rule::ForeignCode));
    assert!(rules_only("#[unsafe(no_mangle)] pub fn f() {}").contains(&Rule::ForeignCode));
    assert!(
        rules_only("impl ops_core::contract::Contract for X {}").contains(&Rule::CoreInternals)
    );
    assert!(rules_only("impl<T> DynProjection for Y<T> {}").contains(&Rule::CoreInternals));
    assert_eq!(
        rules_only("impl ops_core::contract::Upcast<v1::X> for X { }"),
        vec![]
    );
}

#[test]
fn every_file_under_src_is_read_whatever_declares_it() {
    let dir = crate_with(&[
        (
            "lib.rs",
            &format!("{HEADER}macro_rules! hide {{ () => {{ mod a; }} }}\nhide!();\n"),
        ),
        ("a.rs", "mod inner;"),
        ("a/inner.rs", "use std::net::TcpStream;"),
        ("b/c/mod.rs", "\n\nfn f() { std::fs::remove_file(\"x\"); }"),
    ]);
    let findings = scan_package(&dir).expect("scans");
    let places: Vec<(String, usize, Rule)> = findings
        .iter()
        .map(|f| {
            let file = f
                .file
                .strip_prefix(&dir)
                .expect("inside")
                .display()
                .to_string();
            (file, f.line, f.rule)
        })
        .collect();
    assert_eq!(
        places,
        vec![
            ("src/a/inner.rs".to_owned(), 1, Rule::Network),
            ("src/b/c/mod.rs".to_owned(), 3, Rule::Filesystem),
        ]
    );
    let message = findings[0].message(&dir);
    assert!(
        message.starts_with("`std::net::TcpStream` at src/a/inner.rs:1:5: a pack has no network access; ask for the effect with a `WRITE_EXTERNAL_SIDE_EFFECT` command"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The macro and the gate read the library rustc compiles: another `[lib] path` is refused,
/// and the file it names is read as the root all the same.
#[test]
fn a_library_root_other_than_src_lib_rs_is_refused_and_still_read() {
    let dir = crate_with(&[("lib.rs", HEADER)]);
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"pack-x\"\n\n[lib]\npath = \"other/root.rs\"\n",
    )
    .expect("manifest");
    std::fs::create_dir_all(dir.join("other")).expect("folder");
    std::fs::write(dir.join("other/root.rs"), "use std::net::TcpStream;").expect("root");
    let rules: Vec<Rule> = scan_package(&dir)
        .expect("scans")
        .into_iter()
        .map(|f| f.rule)
        .collect();
    for rule in [
        Rule::SourceLayout,
        Rule::NoStd,
        Rule::ForbidUnsafe,
        Rule::Network,
    ] {
        assert!(rules.contains(&rule), "{rule}: {rules:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn forbid_unsafe_is_spelled_as_rustc_reads_it() {
    for root in [
        "#![no_std]\n#![forbid(clippy::unsafe_code)]\n",
        "#![no_std]\n#![forbid(unused)]\n#![allow(unsafe_code)]\n",
    ] {
        let dir = crate_with(&[("lib.rs", root)]);
        let rules: Vec<Rule> = scan_package(&dir)
            .expect("scans")
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, vec![Rule::ForbidUnsafe], "{root}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Renamed imports and macro fragments: the name is caught where it is written, and a
/// macro, attribute or module named through a fragment is refused.
#[test]
fn build_reads_hidden_behind_renames_and_fragments_are_found() {
    let cases: [(&str, Rule); 12] = [
        (
            "use core::option_env as oe; const K: Option<&str> = oe!(\"HOME\");",
            Rule::BuildEnvironment,
        ),
        (
            "use core::{env as e}; const K: &str = e!(\"HOME\");",
            Rule::BuildEnvironment,
        ),
        (
            "use core::env; const K: &str = env!(\"HOME\");",
            Rule::BuildEnvironment,
        ),
        (
            "macro_rules! m { ($n:ident) => { $n!(\"HOME\") } } const K: Option<&str> = m!(option_env);",
            Rule::BuildEnvironment,
        ),
        (
            "macro_rules! m { ($n:ident) => { $n!(\"HOME\") } }",
            Rule::Fragment,
        ),
        (
            "macro_rules! m { ($a:meta) => { #[$a] mod x; } } m!(path = \"/etc/x.rs\");",
            Rule::Fragment,
        ),
        (
            "macro_rules! m { ($n:ident) => { mod $n; } } m!(evil);",
            Rule::Fragment,
        ),
        (
            "use core::include_bytes as bytes; const K: &[u8] = bytes!(\"/etc/passwd\");",
            Rule::BuildFiles,
        ),
        ("pub use core::include as inc;", Rule::BuildFiles),
        (
            "#[derive(Serialize)] struct X { #[serde(serialize_with = \"std::fs::write\")] a: u8 }",
            Rule::Filesystem,
        ),
        (
            "#[derive(Serialize)] #[serde(crate = \"ops_core::__priv\\x61te::serde\")] struct X;",
            Rule::CoreInternals,
        ),
        (
            "use ops_core::pack::Pack as P; impl P for X {}",
            Rule::CoreInternals,
        ),
    ];
    for (body, rule) in cases {
        let rules = rules_only(body);
        assert!(rules.contains(&rule), "{body}: {rules:?}");
    }
    // Prose in attributes is not code, and an ordinary local name is not a build read.
    assert_eq!(
        rules_in(
            "#[doc = \"reads std::fs\"] #[serde(rename = \"HashMap\")] struct X { env: u8 }\nfn f(x: X) -> u8 { let include = x.env; include }"
        ),
        vec![]
    );
}

#[test]
fn addresses_are_refused_in_every_spelling() {
    for body in [
        "fn f(x: &u8) -> String { format!(\"{:p}\", x) }",
        "fn f(x: &u8) -> String { format!(\"{x:#018p}\") }",
        "fn f(x: &u8) -> usize { x as *const u8 as usize }",
        "fn f(x: &mut u8) -> usize { x as *mut u8 as usize }",
        "fn f(x: &u8) -> usize { core::ptr::from_ref(x).addr() }",
        "fn f(x: &u8) -> usize { core::ptr::addr_of!(*x) as usize }",
        "fn f(s: &str) -> usize { s.as_ptr() as usize }",
        "fn f(x: &u8, g: &mut core::fmt::Formatter<'_>) { let _ = core::fmt::Pointer::fmt(&x, g); }",
        "fn f(x: &u8) -> String { format!(concat!(\"{\", \":p}\"), x) }",
        "fn f(b: Box<u8>) -> usize { Box::into_raw(b) as usize }",
        "fn g() {} fn f() -> usize { (g as fn()) as usize }",
        "fn f(s: &[u8]) -> usize { s.as_ptr_range().start as usize }",
    ] {
        assert!(rules_only(body).contains(&Rule::Address), "{body}");
    }
    assert_eq!(
        rules_in("fn f(a: u8, b: u8) -> u8 { a * b }\nconst S: &str = \"{{:p}} {x}\";"),
        vec![]
    );
}

/// Two literals the old lexer did not know could hide the code between them; rustc's own
/// lexer reads them, and what it would refuse is a finding, never skipped.
#[test]
fn literals_of_the_pinned_toolchain_hide_nothing_and_unreadable_tokens_are_findings() {
    let rules = rules_only(
        "const A: &core::ffi::CStr = c\"a\"; fn f() { std::fs::remove_file(\"x\"); } const B: &core::ffi::CStr = cr#\"b\"#;",
    );
    assert!(rules.contains(&Rule::Filesystem), "{rules:?}");
    for body in [
        "const A: &str = #\"x\"#; fn f() { std::fs::remove_file(\"x\"); }",
        "fn k#std() {}",
        "const A: &str = \"open",
    ] {
        assert!(rules_only(body).contains(&Rule::Unreadable), "{body}");
    }
}

#[test]
fn every_rule_says_what_to_use_instead() {
    for rule in Rule::ALL {
        assert!(rule.id().starts_with("sandbox/"));
        assert!(
            !rule.what().is_empty() && !rule.instead().is_empty(),
            "{rule}"
        );
    }
}
