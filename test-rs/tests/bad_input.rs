//! Bad input and missing pieces: exit 2, one line naming the problem, and
//! nothing created (no cloud is reachable here: any cloud call would fail
//! differently).

mod siblings;

use std::path::Path;
use std::process::Command;

use xitc_test_support::assert_one_line_error;

const TOOL: &str = "test-rs";
const URL: &str = "http://127.0.0.1:9/appliance.xva";

/// test-rs at `binary`, the sibling tools built (test-rs looks for them
/// before it checks most arguments).
fn test_rs(binary: &Path) -> Command {
    siblings::built_beside_test_rs();
    let mut command = xitc_test_support::command_under_test(binary);
    command
        .env("OS_AUTH_URL", "http://127.0.0.1:9/v2.0")
        .env("OS_USERNAME", "u")
        .env("OS_PASSWORD", "p");
    command
}

fn built() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("test-rs"))
}

#[test]
fn bad_arguments_are_usage_errors() {
    let key_dir = tempfile::tempdir().unwrap();
    let not_a_key = key_dir.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let long_postfix = "x".repeat(49);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "no arguments",
            vec![],
            "required arguments were not provided",
        ),
        ("no postfix", vec![URL], "<VM_POSTFIX>"),
        ("empty postfix", vec![URL, ""], "VM_POSTFIX is empty"),
        (
            "postfix with a space",
            vec![URL, "a b"],
            "VM_POSTFIX \"a b\" has ' '",
        ),
        ("postfix with a slash", vec![URL, "a/b"], "has '/'"),
        ("postfix with non-ASCII", vec![URL, "ü"], "has 'ü'"),
        (
            "postfix too long",
            vec![URL, &long_postfix],
            "longer than 48",
        ),
        ("empty URL", vec!["", "p1"], "STAGING_VM_URL is empty"),
        (
            "zero interval",
            vec!["--interval", "0", URL, "p1"],
            "--interval must be more than 0",
        ),
        (
            "bad timeout",
            vec!["--boot-timeout", "long", URL, "p1"],
            "invalid value 'long'",
        ),
        (
            "bad metadata",
            vec!["--metadata", "novalue", URL, "p1"],
            "is not KEY=VALUE",
        ),
        (
            "unknown flag",
            vec!["--bogus", URL, "p1"],
            "unexpected argument '--bogus'",
        ),
        (
            "missing convert binary",
            vec!["--convert-binary", "/nonexistent/xitc-convert", URL, "p1"],
            "--convert-binary /nonexistent/xitc-convert is not a file",
        ),
    ];
    for (name, args, message) in cases {
        let output = test_rs(built()).args(&args).output().unwrap();
        assert_one_line_error(name, TOOL, &output, 2, message);
    }
    let output = test_rs(built())
        .arg("--convert-binary")
        .arg(built())
        .arg("--ssh-key")
        .arg(&not_a_key)
        .args([URL, "p1"])
        .output()
        .unwrap();
    assert_one_line_error(
        "key that is no OpenSSH key",
        TOOL,
        &output,
        2,
        "is not an OpenSSH private key",
    );
    let output = test_rs(built())
        .arg("--convert-binary")
        .arg(built())
        .arg("--ssh-key")
        .arg(key_dir.path().join("missing"))
        .args([URL, "p1"])
        .output()
        .unwrap();
    assert_one_line_error("missing key", TOOL, &output, 2, "cannot read --ssh-key");
}

#[test]
fn missing_credentials_and_unusable_temp_dir_are_usage_errors() {
    siblings::built_beside_test_rs();
    let output = xitc_test_support::tool!("test-rs")
        .arg("--convert-binary")
        .arg(built())
        .args([URL, "p1"])
        .output()
        .unwrap();
    assert_one_line_error("no credentials", TOOL, &output, 2, "no cloud credentials");

    let output = test_rs(built())
        .env("TMPDIR", "/nonexistent/tmp")
        .arg("--convert-binary")
        .arg(built())
        .args([URL, "p1"])
        .output()
        .unwrap();
    assert_one_line_error(
        "unusable temp dir",
        TOOL,
        &output,
        2,
        "cannot create a temp dir for the keypair in /nonexistent/tmp",
    );
}

#[test]
fn missing_sibling_tools_are_named_with_where_they_were_looked_for() {
    // test-rs alone in a directory, nothing in PATH. Hard links, not copies:
    // a copy is open for writing while it is written, and a process another
    // test forks meanwhile inherits that descriptor, so executing the copy
    // could fail with "Text file busy" (it did once). A link writes nothing;
    // the directory is beside the built binaries, on their file system.
    let siblings = siblings::built_beside_test_rs();
    let alone = tempfile::tempdir_in(siblings).unwrap();
    let copy = alone.path().join("test-rs");
    std::fs::hard_link(built(), &copy).unwrap();
    let output = test_rs(&copy)
        .env("PATH", "")
        .args([URL, "p1"])
        .output()
        .unwrap();
    assert_one_line_error(
        "no siblings",
        TOOL,
        &output,
        2,
        &format!(
            "xitc-get-ip-address-of-instance not found: looked next to test-rs ({})",
            alone.path().display()
        ),
    );

    // With the other tools beside it, the missing one is xitc-convert.
    for tool in ["xitc-get-ip-address-of-instance", "xitc-wait-until-done"] {
        std::fs::hard_link(siblings.join(tool), alone.path().join(tool)).unwrap();
    }
    let output = test_rs(&copy)
        .env("PATH", "")
        .args([URL, "p1"])
        .output()
        .unwrap();
    assert_one_line_error(
        "no xitc-convert",
        TOOL,
        &output,
        2,
        "xitc-convert not found",
    );
}

#[test]
fn a_closed_or_full_stdout_never_panics_and_the_exit_is_the_tests() {
    // Nothing listens on the identity URL: the first cloud call fails at once
    // (a refused connection on this machine is final), after test-rs has
    // printed its first step line into the broken stdout.
    for closed in [true, false] {
        let mut command = test_rs(built());
        command
            .arg("--convert-binary")
            .arg(built())
            .args([URL, "p1"])
            .stderr(std::process::Stdio::piped());
        if closed {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            command.stdout(writer);
        } else {
            command.stdout(std::fs::File::create("/dev/full").unwrap());
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "closed {closed}: {stderr}");
        assert!(!stderr.contains("panicked"), "closed {closed}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("test-rs: error: ") && last.contains("nothing listens there"),
            "closed {closed}: {stderr}"
        );
    }
}
