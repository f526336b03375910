//! Keeps test-rs's modules free of import circles (ARCHITECTURE.md
//! "Layers of test-rs"): a module imports only modules of lower layers, every
//! module is in the table and every table entry is a module. The checker is
//! `xitc_test_support::layers`, shared with bin-convert's.

use std::path::Path;

use xitc_test_support::layers::{Rule, assert_kept};

#[test]
fn every_import_goes_to_a_lower_layer() {
    assert_kept(Rule {
        crate_dir: Path::new(env!("CARGO_MANIFEST_DIR")),
        section: "Layers of test-rs",
        files_apart_in: &[],
    });
}
