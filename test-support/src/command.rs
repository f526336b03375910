//! The command under test, built one way for every test crate: the binary
//! cargo built for this test (located by `cargo_bin!`, which only the tool's
//! own test crate can name, hence a macro), with an empty environment, so a
//! variable the tool reads (`OS_*`, `XITC_*`, `SSH_AUTH_SOCK`, `CI`…) reaches
//! it only when the test sets it.

use std::path::Path;
use std::process::Command;

/// `tool!("xitc-convert")`: [`command_under_test`] of that binary of the
/// calling crate. For assert_cmd's `timeout`, wrap it:
/// `assert_cmd::Command::from_std(tool!(…))`.
#[macro_export]
macro_rules! tool {
    ($name:literal) => {
        $crate::command_under_test($crate::assert_cmd::cargo::cargo_bin!($name))
    };
}

/// `binary` with nothing inherited from the environment of the test.
pub fn command_under_test(binary: impl AsRef<Path>) -> Command {
    let mut command = Command::new(binary.as_ref());
    command.env_clear();
    command
}

/// The stdout of a real program a test runs for its verdict (shellcheck,
/// man, a shell): the test fails, naming the program and its stderr, when
/// it fails or is not installed (scripts/install-test-deps installs them).
pub fn stdout_of(mut command: Command) -> String {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().unwrap_or_else(|error| {
        panic!("{program}: {error} (scripts/install-test-deps installs it)")
    });
    assert!(
        output.status.success(),
        "{program} {:?}: {}",
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
