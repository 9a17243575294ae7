//! Compile-fail proofs, written as the filesync pack's author trying to break the rules.

#[test]
fn forbidden_patterns_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
