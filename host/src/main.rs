//! `ops-host`: the binary that links the installed packs and runs the platform.

mod demo;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

include!(concat!(env!("OUT_DIR"), "/installed_packs.rs"));

#[derive(Parser)]
#[command(
    name = "ops-host",
    version,
    about = "Run business operations as code, safely"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the end-to-end demo on the embedded default.
    Demo,
    /// Inspect the type registry of the installed packs.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Write `DIR/registry.json` and `DIR/schemas/<type>@v<N>.json`.
    Export {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let registry = ops_core::registry::registry().map_err(|error| anyhow::anyhow!("{error}"))?;
    match Cli::parse().command {
        Command::Demo => demo::run(registry, INSTALLED_PACKS, &mut std::io::stdout().lock()),
        Command::Registry {
            command: RegistryCommand::Export { out },
        } => {
            let export = ops_registry::document::Export::of(registry)?;
            export
                .write_to(&out)
                .with_context(|| format!("exporting the registry to {}", out.display()))?;
            println!(
                "wrote {} and {} schemas",
                out.join("registry.json").display(),
                export.schemas.len()
            );
            Ok(())
        }
    }
}
