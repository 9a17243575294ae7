//! `ops-host` as a library: the whole CLI and the runtime's wiring behind one call, so a
//! team's own host crate is a manifest listing its packs, a two-line `build.rs`
//! (`ops_host_build::link_installed_packs()`) and a one-line `main.rs`
//! (`ops_host::main!();`). This repository's `ops-host` binary is such a crate.
//!
//! The verbs' arguments are in `cli`, what each does in its module of `verbs`, given the
//! runtime `services` assembles; the demo (`demo`) sits above them, and nothing else
//! imports it. [`main`] only maps how a command ended to the exit code: 0 done, 1
//! refused, unhealthy or failed (the error printed as one message), 2 a usage error
//! (clap's) or other bad input: a flag's value, a file, a name, a store that is not there. [`webhook`] is the I/O packs may never do themselves:
//! it delivers external effects to HTTP endpoints for the egress gateway.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

mod cli;
mod config;
mod demo;
mod jailing;
mod outcome;
mod progress;
mod report;
mod services;
mod verbs;
mod vocabulary;
pub mod webhook;
mod worker;

/// Runs the command line of a host that links `installed_packs` (their crate names, as
/// `ops_host_build` lists them), and says how it ended.
pub fn main(installed_packs: &[&str]) -> ExitCode {
    // Started as a pack runner: serve, and nothing of the host runs.
    if let Some(code) = ops_core_runtime::jail::serve_if_runner() {
        return code;
    }
    let cli = cli::Cli::parse();
    jailing::set_unjailed(cli.unjailed);
    let ended = ops_core::registry::registry(ops_core_runtime::CORE)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .and_then(|registry| {
            let ctx = services::Context {
                registry,
                installed_packs,
                releases: cli.releases,
            };
            verbs::run(cli.command, &ctx)
        });
    match ended {
        Ok(outcome::Ended::Done) => ExitCode::SUCCESS,
        Ok(outcome::Ended::Refused) => ExitCode::from(1),
        Err(error) => {
            let mut message = outcome::message_of(&error);
            if error.chain().any(ops_core_runtime::db::is_read_only) {
                message = format!("{message}: {}", ops_core_runtime::db::WRITES_TO_READ_ONLY);
            }
            // Not `eprintln!`, which panics when the reader of standard error went away too.
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::from(if outcome::is_bad_input(&error) { 2 } else { 1 })
        }
    }
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
