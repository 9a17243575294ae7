//! The registry's integration tests, one binary: the compatibility corpus, fuzzing of the
//! engine, and the contract-diff policy.

mod compat_corpus;
mod compat_fuzz;
mod policy;
