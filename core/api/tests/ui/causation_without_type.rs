// A causation id always carries its type: there is no way to make one from a bare string.
use ops_core::envelope::Causation;

fn main() {
    let _causation: Causation = "evt_0000000000000000000000000000000000000000000000000000000000000000"
        .parse()
        .unwrap();
}
