//! A team's own host, outside this workspace: a crate in a temporary directory whose
//! manifest lists `ops-host` and two of the example packs (by path, as a team with this
//! repository checked out beside its own would), whose `build.rs` is
//! `ops_host_build::link_installed_packs()` and whose `main.rs` is `ops_host::main!()`.
//! It builds, runs the demo with exactly the packs it lists, and its CLI is `ops-host`'s.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate is inside the repository")
        .to_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_team_builds_and_runs_its_own_host_outside_this_workspace() {
    let repository = repository();
    let dir = std::env::temp_dir().join(format!("acme-host-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = |crate_dir: &str| repository.join(crate_dir).display().to_string();
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"acme-host\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nops-host = {{ path = \"{}\" }}\npack-incidents = {{ path = \"{}\" }}\npack-notify = {{ path = \"{}\" }}\n\n\
             [build-dependencies]\nops-host-build = {{ path = \"{}\" }}\n\n[workspace]\n",
            path("host"),
            path("packs/incidents"),
            path("packs/notify"),
            path("host-build"),
        ),
    );
    write(
        &dir.join("build.rs"),
        "fn main() {\n    ops_host_build::link_installed_packs();\n}\n",
    );
    write(&dir.join("src/main.rs"), "ops_host::main!();\n");
    // The same versions as this workspace, and its toolchain.
    for file in ["Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(repository.join(file), dir.join(file)).unwrap();
    }
    // Its own target directory, kept across runs in this workspace's, so a second run
    // builds only what changed.
    let target = repository.join("target/own-host");
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let host = target.join("debug/acme-host");
    let data = dir.join("ops-data");
    let demo = Command::new(&host)
        .args(["demo", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&demo.stdout);
    assert!(demo.status.success(), "{said}");
    assert!(
        said.contains("== installed packs (pack-incidents, pack-notify)")
            && said.contains("pack notify 0.1.0")
            && !said.contains("pack filesync"),
        "{said}"
    );
    // Its CLI is the whole of ops-host's: a read-only verb on the store the demo made.
    let status = Command::new(&host)
        .args(["releases", "list", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && listed.contains("pack `notify` 0.1.0 cid_"),
        "{listed}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
