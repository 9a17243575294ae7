//! `ops-core-runtime`: the core's machinery, which packs never link (deps-check refuses it).
//!
//! Storage, each table with one owner module that holds all its SQL:
//! - [`db`] opens SQLite or PostgreSQL; [`migrate`] runs core's and packs' migrations and
//!   owns `core_migrations`.
//! - [`store`] is the event log (`core_events`); other owners' writes join an append's
//!   transaction through the `atomic` module's `AtomicWrite`.
//! - `outbox` owns `core_outbox`, `command_log` owns `core_commands`, [`cursors`] owns
//!   `core_connector_cursors`, [`leases`] owns `core_leases` (which worker runs each
//!   projection, reaction and connector stream), `artifacts` owns `core_artifacts`, `quarantine` owns
//!   `core_quarantine`, and [`projection`] owns `core_projections` and the packs' state tables.
//! - [`clock`] is the wall clock, which only the runtime and the host read; [`custody`]
//!   keeps keys and sealing below the store, knowing nothing of it.
//!
//! Running packs: [`projection`] runs their projections, [`reaction`] their reactions,
//! [`connector`] their ingress connectors, [`reconcile`] turns disagreeing sources into
//! conflict events, and [`command`] is the command bus. Their pack code runs through
//! [`jail`]: in runner processes the kernel confines, one per pack; [`faults`] records what
//! faulted there and which pieces are paused; [`health`] which of a worker's jobs keep
//! failing.
//!
//! Gateways and services: [`egress`] (dispatcher, gateway checks, sagas), [`capability`],
//! [`query`] (the query gateway), [`secrets`] (the secrets provider), [`shredding`]
//! (sealing per data subject and erasure), [`governance`] (policies), [`signing`] (Ed25519
//! over content ids), [`supply_chain`] (releases), [`lineage`] (artifacts and their chain),
//! [`retention`], [`budget`] and [`scheduler`] (priority lanes). `service_event` is how
//! these services state their events, [`acting`] who acts in answer to what (the cause whose
//! time and causation a receipt takes), [`service_capability`] the capabilities the core
//! grants its own services so every receipt names one that exists, and `steps` how an
//! effect's steps become events.

pub mod acting;
pub(crate) mod artifacts;
mod atomic;
/// The runtime's proof that it is the core, for the doors of ops-core that pack code may not
/// open (every installed piece, envelopes built from type names).
// SAFETY: this crate is the core runtime, which packs never link (deps-check refuses it).
pub const CORE: ops_core::CoreToken = unsafe { ops_core::CoreToken::new() };

pub mod budget;
pub mod capability;
pub mod clock;
pub mod command;
pub(crate) mod command_log;
pub mod connector;
pub mod cursors;
pub mod custody;
pub mod db;
pub mod egress;
pub mod faults;
pub mod governance;
pub mod health;
pub mod jail;
pub mod leases;
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
pub mod service_capability;
mod service_event;
pub mod shredding;
pub mod signing;
mod steps;
pub mod store;
pub mod supply_chain;
