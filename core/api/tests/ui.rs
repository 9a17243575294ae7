//! Compile-fail proofs for the core API: ids and envelopes cannot be forged or randomised.
//! Here, with ops-core's few dependencies, rather than in the workspace tests, so trybuild
//! checks no more than ops-core needs.

#[test]
fn core_api_misuse_does_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
