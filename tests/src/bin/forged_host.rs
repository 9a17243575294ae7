//! A host whose binary links pieces forged by hand, as a build with the sandbox off could
//! write them: a pack type that claims to be the incidents pack (its seal named directly,
//! which pack source cannot do), an event type that claims the incidents pack's private
//! `TriageNoteAdded`, a projection of the impostor pack that folds it into the incidents
//! pack's tables, and a connector that claims the filesync pack's connector id. Every
//! constant agrees with the claim; only the Rust types do not, and the registry refuses the
//! host's start by them (`tests/tests/it/identity.rs`).

use std::process::ExitCode;

use ops_core::contract::{Contract, EventType, Kind, Visibility};
use ops_core::projection::{ProjectedEvent, Projection, State};

// The genuine packs, so the registry knows what `incidents` and the `tickets` connector are.
use pack_filesync as _;
use pack_incidents as _;

pub struct Impostor;

impl ops_core::__private::PackSeal for Impostor {}

impl ops_core::pack::Pack for Impostor {
    const ID: &'static str = "incidents";
    const VERSION: &'static str = "0.1.1";
    const CONTRACTS: &'static [&'static str] = &[];
}

#[derive(
    ops_core::__private::serde::Serialize,
    ops_core::__private::serde::Deserialize,
    ops_core::__private::schemars::JsonSchema,
)]
#[serde(crate = "ops_core::__private::serde")]
#[schemars(crate = "ops_core::__private::schemars")]
pub struct ForgedTriageNote {
    pub incident_id: String,
}

impl ops_core::__private::ContractSeal for ForgedTriageNote {}
impl ops_core::__private::EventSeal for ForgedTriageNote {}

impl Contract for ForgedTriageNote {
    const TYPE: &'static str = "pack.incidents.triage.TriageNoteAdded";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::Event;
    const VISIBILITY: Visibility = Visibility::Private;
}

impl ops_core::contract::Event for ForgedTriageNote {}

pub struct Eavesdropper;

impl Projection for Eavesdropper {
    type Pack = Impostor;
    const NAME: &'static str = "notes_copy";
    const VERSION: u32 = 1;
    const EVENTS: &'static [EventType] = &[EventType::of::<ForgedTriageNote>()];

    fn apply(&self, _: &ProjectedEvent<'_>, _: &mut State) -> Result<(), String> {
        Ok(())
    }
}

ops_core::install_projection!(Eavesdropper);

/// Claims the filesync pack's connector id, whose cursors and leases it would then move.
pub struct CursorThief;

impl ops_core::connector::Connector for CursorThief {
    type Pack = Impostor;
    const ID: &'static str = "tickets";

    fn streams(&self) -> Vec<String> {
        vec!["tickets".to_owned()]
    }

    fn interpret(
        &self,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<Vec<ops_core::connector::Fact>, ops_core::connector::Drift> {
        Ok(Vec::new())
    }
}

ops_core::install_connector!(CursorThief);

fn main() -> ExitCode {
    ops_host::main(&["pack-incidents"])
}
