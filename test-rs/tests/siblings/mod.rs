//! The sibling tools test-rs runs, built by the test itself: cargo builds
//! for an integration test only its own package's binaries, and a test that
//! relied on `cargo build --workspace` having run before would fail in a fresh
//! clone under `cargo test -p test-rs`. So the first test that needs them runs
//! `cargo build` for their packages, into the same target directory and
//! profile as test-rs (cargo holds no lock while tests run). Once per test
//! process; cargo's own lock orders test processes. After `cargo test
//! --workspace` this may rebuild xitc-common once (about 20 s here): these two
//! packages alone ask it for fewer features than the whole workspace's tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The binaries test-rs finds next to itself, and their packages.
const SIBLINGS: [(&str, &str); 2] = [
    ("xitc-get-ip-address-of-instance", "bin-get-ip"),
    ("xitc-wait-until-done", "bin-wait-done"),
];

/// The directory of test-rs, with the sibling tools built beside it.
pub fn built_beside_test_rs() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let test_rs = Path::new(assert_cmd::cargo::cargo_bin!("test-rs"));
        let dir = test_rs.parent().expect("test-rs has a directory");
        // target/debug is the dev profile; target/<name> any other.
        let profile = match dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut command = Command::new(cargo);
        command
            .args(["build", "--quiet", "--bins", "--profile", profile])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir(dir));
        for (_, package) in SIBLINGS {
            command.args(["-p", package]);
        }
        let status = command.status().expect("running cargo build");
        assert!(status.success(), "cargo build of the sibling tools failed");
        for (binary, _) in SIBLINGS {
            assert!(
                dir.join(binary).is_file(),
                "{binary} was built, but not next to test-rs in {}",
                dir.display()
            );
        }
        dir.to_path_buf()
    })
}

/// `target/debug` → `target`. (A build with `--target TRIPLE` puts test-rs in
/// `target/TRIPLE/debug` and would need that `--target` again: the check
/// after the build says so rather than a test failing later.)
fn target_dir(profile_dir: &Path) -> PathBuf {
    profile_dir
        .parent()
        .expect("the profile directory is inside the target directory")
        .to_path_buf()
}
