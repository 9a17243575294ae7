//! The compile-time sandbox on a real pack library, built by cargo as a host would build it:
//! the ops macro that expands in `src/lib.rs` reads every file under `src/` (a module
//! declared inside a `macro_rules!` too) and fails the build with each finding.

use std::process::Command;

use crate::support::{copies_target, repository};

#[test]
fn a_pack_library_that_breaks_the_rules_does_not_build() {
    let dir = std::env::temp_dir().join(format!("ops-leaky-pack-{}", std::process::id()));
    let fixture = repository().join("cargo-ops/tests/.fixtures/leaky-pack");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for file in ["src/lib.rs", "src/hidden.rs"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    // The framework's lock, so the pack builds offline with the tested versions.
    std::fs::copy(repository().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"pack-leaky\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nops-core = {{ path = \"{}\" }}\n\n[lints.rust]\nunsafe_code = \"forbid\"\n\n[workspace]\n",
            repository().join("core/api").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["build", "--lib", "--offline", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", copies_target())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for finding in [
        "`std::net::TcpStream::connect` at src/hidden.rs:2:7: a pack has no network access",
        "`option_env` at src/lib.rs:5:11: this compiles the build machine's environment into the pack",
    ] {
        assert!(stderr.contains(finding), "{finding}\n{stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
