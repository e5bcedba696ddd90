//! The committed vectors of one area (`tests/vectors/<area>/`): where they live, and reading
//! them all with the naming rule checked; test crates using it also declare `mod vector_file;`.

use std::path::PathBuf;

use crate::vector_file::{VectorFile, read_dir};

/// The folder of one area's vectors.
pub fn dir(area: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(area)
}

/// Fails unless the vector is named `fail_…` exactly when it expects a failure.
pub fn assert_named_for_outcome(vector: &VectorFile) {
    assert_eq!(
        vector.required("expect") == "success",
        !vector.name.starts_with("fail_"),
        "{}: negative vectors are named fail_…, and only they",
        vector.name
    );
}

/// Every committed vector of `area`, in name order: at least `min`, each named for its outcome.
pub fn committed(area: &str, min: usize) -> Vec<VectorFile> {
    let vectors = read_dir(&dir(area), &[]);
    assert!(
        vectors.len() >= min,
        "only {} {area} vectors, expected at least {min}",
        vectors.len()
    );
    vectors.iter().for_each(assert_named_for_outcome);
    vectors
}
