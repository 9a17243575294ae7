//! Compile-fail proofs for the core API: ids and envelopes cannot be forged or randomised.

#[test]
fn core_api_misuse_does_not_compile() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
