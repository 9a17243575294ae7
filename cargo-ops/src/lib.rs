//! `cargo ops`: the framework's tools for any workspace (the current directory's by
//! default), as a cargo subcommand (`cargo install --path cargo-ops`, then `cargo ops …`;
//! here also `cargo run -p cargo-ops -- …`). This repository's `cargo xtask` runs the same
//! commands through [`Command`].
//!
//! - [`scaffold`]: `new` (a workspace with a host and a first pack) and `new-pack`.
//! - [`contract_diff`], [`deps_check`], [`acceptance`], [`schema_diff`]: the gates.
//! - `export`: the host's registry export.
//! - [`roles`]: what each crate is, from its name or its manifest's metadata;
//!   [`workspace`]: the workspace, its crates by role and its copies; [`manifest`]:
//!   manifest edits that keep their layout.

pub mod acceptance;
pub mod contract_diff;
pub mod deps_check;
pub mod manifest;
pub mod roles;
pub mod scaffold;
pub mod schema_diff;
pub mod workspace;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes shared by every gate: 0 clean, 1 violations, 2 usage or input error.
pub enum Verdict {
    Clean,
    Violations,
}

#[derive(Subcommand)]
pub enum Command {
    /// Make a workspace: a host crate, a first pack with its contract crate, their
    /// tests, and the manifests that tie them together.
    New(scaffold::NewOptions),
    /// Add a pack (`pack-<id>`) and its contract crate (`ops-contract-<id>`) to the
    /// workspace, with a sample event, command, handler, projection and tests, and install
    /// it in the host.
    NewPack(scaffold::PackOptions),
    /// Compare the current registry with the committed snapshot (constitution Sections 1, 4).
    ContractDiff(contract_diff::Options),
    /// Enforce the dependency graph of constitution Section 7, the allow-list of pack
    /// dependencies, the I/O deny-list and the sandbox rules of pack source.
    DepsCheck(deps_check::Options),
    /// Acceptance checks of the constitution that need a whole workspace.
    Acceptance {
        #[command(subcommand)]
        check: AcceptanceCheck,
    },
    /// Compare two JSON Schemas under typed-producers semantics.
    SchemaDiff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: schema_diff::Format,
    },
    /// Write the host's type registry (registry.json and one schema per type) to a folder.
    Export {
        /// The folder (default: `registry/export` in the workspace).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The workspace (default: the current directory's).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum AcceptanceCheck {
    /// Delete a pack in a copy of the workspace and prove nothing else breaks (Section 10).
    DeletePack {
        /// The pack id, e.g. `incidents`; without it, every pack of the workspace in
        /// turn, each from the copy as it was before any deletion.
        id: Option<String>,
        /// The workspace to copy (default: the current directory's).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
}

impl Command {
    pub fn run(self) -> anyhow::Result<Verdict> {
        match self {
            Command::New(options) => scaffold::new(&options),
            Command::NewPack(options) => scaffold::new_pack(&options),
            Command::ContractDiff(options) => contract_diff::run(&options),
            Command::DepsCheck(options) => deps_check::run(&options),
            Command::Acceptance {
                check: AcceptanceCheck::DeletePack { id, workspace },
            } => match id {
                Some(id) => acceptance::delete_pack(&id, workspace.as_deref()),
                None => acceptance::delete_every_pack(workspace.as_deref()),
            },
            Command::SchemaDiff { old, new, format } => schema_diff::run(&old, &new, format),
            Command::Export { out, workspace } => contract_diff::export(workspace.as_deref(), out),
        }
    }
}

#[derive(Parser)]
#[command(
    name = "cargo ops",
    about = "New workspaces and packs, and the ops gates, in any workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Parses the arguments as `P` and runs them with `run`: clap's own usage errors are exit 2,
/// `--help` exit 0; a verdict is 0 or 1, any other error is printed as one message, exit 2.
pub fn main_of<P: Parser>(
    arguments: impl IntoIterator<Item = OsString>,
    run: impl FnOnce(P) -> anyhow::Result<Verdict>,
) -> ExitCode {
    let parsed = match P::try_parse_from(arguments) {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(parsed) {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Violations) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `cargo-ops`'s `main`: cargo runs `cargo ops X` as `cargo-ops ops X`, and
/// `cargo run -p cargo-ops -- X` as `cargo-ops X`; both mean `X`.
pub fn main() -> ExitCode {
    let mut arguments: Vec<OsString> = std::env::args_os().collect();
    if arguments.get(1).is_some_and(|first| first == "ops") {
        arguments.remove(1);
    }
    main_of(arguments, |cli: Cli| cli.command.run())
}
