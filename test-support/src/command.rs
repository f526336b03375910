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
