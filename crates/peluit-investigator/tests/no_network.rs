//! The desk must never be able to talk to a network: no crate of its normal dependency
//! tree may be a network, async-runtime or server crate (issue 5, DESIGN "Investigator desk").

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "tokio", "hyper", "reqwest", "ureq", "axum", "sled", "mio", "socket2", "h2", "curl", "isahc",
];

#[test]
fn the_dependency_tree_has_no_network_code() {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "tree",
            "-p",
            "peluit-investigator",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(names.contains(&"peluit-proto"), "the tree was read: {tree}");
    for name in names {
        assert!(
            !FORBIDDEN.contains(&name),
            "network crate {name} in the desk's tree:\n{tree}"
        );
    }
}
