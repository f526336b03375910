//! xitc-print-stamp-path as users run it. Every test starts from an empty
//! environment, so a developer's own XITC_STAMP_PATH cannot leak in.

use assert_cmd::Command;
use predicates::prelude::*;

fn tool() -> Command {
    Command::from_std(xitc_test_support::tool!("xitc-print-stamp-path"))
}

#[test]
fn prints_the_2014_path_byte_exact() {
    tool()
        .assert()
        .success()
        .stdout("/var/run/xenserver.ready\n")
        .stderr("");
}

#[test]
fn xitc_stamp_path_overrides_it() {
    tool()
        .env("XITC_STAMP_PATH", "/tmp/my stamp's \"file\"")
        .assert()
        .success()
        .stdout("/tmp/my stamp's \"file\"\n")
        .stderr("");
}

#[test]
fn bad_overrides_are_usage_errors_with_one_line() {
    for (value, complaint) in [
        ("", "is set but empty"),
        ("relative.ready", "must be an absolute path"),
        ("/tmp/two\nlines", "must not contain control characters"),
    ] {
        tool()
            .env("XITC_STAMP_PATH", value)
            .assert()
            .code(2)
            .stdout("")
            .stderr(
                predicate::str::starts_with("xitc-print-stamp-path: error: XITC_STAMP_PATH ")
                    .and(predicate::str::contains(complaint))
                    .and(predicate::str::ends_with("\n"))
                    .and(predicate::function(|text: &str| text.lines().count() == 1)),
            );
    }
}

#[test]
fn non_utf8_override_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    tool()
        .env("XITC_STAMP_PATH", std::ffi::OsStr::from_bytes(b"/tmp/\xff"))
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("not valid UTF-8"));
}

#[test]
fn unknown_flag_and_extra_argument_exit_2_with_one_line() {
    for args in [&["--bogus"][..], &["extra"], &["-x", "y"]] {
        tool().args(args).assert().code(2).stdout("").stderr(
            predicate::str::starts_with("xitc-print-stamp-path: error: unexpected argument")
                .and(predicate::function(|text: &str| text.lines().count() == 1)),
        );
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    tool().arg("--help").assert().success().stderr("").stdout(
        predicate::str::contains("Usage: xitc-print-stamp-path")
            .and(predicate::str::contains("XITC_STAMP_PATH"))
            .and(predicate::str::contains("124")),
    );
    tool()
        .arg("--version")
        .assert()
        .success()
        .stderr("")
        .stdout(format!(
            "xitc-print-stamp-path {}\n",
            env!("CARGO_PKG_VERSION")
        ));
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    // The reader went away before the write (as in `xitc-print-stamp-path | true`):
    // EPIPE is deterministic because the read end is closed before the tool starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = xitc_test_support::tool!("xitc-print-stamp-path")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0));
    assert!(
        status.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&status.stderr)
    );
}
