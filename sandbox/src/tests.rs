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
    let findings = scan_crate(&dir.join("src/lib.rs")).expect("scans");
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
    let rules: Vec<Rule> = scan_crate(&dir.join("src/lib.rs"))
        .expect("scans")
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(rules, vec![Rule::NoStd, Rule::ForbidUnsafe]);
    let dir = crate_with(&[(
        "lib.rs",
        "#![no_std]\n#![forbid(missing_docs, unsafe_code)]\n",
    )]);
    assert_eq!(scan_crate(&dir.join("src/lib.rs")).expect("scans"), vec![]);
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
    let findings: Vec<(Rule, String)> = scan_crate(&dir.join("src/lib.rs"))
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
fn modules_are_followed_into_their_files() {
    let dir = crate_with(&[
        ("lib.rs", &format!("{HEADER}mod a;\nmod b {{ mod c; }}\n")),
        ("a.rs", "mod inner;"),
        ("a/inner.rs", "use std::net::TcpStream;"),
        ("b/c/mod.rs", "\n\nfn f() { std::fs::remove_file(\"x\"); }"),
    ]);
    let findings = scan_crate(&dir.join("src/lib.rs")).expect("scans");
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
