//! Test only: a pack whose code faults on cue, for the jail's tests. Each piece reads an
//! incident's title: `fold:panic`, `fold:alloc` (a TiB), `fold:loop` and `fold:socket`
//! fault the projection; `react:loop` makes the reaction never return; `decide:panic`
//! makes the handler panic mid-command. Any other title is folded into a row, so the tests
//! also see it work. Everything here keeps the sandbox rules: `fold:socket` only allocates
//! [`SOCKET_CUE_BYTES`], which the tests' host (`tests/src/bin/faulty_host.rs`) answers with
//! a socket, as code that escaped the rules would open one.

#![no_std]
#![forbid(unsafe_code)]

use ops_contract_incidents::IncidentOpened;
use ops_core::envelope::DedupeScope;
use ops_core::handler::{Decided, Handler};
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, State, Table};
use ops_core::reaction::{Proposal, Reaction};
use ops_core::{command, event, pack};

#[pack(id = "faulty", contracts = ["ops-contract-incidents"])]
pub struct FaultyPack;

#[command(domain = "trip", safety = WRITE_INTERNAL, dedupe = command)]
pub(crate) struct Trip {
    incident_id: String,
    how: String,
    /// Decoding a `Trip` runs this pack's code too: `panic` here panics it.
    #[serde(deserialize_with = "decoded_on_cue")]
    decode: String,
}

fn decoded_on_cue<'de, D: serde::Deserializer<'de>>(decoder: D) -> Result<String, D::Error> {
    let decode = <String as serde::Deserialize>::deserialize(decoder)?;
    fault(&decode);
    Ok(decode)
}

#[event(domain = "trip")]
pub(crate) struct Tripped {
    incident_id: String,
}

/// An allocation of exactly this many bytes is the tests' host's cue to open a socket.
pub const SOCKET_CUE_BYTES: usize = 7_777_777;

/// Does what `how` asks, or nothing; true when it returned.
fn fault(how: &str) -> bool {
    match how {
        "panic" => panic!("the faulty pack panics on cue"),
        "alloc" => {
            let mut huge: Vec<u8> = Vec::new();
            huge.reserve_exact(1 << 40);
            huge.push(1);
            huge.len() == 1
        }
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = n.wrapping_add(1);
                if n == u64::MAX {
                    return false;
                }
            }
        }
        "socket" => {
            let cue: Vec<u8> = Vec::with_capacity(SOCKET_CUE_BYTES);
            cue.capacity() == SOCKET_CUE_BYTES
        }
        _ => true,
    }
}

/// What the title asks `piece` to do.
fn cue<'a>(title: &'a str, piece: &str) -> &'a str {
    title
        .split_once(':')
        .filter(|(who, _)| *who == piece)
        .map_or("", |(_, how)| how)
}

const SEEN: Table<String> = Table::new("seen");

pub(crate) struct Tripwire;

impl Projection for Tripwire {
    type Pack = FaultyPack;
    const NAME: &'static str = "tripwire";
    const VERSION: u32 = 1;
    const EVENTS: &'static [EventType] = &[EventType::of::<IncidentOpened>()];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        let Some(opened) = event.decode::<IncidentOpened>() else {
            return Ok(());
        };
        let opened = opened.map_err(|e| e.to_string())?;
        fault(cue(&opened.title, "fold"));
        SEEN.put(state, &opened.incident_id, &opened.title)
    }
}

ops_core::install_projection!(Tripwire);

pub(crate) struct TripOnOpen;

impl Reaction for TripOnOpen {
    type Pack = FaultyPack;
    type Event = IncidentOpened;
    type Command = Trip;

    fn react(&self, opened: &IncidentOpened) -> Vec<Proposal<Trip>> {
        fault(cue(&opened.title, "react"));
        vec![Proposal {
            command: Trip {
                incident_id: opened.incident_id.clone(),
                how: cue(&opened.title, "decide").to_owned(),
                decode: cue(&opened.title, "decode").to_owned(),
            },
            target_ref: format!("trip/{}", opened.incident_id),
            dedupe_scope: DedupeScope::Command {
                aggregate_ref: format!("trip/{}", opened.incident_id),
            },
        }]
    }
}

ops_core::install_reaction!(TripOnOpen);

pub(crate) struct TripHandler;

impl Handler for TripHandler {
    type Pack = FaultyPack;
    type Command = Trip;
    type State = ();
    type Rejection = String;

    fn decide(&self, trip: &Trip, _: &()) -> Result<Vec<Decided>, String> {
        fault(&trip.how);
        Ok(vec![Decided::event(&Tripped {
            incident_id: trip.incident_id.clone(),
        })])
    }
}

ops_core::install_handler!(TripHandler);
