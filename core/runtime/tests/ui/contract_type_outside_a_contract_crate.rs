// Only pack, contract, shared and core crates own contract types.
#[ops_core::event(domain = "misc")]
pub(crate) struct SomethingHappened {
    what: String,
}

fn main() {}
