// A projection's rows live in the tables of its `Pack`. Naming another pack as the owner,
// to write into its tables, needs that pack as a dependency, which a pack cannot have.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, State};

struct Board;

impl Projection for Board {
    type Pack = pack_filesync::FilesyncPack;
    const NAME: &'static str = "board";
    const VERSION: u32 = 1;

    const EVENTS: &'static [EventType] = &[];

    fn apply(&self, _event: &ProjectedEvent<'_>, _state: &mut State) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
