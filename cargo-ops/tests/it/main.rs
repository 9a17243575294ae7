//! The tool end to end, one binary: a team workspace from `cargo ops new` to its gates,
//! contract-diff on workspace copies, deps-check on fixture
//! workspaces, schema-diff on files.

mod contract_diff;
mod deps_check;
mod sandbox;
mod schema_diff;
mod support;
mod team_workspace;
