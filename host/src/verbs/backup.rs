//! `ops-host backup`: a consistent copy of the database in one new file.

use std::io::Write;

use crate::cli::BackupArgs;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open};

impl BackupArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let BackupArgs { out, storage } = self;
        block_on(async move {
            let store = storage.services(ctx, Open::Existing).await?.store;
            // One consistent copy, taken in one step: the progress says when it is done.
            let progress = crate::progress::Progress::new("backup", "copies");
            progress.advance(0, 1);
            let copied = store
                .db()
                .backup_to(&out, storage.database.as_deref())
                .await;
            progress.advance(u64::from(copied.is_ok()), 1);
            progress.finish();
            copied?;
            writeln!(std::io::stdout(), "backed up to {}", out.display())?;
            Ok(Ended::Done)
        })
    }
}
