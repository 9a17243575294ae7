//! `cargo xtask <chore>`: every project chore, in Rust (see `.cargo/config.toml`).

mod acceptance;
mod bench;
mod contract_diff;
mod deps_check;
mod schema_diff;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project chores and CI gates")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enforce the dependency graph of constitution Section 7, the allow-list of pack
    /// dependencies, the I/O deny-list and the sandbox rules of pack source.
    DepsCheck {
        /// The workspace to check (default: this one).
        #[arg(long, value_name = "Cargo.toml")]
        manifest_path: Option<PathBuf>,
        /// The deny-list (default: xtask/deny-list.toml).
        #[arg(long, value_name = "FILE")]
        deny_list: Option<PathBuf>,
        /// The allow-list of pack, contract and shared dependencies (default:
        /// xtask/allow-list.toml).
        #[arg(long, value_name = "FILE")]
        allow_list: Option<PathBuf>,
    },
    /// Acceptance checks of the constitution that need a whole workspace.
    Acceptance {
        #[command(subcommand)]
        check: AcceptanceCheck,
    },
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
    /// Compare the current registry with the committed snapshot (constitution Sections 1, 4).
    ContractDiff(contract_diff::Options),
    /// Compare two JSON Schemas under typed-producers semantics.
    SchemaDiff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: schema_diff::Format,
    },
}

#[derive(Subcommand)]
enum AcceptanceCheck {
    /// Delete a pack in a copy of the workspace and prove nothing else breaks (Section 10).
    DeletePack {
        /// The pack id, e.g. `incidents`; without it, every pack of the workspace in
        /// turn, each in its own copy (the copies share one build directory).
        id: Option<String>,
        /// The workspace to copy (default: this one).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
}

/// Exit codes shared by every gate: 0 clean, 1 violations, 2 usage or input error.
pub enum Verdict {
    Clean,
    Violations,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let outcome = match cli.command {
        Command::DepsCheck {
            manifest_path,
            deny_list,
            allow_list,
        } => deps_check::run(
            manifest_path.as_deref(),
            deny_list.as_deref(),
            allow_list.as_deref(),
        ),
        Command::Acceptance {
            check: AcceptanceCheck::DeletePack { id, workspace },
        } => match id {
            Some(id) => acceptance::delete_pack(&id, workspace.as_deref()),
            None => acceptance::delete_every_pack(workspace.as_deref()),
        },
        Command::Soak {
            scenarios,
            race_rows,
        } => soak(scenarios, race_rows),
        Command::Bench { only, format } => bench::run(only, format),
        Command::ContractDiff(options) => contract_diff::run(&options),
        Command::SchemaDiff { old, new, format } => schema_diff::run(&old, &new, format),
    };
    match outcome {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Violations) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn soak(scenarios: u32, race_rows: u32) -> anyhow::Result<Verdict> {
    let run = |test: &str, filter: &str, variable: &str, value: u32| {
        xtask::workspace::cargo()
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
