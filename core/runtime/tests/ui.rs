//! Compile-fail proofs at the runtime's edge: a secret's value cannot be printed or
//! serialized, and a crate that is not a pack, contract, shared or core crate owns no
//! contract type.

#[test]
fn runtime_misuse_does_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
