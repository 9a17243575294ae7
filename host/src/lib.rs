//! `ops-host` as a library: the whole CLI and the runtime's wiring behind one call, so a
//! team's own host crate is a manifest listing its packs, a two-line `build.rs`
//! (`ops_host_build::link_installed_packs()`) and a one-line `main.rs`
//! (`ops_host::main!();`). This repository's `ops-host` binary is such a crate.
//!
//! The verbs are in `cli`, what they do in `commands`; [`main`] only maps how a command
//! ended to the exit code: 0 done, 1 refused, unhealthy or failed (the error printed as
//! one message), 2 a usage error (clap's) or other bad input: a flag's value, a file, a
//! name, a store that is not there. [`webhook`] is the I/O packs may never do themselves:
//! it delivers external effects to HTTP endpoints for the egress gateway.

mod capabilities;
mod cli;
mod commands;
mod config;
mod demo;
mod effects;
mod jailing;
mod lineage;
mod policies;
mod progress;
mod releases;
mod retention;
mod runtime_demo;
mod sagas;
mod secrets;
mod status;
mod story_demo;
mod subjects;
mod submit;
pub mod webhook;
mod worker;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Runs the command line of a host that links `installed_packs` (their crate names, as
/// `ops_host_build` lists them), and says how it ended.
pub fn main(installed_packs: &[&str]) -> ExitCode {
    // Started as a pack runner: serve, and nothing of the host runs.
    if let Some(code) = ops_core_runtime::jail::serve_if_runner() {
        return code;
    }
    let cli = cli::Cli::parse();
    jailing::set_unjailed(cli.unjailed);
    let command = cli.command;
    let ended = ops_core::registry::registry(ops_core_runtime::CORE)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .and_then(|registry| commands::run(command, registry, installed_packs, cli.releases));
    match ended {
        Ok(commands::Ended::Done) => ExitCode::SUCCESS,
        Ok(commands::Ended::Refused) => ExitCode::from(1),
        Err(error) => {
            let mut message = message_of(&error);
            if error.chain().any(ops_core_runtime::db::is_read_only) {
                message = format!("{message}: {}", ops_core_runtime::db::WRITES_TO_READ_ONLY);
            }
            // Not `eprintln!`, which panics when the reader of standard error went away too.
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::from(if commands::is_bad_input(&error) { 2 } else { 1 })
        }
    }
}

/// What went wrong, each cause once: errors that state their source in their own text are
/// not followed by that source again.
pub(crate) fn message_of(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// A host crate's whole `main.rs`: links the packs its `build.rs` found in its manifest
/// (`ops_host_build::link_installed_packs()`) and runs [`main`].
#[macro_export]
macro_rules! main {
    () => {
        include!(concat!(env!("OUT_DIR"), "/installed_packs.rs"));

        fn main() -> ::std::process::ExitCode {
            $crate::main(INSTALLED_PACKS)
        }
    };
}
