//! The project's own conventions, checked like the rules of the constitution: every module
//! of ops-core, ops-core-runtime and ops-registry has `//!` docs and is named in its crate's
//! docs, and each core table's SQL lives in its one owner module.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// The `mod` declarations of a crate root: `(name, file)`.
fn modules(crate_dir: &Path) -> Vec<(String, PathBuf)> {
    let root = std::fs::read_to_string(crate_dir.join("src/lib.rs")).expect("lib.rs");
    root.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            let name = rest.strip_suffix(';')?.to_owned();
            let flat = crate_dir.join(format!("src/{name}.rs"));
            let file = if flat.is_file() {
                flat
            } else {
                crate_dir.join(format!("src/{name}/mod.rs"))
            };
            Some((name, file))
        })
        .collect()
}

#[test]
fn every_module_has_docs_and_is_named_in_its_crates_docs() {
    let mut missing = Vec::new();
    for crate_dir in ["core/api", "core/runtime", "registry", "schema-compat"] {
        let dir = workspace().join(crate_dir);
        let root = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        let crate_docs: String = root
            .lines()
            .take_while(|line| line.starts_with("//!") || line.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let found = modules(&dir);
        assert!(found.len() >= 3, "{crate_dir}: {found:?}");
        for (name, file) in found {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !text.starts_with("//!") {
                missing.push(format!("{} has no `//!` docs", file.display()));
            }
            if !crate_docs.contains(&format!("`{name}`")) {
                missing.push(format!(
                    "{crate_dir}/src/lib.rs does not name module `{name}`"
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Each core table and the one runtime module that holds its SQL.
const OWNERS: [(&str, &str); 9] = [
    ("core_events", "store.rs"),
    ("core_outbox", "outbox.rs"),
    ("core_commands", "command_log.rs"),
    ("core_connector_cursors", "cursors.rs"),
    ("core_artifacts", "artifacts.rs"),
    ("core_quarantine", "quarantine.rs"),
    ("core_migrations", "migrate.rs"),
    ("core_projections", "projection.rs"),
    ("core_leases", "leases.rs"),
];

#[test]
fn each_core_table_is_named_only_by_its_owner() {
    let runtime = workspace().join("core/runtime");
    let migrations = std::fs::read_dir(runtime.join("migrations/sqlite"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect::<String>();
    for table in migrations
        .split("CREATE TABLE ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
    {
        assert!(
            OWNERS.iter().any(|(owned, _)| *owned == table),
            "table `{table}` has no owner module in this test"
        );
    }
    let mut strays = Vec::new();
    for path in rust_files(&runtime.join("src")) {
        let file = path
            .strip_prefix(runtime.join("src"))
            .unwrap()
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may name tables (the guard that refuses a pack migration does).
        // Comments and docs may name any table.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for (table, owner) in OWNERS {
            let named = code.match_indices(table).any(|(at, _)| {
                !code[at + table.len()..]
                    .starts_with(|c: char| c == '_' || c.is_ascii_alphanumeric())
            });
            if named && file != owner && !(file == "migrate.rs" && table == "core_migrations") {
                strays.push(format!("{file} names `{table}`, which {owner} owns"));
            }
        }
    }
    assert!(strays.is_empty(), "{}", strays.join("\n"));
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level runtime modules each file's code (not its comments) names as `crate::…`.
/// Which of `src`'s top-level modules each names through `crate::` (a `use` or a path,
/// grouped imports too), outside tests and comments.
fn imports_of(
    src: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut imports: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for path in rust_files(src) {
        let relative = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let named = imports.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                // `crate::{a::X, b}` names every module in the braces.
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .collect(),
                    None => vec![rest],
                };
                for name in names {
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        named.insert(name);
                    }
                }
            }
        }
    }
    imports
}

/// The modules of the runtime, of ops-core and of the host import each other without a
/// circle: each can be read (and changed) knowing only what it imports.
#[test]
fn modules_import_each_other_without_circles() {
    for (crate_src, at_least) in [
        ("core/runtime/src", 20),
        ("core/api/src", 20),
        ("host/src", 10),
    ] {
        let imports = imports_of(&workspace().join(crate_src));
        assert!(imports.len() > at_least, "{crate_src}: {imports:?}");
        let circles = circles_in(&imports);
        assert!(circles.is_empty(), "{crate_src}:\n{}", circles.join("\n"));
    }
}

/// Every import circle among `imports`, as `a -> b -> a`.
fn circles_in(
    imports: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<String> {
    // Depth-first, with the path so far: a module met again on its own path is a circle.
    fn visit(
        module: &str,
        imports: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            circles.push(format!("{} -> {module}", path[at..].join(" -> ")));
            return;
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for next in imports.get(module).into_iter().flatten() {
            visit(next, imports, path, done, circles);
        }
        path.pop();
    }
    let mut circles = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    for module in imports.keys() {
        visit(module, imports, &mut Vec::new(), &mut done, &mut circles);
    }
    circles
}
