// The filesync pack uses the incidents contract, so it can name `AcknowledgeIncident`; it
// still cannot install a handler for it: only the owner of a command decides it.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_contract_incidents::AcknowledgeIncident;
use ops_core::handler::{Decided, Handler};

struct AcknowledgeEverything;

impl Handler for AcknowledgeEverything {
    type Pack = pack_filesync::FilesyncPack;
    type Command = AcknowledgeIncident;
    type State = ();
    type Rejection = String;

    fn decide(&self, _: &AcknowledgeIncident, _: &()) -> Result<Vec<Decided>, String> {
        Ok(Vec::new())
    }
}

ops_core::install_handler!(AcknowledgeEverything);

fn main() {}
