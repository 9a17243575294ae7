// A pack reads public events only of the contract modules its manifest lists: depending on
// a contract crate is not enough, `#[pack(contracts = [...])]` says what the pack uses.
#![no_std]
#![forbid(unsafe_code)]
use ops_contract_incidents::IncidentOpened;
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, State};

#[ops_core::pack(id = "filesync", contracts = [])]
pub struct FilesyncPack;

struct Openings;

impl Projection for Openings {
    type Pack = FilesyncPack;
    const NAME: &'static str = "openings";
    const VERSION: u32 = 1;
    const EVENTS: &'static [EventType] = &[EventType::of::<IncidentOpened>()];

    fn apply(&self, _event: &ProjectedEvent<'_>, _state: &mut State) -> Result<(), String> {
        Ok(())
    }
}

ops_core::install_projection!(Openings);

fn main() {}
