//! Compile-fail proofs, written as a pack author trying to break the rules. trybuild
//! compiles each case with this pack's identity (see `ops-macros`' owner rules).

#[test]
fn forbidden_patterns_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
