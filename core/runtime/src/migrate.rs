//! Migrations with an owner: core's own (`core_*` tables, in this crate) and each pack's
//! (`pack_<id>_*` tables, declared with `#[pack(migrations = [...])]`, run by the host in
//! the pack's name). One ledger, `core_migrations`, records `(owner, name, checksum)`; an
//! applied migration whose text changed is refused rather than run again.
//!
//! Hand-rolled rather than `sqlx::migrate`, whose ledger has one owner and no way to check
//! what a migration touches; the SQL itself is parsed with `sqlparser`.

use std::ops::ControlFlow;

use ops_core::id::ContentHash;
use ops_core::pack::PackMigration;
use sqlparser::ast::{ObjectName, ObjectType, Statement};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::db::{Db, Dialect, on_db};

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "migration `{name}` of {owner} is refused before it runs: {reason}; a pack's migrations may only touch tables named `{prefix}*`"
    )]
    OutsidePrefix {
        owner: String,
        name: String,
        prefix: String,
        reason: String,
    },
    #[error(
        "pack `{pack_id}` may not own tables: its id holds `_`, so its prefix `pack_{pack_id}_` is also the start of another pack's (`{pack_id}` and a pack `{shorter}` would both claim `pack_{pack_id}_*`); pack ids are lower-case letters and digits (`[a-z][a-z0-9]*`), so name the crate `pack-{joined}`"
    )]
    AmbiguousPrefix {
        pack_id: String,
        shorter: String,
        joined: String,
    },
    #[error("migration `{name}` of {owner} is not SQL this host can check: {reason}")]
    Unparsable {
        owner: String,
        name: String,
        reason: String,
    },
    #[error(
        "migration `{name}` of {owner} was applied with checksum {applied} but its text now hashes to {now}; never edit an applied migration, add a new one"
    )]
    Edited {
        owner: String,
        name: String,
        applied: String,
        now: String,
    },
    #[error(
        "this store was migrated by a newer host: it has {owner} migration(s) {unknown} that this host ({version}, whose last is `{last}`) does not know; run a host at least as new as the one that migrated it, so nothing it wrote is read or written by code that does not know its shape"
    )]
    Newer {
        owner: String,
        unknown: String,
        last: String,
        version: &'static str,
    },
    #[error("migration `{name}` of {owner} failed: {source}")]
    Failed {
        owner: String,
        name: String,
        source: sqlx::Error,
    },
}

struct Migration<'a> {
    name: &'a str,
    sql: &'a str,
}

/// Core's migrations of one dialect, from `migrations/<dialect>/`, in order.
macro_rules! core_migrations {
    ($dialect:literal: $($name:literal),+) => {
        &[$(Migration {
            name: $name,
            sql: include_str!(concat!("../migrations/", $dialect, "/", $name, ".sql")),
        }),+]
    };
}

