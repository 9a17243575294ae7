// A pack cannot reach the database: neither the driver nor the runtime's pools are among
// its dependencies (deps-check keeps it so), so there is nothing to import. Its state goes
// through `ops_core::projection::State`, which the runtime stores in `pack_incidents_*`.
#![no_std]
#![forbid(unsafe_code)]
use ops_core as _;
use ops_core_runtime::db::Db;
use sqlx::SqlitePool;

// An ops macro expands here, so the pack's own build runs the sandbox over this file: the
// refusal is the sandbox's, whatever else the compiler says about unlinked crates.
#[ops_core::data]
pub struct Page {
    pub to: String,
}

pub fn sneak(pool: SqlitePool, db: Db) {
    let _ = (pool, db);
}

fn main() {}
