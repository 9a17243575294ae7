//! Pack migrations on both backends: run in the pack's name, refused before they run when
//! they touch another prefix, and never run again once applied (nor edited).

use ops_core::pack::PackMigration;
use ops_core_runtime::db::on_db;
use ops_core_runtime::migrate::{MigrationError, run_pack};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;

const NOTES: PackMigration = PackMigration {
    name: "0001_notes",
    sql: "CREATE TABLE pack_notes_items (id TEXT PRIMARY KEY, body TEXT NOT NULL);
          CREATE INDEX pack_notes_items_body ON pack_notes_items (body);",
};

const SNEAKY: PackMigration = PackMigration {
    name: "0002_tidy_up",
    sql: "CREATE TABLE pack_notes_more (id TEXT); DELETE FROM core_events;",
};

on_both_backends!(
    pack_migrations_run_once_in_their_prefix_and_never_outside_it,
    a_pack_id_that_shares_another_packs_prefix_owns_no_tables,
    a_store_a_newer_host_migrated_is_refused,
    an_up_to_date_store_opens_while_another_host_holds_the_migrations_lock,
);

/// A host opening a store whose ledger records every migration it knows reads the ledger
/// and takes no lock, so it opens while another host holds the migrations' lock
/// (PostgreSQL's advisory lock, SQLite's write lock): a worker starting up does not queue
/// behind a migration, nor take the lock once per migration.
async fn an_up_to_date_store_opens_while_another_host_holds_the_migrations_lock(backend: Backend) {
    let store = backend
        .store("an_up_to_date_store_opens_while_another_host_holds_the_migrations_lock")
        .await;
    run_pack(store.db(), "notes", &[NOTES]).await.unwrap();
    let (lock, unlock) = match store.db().dialect() {
        ops_core_runtime::db::Dialect::Sqlite => ("BEGIN IMMEDIATE", "ROLLBACK"),
        ops_core_runtime::db::Dialect::Postgres => (
            "SELECT pg_advisory_lock(7201, hashtext(current_schema()))",
            "SELECT pg_advisory_unlock_all()",
        ),
    };
    let registry = ops_tests::linked_registry();
    let opened = on_db!(store.db(), pool => {
        let mut holder = pool.acquire().await.unwrap();
        sqlx::raw_sql(lock).execute(&mut *holder).await.unwrap();
        let opened = tokio::time::timeout(std::time::Duration::from_secs(3), async {
            ops_core_runtime::store::EventStore::open(store.db().clone(), registry)
                .await
                .map_err(|error| error.to_string())?;
            run_pack(store.db(), "notes", &[NOTES])
                .await
                .map_err(|error| error.to_string())
        })
        .await;
        sqlx::raw_sql(unlock).execute(&mut *holder).await.unwrap();
        opened
    });
    match opened {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("the up-to-date store was refused: {error}"),
        Err(_) => panic!("opening the up-to-date store waited for the migrations' lock"),
    }
}

/// A store migrated by a newer host (its ledger names a core migration this binary does not
/// know) is refused by name, whether the command would write or only read: this host does
/// not know the shape of what the newer one wrote.
async fn a_store_a_newer_host_migrated_is_refused(backend: Backend) {
    let store = backend
        .store("a_store_a_newer_host_migrated_is_refused")
        .await;
    on_db!(store.db(), pool => {
        sqlx::query("INSERT INTO core_migrations (owner, name, checksum) VALUES ('core', '9999_from_the_future', 'b3_x')")
            .execute(pool)
            .await
            .unwrap();
    });
    let registry = ops_tests::linked_registry();
    for opened in [
        ops_core_runtime::store::EventStore::open(store.db().clone(), registry)
            .await
            .map(drop),
        ops_core_runtime::store::EventStore::open_existing(store.db().clone(), registry)
            .await
            .map(drop),
    ] {
        let message = opened.unwrap_err().to_string();
        assert!(
            message.contains("migrated by a newer host")
                && message.contains("`9999_from_the_future`")
                && message.contains("whose last is `0011_outbox_claimable`"),
            "{message}"
        );
    }
}

