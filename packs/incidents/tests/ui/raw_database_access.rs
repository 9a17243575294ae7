// A pack cannot reach the database: neither the driver nor the runtime's pools are among
// its dependencies (deps-check keeps it so), so there is nothing to import. Its state goes
// through `ops_core::projection::State`, which the runtime stores in `pack_incidents_*`.
#![no_std]
#![forbid(unsafe_code)]
use ops_core as _;
use ops_core_runtime::db::Db;
use sqlx::SqlitePool;

pub fn sneak(pool: SqlitePool, db: Db) {
    let _ = (pool, db);
}

fn main() {}
