// A crate is one pack: a second manifest is refused.
use ops_core::pack;

#[pack(id = "incidents")]
pub struct IncidentsPack;

mod again {
    #[ops_core::pack(id = "incidents")]
    pub struct AnotherIncidentsPack;
}

fn main() {}
