//! What the chores of `cargo xtask` share with their tests.

pub mod workspace;
