//! The verbs of the command line: one module per verb, each with one entry point,
//! `impl <its arguments> { fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> }`, given
//! the runtime through [`Context`] and [`crate::services`]. A new verb is a clap variant in
//! `cli`, a module here and one line in [`run`].

use crate::cli::Command;
use crate::outcome::Ended;
use crate::services::Context;

pub(crate) mod backup;
pub(crate) mod capabilities;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod connectors;
pub(crate) mod demo;
pub(crate) mod effects;
pub(crate) mod lineage;
pub(crate) mod log;
pub(crate) mod packs;
pub(crate) mod policies;
pub(crate) mod projections;
pub(crate) mod quarantine;
pub(crate) mod reconcile;
pub(crate) mod registry;
pub(crate) mod releases;
pub(crate) mod retention;
pub(crate) mod run;
pub(crate) mod sagas;
pub(crate) mod secrets;
pub(crate) mod status;
pub(crate) mod subjects;

/// Runs `command`: how it ended, or why it could not.
pub(crate) fn run(command: Command, ctx: &Context<'_>) -> anyhow::Result<Ended> {
    match command {
        Command::Demo(verb) => verb.run(ctx),
        Command::Registry(verb) => verb.run(ctx),
        Command::Packs(verb) => verb.run(ctx),
        Command::Projections(verb) => verb.run(ctx),
        Command::Sagas(verb) => verb.run(ctx),
        Command::Capabilities(verb) => verb.run(ctx),
        Command::Status(verb) => verb.run(ctx),
        Command::Backup(verb) => verb.run(ctx),
        Command::Run(verb) => verb.run(ctx),
        Command::Commands(verb) => verb.run(ctx),
        Command::Subjects(verb) => verb.run(ctx),
        Command::Policies(verb) => verb.run(ctx),
        Command::Secrets(verb) => verb.run(ctx),
        Command::Effects(verb) => verb.run(ctx),
        Command::Quarantine(verb) => verb.run(ctx),
        Command::Config(verb) => verb.run(ctx),
        Command::Releases(verb) => verb.run(ctx),
        Command::Retention(verb) => verb.run(ctx),
        Command::Lineage(verb) => verb.run(ctx),
        Command::Connectors(verb) => verb.run(ctx),
        Command::Reconcile(verb) => verb.run(ctx),
        Command::Log(verb) => verb.run(ctx),
    }
}