const SQLITE_CORE: &[Migration<'static>] = core_migrations!("sqlite": "0001_event_log", "0002_commands", "0003_outbox", "0004_sagas", "0005_artifacts", "0006_projection_generation", "0007_leases", "0008_command_capability_state", "0009_events_by_type_in_commit_order", "0010_events_stream_bucket", "0011_outbox_claimable");

const POSTGRES_CORE: &[Migration<'static>] = core_migrations!("postgres": "0001_event_log", "0002_commands", "0003_outbox", "0004_sagas", "0005_artifacts", "0006_projection_generation", "0007_leases", "0008_command_capability_state", "0009_events_by_type_in_commit_order", "0010_events_stream_bucket", "0011_outbox_claimable");

/// The lock migrations of one schema take, in their transaction.
const MIGRATING: &str = "SELECT pg_advisory_xact_lock(7201, hashtext(current_schema()))";

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS core_migrations (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (owner, name)
)";

/// Brings core's tables up to date, after refusing a store a newer host migrated.
pub async fn run_core(db: &Db) -> Result<(), MigrationError> {
    let known = core_of(db.dialect());
    let recorded = ledger_of(db, "core").await?;
    refuse_unknown("core", &recorded, known)?;
    apply(db, "core", known, &recorded).await
}

/// Refuses a store whose core migrations include one this binary does not know.
pub async fn refuse_newer_core(db: &Db) -> Result<(), MigrationError> {
    refuse_unknown("core", &ledger_of(db, "core").await?, core_of(db.dialect()))
}

/// Refuses a ledger holding `owner` migrations this binary does not know: a newer host
/// migrated the store, and this one would read and write tables whose shape it does not
/// know.
fn refuse_unknown(
    owner: &str,
    recorded: &[Recorded],
    known: &[Migration<'_>],
) -> Result<(), MigrationError> {
    let unknown: Vec<String> = recorded
        .iter()
        .filter(|done| !known.iter().any(|migration| migration.name == done.name))
        .map(|done| format!("`{}`", done.name))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(MigrationError::Newer {
        owner: owner.to_owned(),
        unknown: unknown.join(", "),
        last: known.last().map_or("none", |m| m.name).to_owned(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

fn core_of(dialect: Dialect) -> &'static [Migration<'static>] {
    match dialect {
        Dialect::Sqlite => SQLITE_CORE,
        Dialect::Postgres => POSTGRES_CORE,
    }
}

/// Core's migrations this store has not applied (all of them when it has no ledger):
/// read only, nothing is created.
pub async fn core_pending(db: &Db) -> Result<Vec<&'static str>, sqlx::Error> {
    let recorded = recorded(db, "core").await?;
    Ok(core_of(db.dialect())
        .iter()
        .map(|migration| migration.name)
        .filter(|name| !recorded.iter().any(|done| done.name == *name))
        .collect())
}

/// A migration the ledger records as applied.
struct Recorded {
    name: String,
    checksum: String,
}

/// [`recorded`], a failure named as the ledger's.
async fn ledger_of(db: &Db, owner: &str) -> Result<Vec<Recorded>, MigrationError> {
    recorded(db, owner)
        .await
        .map_err(|source| MigrationError::Failed {
            owner: owner.to_owned(),
            name: "ledger".to_owned(),
            source,
        })
}

/// The migrations of `owner` the ledger records (none when there is no ledger yet): read
/// only, nothing is created.
async fn recorded(db: &Db, owner: &str) -> Result<Vec<Recorded>, sqlx::Error> {
    let ledger_exists = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'core_migrations'"
        }
        Dialect::Postgres => {
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'core_migrations'"
        }
    };
    Ok(on_db!(db, pool => {
        let tables: i64 = sqlx::query_scalar(ledger_exists).fetch_one(pool).await?;
        if tables == 0 {
            Vec::new()
        } else {
            sqlx::query_as("SELECT name, checksum FROM core_migrations WHERE owner = $1 ORDER BY name")
                .bind(owner)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|(name, checksum)| Recorded { name, checksum })
                .collect()
        }
    }))
}

/// Runs a pack's migrations in its name, after checking every one of them.
pub async fn run_pack(
    db: &Db,
    pack_id: &str,
    migrations: &[PackMigration],
) -> Result<(), MigrationError> {
    // A pack's constant: with a `_` its prefix would be another's too.
    if !ops_core::pack::is_valid_pack_id(pack_id) {
        return Err(MigrationError::AmbiguousPrefix {
            pack_id: pack_id.to_owned(),
            shorter: pack_id.split('_').next().unwrap_or_default().to_owned(),
            joined: pack_id.replace('_', ""),
        });
    }
    let owner = format!("pack `{pack_id}`");
    let prefix = format!("pack_{pack_id}_");
    let migrations: Vec<Migration> = migrations
        .iter()
        .map(|m| Migration {
            name: m.name,
            sql: m.sql,
        })
        .collect();
    for migration in &migrations {
        check_pack_sql(db.dialect(), &owner, &prefix, migration)?;
    }
    let ledger_owner = format!("pack:{pack_id}");
    let recorded = ledger_of(db, &ledger_owner).await?;
    apply(db, &ledger_owner, &migrations, &recorded).await
}

/// Applies the `migrations` the ledger does not record yet (`recorded`, read before).
/// A store whose ledger records every one, each with its checksum, is up to date: rows of
/// the ledger are only ever added, so that read needs no lock, and a host opening a
/// migrated store reads one table rather than taking the lock once per migration.
async fn apply(
    db: &Db,
    ledger_owner: &str,
    migrations: &[Migration<'_>],
    recorded: &[Recorded],
) -> Result<(), MigrationError> {
    let owner_text = ledger_owner.to_owned();
    let checksums: Vec<String> = migrations
        .iter()
        .map(|migration| ContentHash::of_bytes(migration.sql.as_bytes()).to_string())
        .collect();
    let mut pending = false;
    for (migration, checksum) in migrations.iter().zip(&checksums) {
        match recorded.iter().find(|done| done.name == migration.name) {
            Some(done) if done.checksum == *checksum => {}
            Some(done) => return Err(edited(&owner_text, migration, &done.checksum, checksum)),
            None => pending = true,
        }
    }
    if !pending {
        return Ok(());
    }
    let failed = |name: &str, source| MigrationError::Failed {
        owner: owner_text.clone(),
        name: name.to_owned(),
        source,
    };
    on_db!(db, pool => {
        // Hosts starting together on one schema take turns, from the ledger on: before it
        // exists too, since `CREATE TABLE IF NOT EXISTS` alone races.
        // On SQLite the write lock is taken when the transaction begins, so workers starting
        // together wait for each other (the busy timeout) instead of failing at once when
        // a deferred read upgrades to a write.
        let begin = match db.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        let mut tx = pool.begin_with(begin).await.map_err(|e| failed("ledger", e))?;
        if db.dialect() == Dialect::Postgres {
            sqlx::query(MIGRATING)
                .execute(&mut *tx)
                .await
                .map_err(|e| failed("ledger", e))?;
        }
        sqlx::query(LEDGER).execute(&mut *tx).await.map_err(|e| failed("ledger", e))?;
        tx.commit().await.map_err(|e| failed("ledger", e))?;
        for (migration, checksum) in migrations.iter().zip(&checksums) {
            let mut tx = pool.begin_with(begin).await.map_err(|e| failed(migration.name, e))?;
            if db.dialect() == Dialect::Postgres {
                sqlx::query(MIGRATING)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| failed(migration.name, e))?;
            }
            let applied: Option<(String,)> = sqlx::query_as(
                "SELECT checksum FROM core_migrations WHERE owner = $1 AND name = $2",
            )
            .bind(ledger_owner)
            .bind(migration.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| failed(migration.name, e))?;
            match applied {
                Some((applied,)) if applied == *checksum => continue,
                Some((applied,)) => return Err(edited(&owner_text, migration, &applied, checksum)),
                None => {}
            }
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(migration.name, e))?;
            sqlx::query("INSERT INTO core_migrations (owner, name, checksum) VALUES ($1, $2, $3)")
                .bind(ledger_owner)
                .bind(migration.name)
                .bind(checksum)
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(migration.name, e))?;
            tx.commit().await.map_err(|e| failed(migration.name, e))?;
        }
        Ok(())
    })
}

