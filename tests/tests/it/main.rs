//! Workspace-level integration tests, one binary: each module is one area of the runtime or the
//! registry, most run on both backends. `event_store_postgres` is a binary of its own: its
//! tests hold server-wide locks and transactions, which would stall followers of the other
//! modules while they run, as long as followers wait for every transaction on the server.

mod budgets;
mod capabilities;
mod commands;
mod connectors;
mod egress;
mod egress_soak;
mod envelope_contract;
mod envelopes;
mod event_store;
mod lineage;
mod notify;
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
mod supply_chain;
mod tidy;
mod ui;
