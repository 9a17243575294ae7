// Command ids are content-addressed; there is no random constructor.
use ops_core::id::CommandId;

fn main() {
    let _id = CommandId::new_v4();
    let _id = CommandId::random();
}
