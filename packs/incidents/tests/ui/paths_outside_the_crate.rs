// Paths a pack supplies are compiled in or read by the host, so each must stay inside the
// pack's crate: migrations in its `migrations/` folder, a sample under its own folder.
#![no_std]
#![forbid(unsafe_code)]

#[ops_core::pack(
    id = "incidents",
    migrations = [
        "../../../core/runtime/migrations/0001_events.sql",
        "/etc/shadow.sql",
        "migrations/../Cargo.toml",
        "src/lib.rs",
    ]
)]
pub struct IncidentsPack;

pub const SAMPLE: &str = ops_core::pack_path!("../../../ops-data");
pub const ABSOLUTE: &str = ops_core::pack_path!("/etc");

fn main() {}