async fn pack_migrations_run_once_in_their_prefix_and_never_outside_it(backend: Backend) {
    let store = backend
        .store("pack_migrations_run_once_in_their_prefix_and_never_outside_it")
        .await;
    let db = store.db();
    run_pack(db, "notes", &[NOTES]).await.unwrap();
    // Applied once: running again is a no-op, not a "table exists" error.
    run_pack(db, "notes", &[NOTES]).await.unwrap();
    on_db!(db, pool => {
        sqlx::query("INSERT INTO pack_notes_items (id, body) VALUES ('a', 'b')")
            .execute(pool)
            .await
            .unwrap();
    });

    let error = run_pack(db, "notes", &[NOTES, SNEAKY]).await.unwrap_err();
    assert!(
        matches!(error, MigrationError::OutsidePrefix { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("`0002_tidy_up`") && message.contains("`core_events`"),
        "{message}"
    );
    // Refused before anything ran: its first statement's table does not exist.
    let created: i64 = on_db!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM core_migrations WHERE owner = 'pack:notes'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(created, 1);
    let probe = on_db!(db, pool => sqlx::query("SELECT 1 FROM pack_notes_more").fetch_all(pool).await.map(drop));
    assert!(probe.is_err(), "pack_notes_more was created");

    let edited = PackMigration {
        name: "0001_notes",
        sql: "CREATE TABLE pack_notes_items (id TEXT PRIMARY KEY);",
    };
    let error = run_pack(db, "notes", &[edited]).await.unwrap_err();
    assert!(matches!(error, MigrationError::Edited { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("never edit an applied migration")
    );
}

/// A pack id with `_` owns no tables: pack `notes_archive`'s prefix `pack_notes_archive_`
/// is also the start of what pack `notes` may create, so its migrations are refused before
/// any runs, naming both and the fix, and nothing is created.
async fn a_pack_id_that_shares_another_packs_prefix_owns_no_tables(backend: Backend) {
    let db = &backend
        .db("a_pack_id_that_shares_another_packs_prefix_owns_no_tables")
        .await;
    const ARCHIVE: PackMigration = PackMigration {
        name: "0001_archive",
        sql: "CREATE TABLE pack_notes_archive_items (id TEXT PRIMARY KEY);",
    };
    let error = run_pack(db, "notes_archive", &[ARCHIVE]).await.unwrap_err();
    assert!(
        matches!(error, MigrationError::AmbiguousPrefix { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("a pack `notes` would both claim `pack_notes_archive_*`")
            && message.contains("name the crate `pack-notesarchive`"),
        "{message}"
    );
    let created: Vec<String> = ops_core_runtime::db::on_db!(db, pool => {
        sqlx::query_scalar::<_, String>(match db.dialect() {
            ops_core_runtime::db::Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE name LIKE 'pack%'",
            ops_core_runtime::db::Dialect::Postgres => "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'pack%'",
        })
        .fetch_all(pool)
        .await
        .unwrap()
    });
    assert!(created.is_empty(), "{created:?}");
}

/// SQLite workers started together on a new file take turns at the migrations (the write
/// lock is taken as each migration's transaction begins), so none dies of `database is
/// locked`, and each ends with the whole schema. Each worker is a thread with a runtime and
/// a pool of its own, as separate processes would be.
#[test]
fn sqlite_workers_started_together_take_turns_at_migrations() {
    let dir = std::env::temp_dir().join(format!("ops-migrate-together-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ops.sqlite");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let db = ops_core_runtime::db::Db::open_sqlite(&path)
                        .await
                        .map_err(|error| error.to_string())?;
                    let migrated = async {
                        ops_core_runtime::migrate::run_core(&db).await?;
                        run_pack(&db, "notes", &[NOTES]).await
                    };
                    migrated.await.map_err(|error| error.to_string())?;
                    let pending = ops_core_runtime::migrate::core_pending(&db)
                        .await
                        .map_err(|error| error.to_string());
                    db.close().await;
                    pending
                })
            })
        })
        .collect();
    for worker in workers {
        let pending = worker
            .join()
            .unwrap()
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(pending.is_empty(), "{pending:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
