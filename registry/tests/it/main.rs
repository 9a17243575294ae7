//! The registry's integration tests, one binary: the contract-diff policy. The schema
//! engine's own tests are in `schema-compat`.

mod contract_policy;
