// A crate is one pack: a second manifest is refused.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::pack;

#[pack(id = "incidents")]
pub struct IncidentsPack;

mod again {
    #[ops_core::pack(id = "incidents")]
    pub struct AnotherIncidentsPack;
}

fn main() {}
