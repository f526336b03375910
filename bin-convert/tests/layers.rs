//! Keeps bin-convert's layers true (ARCHITECTURE.md "Layers of xitc-convert"):
//! no import from a module to one of its own layer or a higher one, no
//! `super::` reach into a sibling file of `steps/` or `shared/`, every module
//! in the table and every table entry a module. The checker is
//! `xitc_test_support::layers`, shared with common's and test-rs's.

use std::path::Path;

use xitc_test_support::layers::{Rule, assert_kept};

#[test]
fn every_import_goes_to_a_lower_layer() {
    assert_kept(Rule {
        crate_dir: Path::new(env!("CARGO_MANIFEST_DIR")),
        section: "Layers of xitc-convert",
        files_apart_in: &["steps", "shared"],
    });
}
