//! The gates end to end, one binary: contract-diff on workspace copies, deps-check on fixture
//! workspaces, schema-diff on files.

mod contract_diff;
mod deps_check;
mod schema_diff;
