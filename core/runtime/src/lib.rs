//! `ops-core-runtime`: the core's machinery, which packs never link (deps-check refuses it).
//! [`db`] opens SQLite or PostgreSQL, [`migrate`] runs core's and packs' migrations,
//! [`store`] is the event log, [`command`] the command bus, [`projection`] runs packs' projections, [`reaction`] their reactions and [`connector`]
//! their ingress connectors, and [`reconcile`] turns disagreeing sources into conflict events.

pub(crate) mod artifacts;
mod atomic;
pub mod budget;
pub mod capability;
pub mod clock;
pub mod command;
pub(crate) mod command_log;
pub mod connector;
pub mod cursors;
pub mod db;
pub mod egress;
pub mod governance;
pub mod lineage;
pub mod migrate;
pub(crate) mod outbox;
pub mod projection;
mod quarantine;
pub mod query;
pub mod reaction;
pub mod reconcile;
pub mod retention;
pub mod scheduler;
pub mod secrets;
mod service_event;
pub mod shredding;
pub mod signing;
pub mod store;
pub mod supply_chain;
