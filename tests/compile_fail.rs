//! What the compiler says when an adapter's bounds are not met: the errors must name the
//! cause (`Send`, `'static`) and, for borrowed data, point to `lazy_par_map::scope`. The
//! expected messages are in `tests/ui/*.stderr`; after a deliberate change, regenerate them
//! with `TRYBUILD=overwrite cargo test --test compile_fail` and read the diff.

#[test]
fn errors_name_the_missing_bound() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
