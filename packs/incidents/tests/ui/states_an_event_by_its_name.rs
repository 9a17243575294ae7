// Another pack's private event, written as a string: an event list, a fact and a decision
// are built only from types, so the string has nowhere to go.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::connector::{EventFact, Fact};
use ops_core::contract::{TypedEvent, Visibility};
use ops_core::handler::Decided;
use ops_core::prelude::*;

pub fn forged_fact() -> Fact {
    Fact::Event(EventFact {
        event: TypedEvent {
            event_type: "pack.notify.oncall.OnCallNotified",
            version: 1,
            payload: json!({}),
        },
        native_id: "x".to_owned(),
        occurred_at: "2026-01-01T00:00:00Z".parse().expect("a time"),
        source_sequence: None,
    })
}

pub fn forged_decision() -> Decided {
    Decided {
        event_type: "pack.notify.oncall.OnCallNotified",
        encoded: Err(String::new()),
    }
}

pub const FOLDED: &[EventType] = &[EventType {
    name: "pack.notify.oncall.OnCallNotified",
    version: 1,
    visibility: Visibility::Public,
}];

fn main() {}
