//! The Lambda binary that whole-spec tests package is built on demand next to the test binaries.

#[test]
fn the_lambda_binary_is_built_next_to_the_tests() {
    let path = reconciler_testkit::ensure_lambda_artifact().unwrap();
    assert!(path.ends_with(reconciler_testkit::LAMBDA_BINARY));
    let header = std::fs::read(&path).unwrap();
    assert_eq!(&header[..4], b"\x7fELF");
}