/// The refusal of `migration`, applied with checksum `applied`, whose text now hashes to
/// `now`.
fn edited(owner: &str, migration: &Migration<'_>, applied: &str, now: &str) -> MigrationError {
    MigrationError::Edited {
        owner: owner.to_owned(),
        name: migration.name.to_owned(),
        applied: applied.to_owned(),
        now: now.to_owned(),
    }
}

/// What uninstalled packs left in the database: kept, never dropped by the host, so an
/// operator can decide (Section 10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Orphans {
    /// Tables named `pack_<id>_*` of no installed pack.
    pub tables: Vec<String>,
    /// Migration ledger owners (`pack:<id>`) of no installed pack.
    pub migration_owners: Vec<String>,
    /// Projections (`pack:<id>/<name>`) of no installed pack.
    pub projections: Vec<String>,
}

/// Finds what packs not in `installed` (pack ids) left behind.
/// `projections` are those recorded in the store (`projection::recorded`), by owner and name.
pub async fn orphans(
    db: &Db,
    installed: &[&str],
    projections: Vec<(String, String)>,
) -> Result<Orphans, sqlx::Error> {
    let owned = |name: &str| {
        installed
            .iter()
            .any(|id| name.starts_with(&format!("pack_{id}_")))
    };
    let tables_sql = match db.dialect() {
        Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Dialect::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        }
    };
    let (tables, owners, projections): (Vec<String>, Vec<String>, Vec<(String, String)>) = on_db!(db, pool => {
        let tables = sqlx::query_scalar(tables_sql).fetch_all(pool).await?;
        let owners = sqlx::query_scalar(
            "SELECT DISTINCT owner FROM core_migrations WHERE owner LIKE 'pack:%' ORDER BY owner",
        )
        .fetch_all(pool)
        .await?;
        (tables, owners, projections)
    });
    let uninstalled = |owner: &str| {
        owner
            .strip_prefix("pack:")
            .is_some_and(|id| !installed.contains(&id))
    };
    Ok(Orphans {
        tables: tables
            .into_iter()
            .filter(|name| name.starts_with("pack_") && !owned(name))
            .collect(),
        migration_owners: owners.into_iter().filter(|o| uninstalled(o)).collect(),
        projections: projections
            .into_iter()
            .filter(|(owner, _)| uninstalled(owner))
            .map(|(owner, name)| format!("{owner}/{name}"))
            .collect(),
    })
}

