//! `ops-host config check`: what a configuration file declares, or what is wrong and where.

use std::io::Write;

use crate::cli::ConfigCommand;
use crate::config::Config;
use crate::outcome::Ended;
use crate::services::Context;

impl ConfigCommand {
    pub(crate) fn run(self, _ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            ConfigCommand::Check { config } => {
                for line in Config::load(&config)?.describe() {
                    writeln!(std::io::stdout(), "{line}")?;
                }
                Ok(Ended::Done)
            }
        }
    }
}
