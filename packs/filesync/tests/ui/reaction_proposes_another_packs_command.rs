// A reaction may only propose its own pack's commands. The filesync pack sees the incidents
// pack's public events and can send its public commands through a handler of its own, but
// a reaction that proposes `OpenIncident` as if it were filesync's does not compile.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_contract_incidents::{IncidentOpened, OpenIncident};
use ops_core::reaction::{Proposal, Reaction};

pub struct ReopenEverything;

impl Reaction for ReopenEverything {
    type Pack = pack_filesync::FilesyncPack;
    type Event = IncidentOpened;
    type Command = OpenIncident;

    fn react(&self, _: &IncidentOpened) -> Vec<Proposal<OpenIncident>> {
        Vec::new()
    }
}

ops_core::install_reaction!(ReopenEverything);

fn main() {}