/// Statements a pack migration may contain: tables and indexes of its own, and rows in them.
fn check_pack_sql(
    dialect: Dialect,
    owner: &str,
    prefix: &str,
    migration: &Migration,
) -> Result<(), MigrationError> {
    let refuse = |reason: String| MigrationError::OutsidePrefix {
        owner: owner.to_owned(),
        name: migration.name.to_owned(),
        prefix: prefix.to_owned(),
        reason,
    };
    let sql_dialect: Box<dyn SqlDialect> = match dialect {
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
    };
    // Every word that names something of core, another pack or the catalog is refused,
    // wherever it appears (a REFERENCES clause, a subquery, a trigger body).
    let tokens = Tokenizer::new(sql_dialect.as_ref(), migration.sql)
        .tokenize()
        .map_err(|error| MigrationError::Unparsable {
            owner: owner.to_owned(),
            name: migration.name.to_owned(),
            reason: error.to_string(),
        })?;
    for token in &tokens {
        if let Token::Word(word) = token {
            let name = word.value.to_lowercase();
            let foreign = (name.starts_with("pack_") && !name.starts_with(prefix))
                || name.starts_with("core_")
                || name.starts_with("sqlite_")
                || name.starts_with("pg_")
                || name == "information_schema";
            if foreign {
                return Err(refuse(format!("it names `{}`", word.value)));
            }
        }
    }
    let statements = Parser::parse_sql(sql_dialect.as_ref(), migration.sql).map_err(|error| {
        MigrationError::Unparsable {
            owner: owner.to_owned(),
            name: migration.name.to_owned(),
            reason: error.to_string(),
        }
    })?;
    let own = |name: &ObjectName| {
        let text = name.to_string().to_lowercase();
        let unqualified = name.0.len() == 1;
        (unqualified && text.trim_matches('"').starts_with(prefix))
            .then_some(())
            .ok_or_else(|| refuse(format!("it touches `{name}`")))
    };
    for statement in &statements {
        match statement {
            Statement::CreateTable(_)
            | Statement::AlterTable { .. }
            | Statement::Insert(_)
            | Statement::Update { .. }
            | Statement::Delete(_) => {}
            Statement::CreateIndex(index) => {
                if let Some(name) = &index.name {
                    own(name)?;
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::Index,
                names,
                ..
            } => names.iter().try_for_each(own)?,
            other => {
                let kind = other.to_string();
                let kind: String = kind
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(refuse(format!(
                    "`{kind} ...` is not a statement a pack migration may run (tables, indexes and their rows only)"
                )));
            }
        }
    }
    let mut outside = None;
    let _ = sqlparser::ast::visit_relations(&statements, |relation| match own(relation) {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => {
            outside = Some(error);
            ControlFlow::Break(())
        }
    });
    outside.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Result<(), MigrationError> {
        let migration = Migration {
            name: "0001_x",
            sql,
        };
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            check_pack_sql(dialect, "pack `notes`", "pack_notes_", &migration)?;
        }
        Ok(())
    }

    #[test]
    fn own_tables_indexes_and_rows_are_allowed() {
        check(
            "CREATE TABLE pack_notes_items (id TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE INDEX pack_notes_items_body ON pack_notes_items (body);
             ALTER TABLE pack_notes_items ADD COLUMN tag TEXT;
             INSERT INTO pack_notes_items (id, body) VALUES ('a', 'b');
             UPDATE pack_notes_items SET tag = 'x' WHERE id IN (SELECT id FROM pack_notes_items);
             DROP INDEX pack_notes_items_body;",
        )
        .unwrap();
    }

    #[test]
    fn anything_outside_the_prefix_is_refused_with_its_name() {
        for (sql, named) in [
            (
                "CREATE TABLE core_events_copy (id TEXT)",
                "core_events_copy",
            ),
            ("DROP TABLE core_events", "core_events"),
            (
                "INSERT INTO pack_other_items VALUES (1)",
                "pack_other_items",
            ),
            (
                "CREATE TABLE pack_notes_a (id TEXT REFERENCES core_events (event_id))",
                "core_events",
            ),
            ("CREATE TABLE notes (id TEXT)", "notes"),
            ("CREATE INDEX idx ON pack_notes_a (id)", "idx"),
            (
                "DELETE FROM pack_notes_a WHERE id IN (SELECT event_id FROM events)",
                "events",
            ),
            (
                "CREATE TABLE public.pack_notes_a (id TEXT)",
                "public.pack_notes_a",
            ),
        ] {
            let error = check(sql).expect_err(sql).to_string();
            assert!(error.contains(&format!("`{named}`")), "{sql}: {error}");
            assert!(error.contains("pack_notes_*"), "{error}");
        }
    }

    #[test]
    fn other_statements_are_refused() {
        let error = check("CREATE VIEW pack_notes_v AS SELECT 1").unwrap_err();
        assert!(error.to_string().contains("CREATE VIEW"), "{error}");
        let error = check("GRANT ALL ON pack_notes_a TO someone").unwrap_err();
        assert!(error.to_string().contains("GRANT"), "{error}");
    }
}
