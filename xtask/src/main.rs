//! `cargo xtask <chore>`: every project chore, in Rust (see `.cargo/config.toml`).

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use cargo_ops::Verdict;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project chores and CI gates")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every `cargo ops` command, run by the same code.
    #[command(flatten)]
    Ops(cargo_ops::Command),
    /// The randomized crash scenarios of the outbox and egress gateway, many of them, on
    /// SQLite and PostgreSQL (`cargo test` runs a few).
    /// Then two dispatchers race for `--race-rows` outbox rows on each backend.
    Soak {
        #[arg(long, default_value_t = 1000)]
        scenarios: u32,
        #[arg(long, default_value_t = 10_000)]
        race_rows: u32,
    },
    /// Run the benchmarks (in release) and print each as a ratio against its baseline.
    Bench {
        #[arg(value_enum)]
        only: Option<bench::Bench>,
        #[arg(long, value_enum, default_value = "text")]
        format: bench::Format,
    },
}

fn main() -> ExitCode {
    cargo_ops::main_of(std::env::args_os(), |cli: Cli| match cli.command {
        Command::Ops(command) => command.run(),
        Command::Soak {
            scenarios,
            race_rows,
        } => soak(scenarios, race_rows),
        Command::Bench { only, format } => bench::run(only, format),
    })
}

/// Runs the soak's tests at their full size. A filter that matches no test fails the soak
/// (cargo would pass it, having run nothing), and so does any test that fails.
fn soak(scenarios: u32, race_rows: u32) -> anyhow::Result<Verdict> {
    let run = |filter: &str, variable: &str, value: u32| -> anyhow::Result<bool> {
        let output = cargo_ops::workspace::cargo()
            .args([
                "test",
                "--release",
                "--package",
                "ops-tests",
                "--test",
                "it",
                "--",
                filter,
                "--nocapture",
            ])
            .env(variable, value.to_string())
            .current_dir(repo_root())
            .stderr(std::process::Stdio::inherit())
            .output()?;
        let said = String::from_utf8_lossy(&output.stdout);
        print!("{said}");
        let ran = tests_run(&said);
        if ran == 0 {
            eprintln!(
                "error: soak filter `{filter}` matched no test of `ops-tests`'s `it`; nothing was soaked"
            );
        }
        Ok(output.status.success() && ran > 0)
    };
    let scenarios_pass = run("egress_soak::", "OPS_SOAK_SCENARIOS", scenarios)?;
    let race_passes = run(
        "two_dispatchers_never_carry_out_the_same_effect",
        "OPS_RACE_ROWS",
        race_rows,
    )?;
    Ok(if scenarios_pass && race_passes {
        Verdict::Clean
    } else {
        Verdict::Violations
    })
}

/// How many tests a libtest run says it ran (`running N tests`).
fn tests_run(output: &str) -> usize {
    output
        .lines()
        .filter_map(|line| {
            line.strip_prefix("running ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// The root of this repository (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_owned()
}

#[cfg(test)]
mod tests {
    /// A filter that matches nothing reads as no test run, however many were filtered out.
    #[test]
    fn runs_are_counted_from_libtest_output() {
        let matched = "running 2 tests\ntest a ... ok\ntest b ... ok\n\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 207 filtered out";
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 209 filtered out";
        assert_eq!(super::tests_run(matched), 2);
        assert_eq!(super::tests_run(none), 0);
    }
}
