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

fn soak(scenarios: u32, race_rows: u32) -> anyhow::Result<Verdict> {
    let run = |test: &str, filter: &str, variable: &str, value: u32| {
        cargo_ops::workspace::cargo()
            .args([
                "test",
                "--release",
                "--package",
                "ops-tests",
                "--test",
                test,
                "--",
                filter,
                "--nocapture",
            ])
            .env(variable, value.to_string())
            .current_dir(repo_root())
            .status()
    };
    let scenarios_pass = run("it", "egress_soak::", "OPS_SOAK_SCENARIOS", scenarios)?.success();
    let race_passes = run(
        "it",
        "two_dispatchers_never_carry_out_the_same_effect",
        "OPS_RACE_ROWS",
        race_rows,
    )?
    .success();
    Ok(if scenarios_pass && race_passes {
        Verdict::Clean
    } else {
        Verdict::Violations
    })
}

/// The root of this repository (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_owned()
}
