// A projection's rows live in the tables of its `Pack`. A pack cannot depend on another pack
// to name it, so it writes its own pack type claiming the other's id, under an alias the
// sandbox's spelling rules might miss: `Pack` is sealed, so only `#[pack]` implements it.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::pack::Pack as Owner;
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, State};

struct Filesync;

impl Owner for Filesync {
    const ID: &'static str = "filesync";
    const VERSION: &'static str = "0.1.0";
    const CONTRACTS: &'static [&'static str] = &[];
}

#[ops_core::data]
struct Row {
    seen: u64,
}

struct Board;

impl Projection for Board {
    type Pack = Filesync;
    const NAME: &'static str = "board";
    const VERSION: u32 = 1;

    const EVENTS: &'static [EventType] = &[];

    fn apply(&self, _event: &ProjectedEvent<'_>, _state: &mut State) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
