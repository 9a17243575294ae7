//! `ops-host`: the binary that links the installed packs and runs the platform. The verbs
//! are in `cli`, what they do in `commands`; `main` only maps how a command ended to the
//! exit code: 0 done, 1 refused, unhealthy or failed (the error printed as one message),
//! 2 a usage error (clap's) or other bad input: a flag's value, a file, a name, a store
//! that is not there.

mod capabilities;
mod cli;
mod commands;
mod config;
mod demo;
mod effects;
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
mod worker;

use std::process::ExitCode;

use clap::Parser;

include!(concat!(env!("OUT_DIR"), "/installed_packs.rs"));

fn main() -> ExitCode {
    let command = cli::Cli::parse().command;
    let ended = ops_core::registry::registry()
        .map_err(|error| anyhow::anyhow!("{error}"))
        .and_then(|registry| commands::run(command, registry, INSTALLED_PACKS));
    match ended {
        Ok(commands::Ended::Done) => ExitCode::SUCCESS,
        Ok(commands::Ended::Refused) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(if commands::is_bad_input(&error) { 2 } else { 1 })
        }
    }
}
