//! Workspace-level integration tests, one binary: a module per area of the runtime or the
//! registry, most on both backends. `event_store_postgres` is a binary of its own: its tests
//! hold appends open and end sessions that wait on a lock, which must not meet the others.

mod acting;
mod budgets;
mod capabilities;
mod commands;
mod connectors;
mod egress;
mod egress_soak;
mod envelope_contract;
mod envelopes;
mod event_store;
mod identity;
mod leases;
mod lineage;
mod notify;
mod ordering;
mod pack_migrations;
mod policies;
mod projections;
mod queries;
mod registry_export;
mod retention;
mod sagas;
mod scheduler;
mod secrets;
mod shredding;
mod split;
mod supply_chain;
mod tidy;
mod workers;
