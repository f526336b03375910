//! Bad input and missing pieces: exit 2, one line naming the problem, and
//! nothing created (no cloud is reachable here: any cloud call would fail
//! differently).

mod siblings;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::Path;
use std::process::Command;

use xitc_test_support::{FakeHttp, Reply, assert_one_line_error};

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

/// The project's sweep for test-rs (README "Exit status"): each bad input is
/// exit 2 with one line naming the problem, and it is found before test-rs
/// says a word to the cloud. The cloud here is a fake that records every
/// request and answers none usefully: it must see no request at all.
#[test]
#[allow(clippy::too_many_lines)] // one table of cases
fn bad_arguments_are_usage_errors_found_before_any_cloud_call() {
    let cloud = FakeHttp::start(|_| Reply::text(500, "no"));
    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let long_postfix = "x".repeat(49);
    let long_key = format!("{}=v", "k".repeat(256));
    let long_value = format!("k={}", "v".repeat(256));
    let missing_key = dir.path().join("missing");
    let dir_text = dir.path().to_str().unwrap();
    let convert: &str = built().to_str().unwrap();
    let cases: Vec<(&str, Vec<OsString>, &str)> = vec![
        (
            "no arguments",
            args(&[]),
            "required arguments were not provided",
        ),
        (
            "no postfix",
            args(&[URL]),
            "STAGING_VM_URL and VM_POSTFIX are both needed",
        ),
        (
            "direct mode with an appliance URL",
            args(&["--mode", "direct", URL, "p1"]),
            "the direct mode imports no appliance: give VM_POSTFIX only",
        ),
        (
            "direct mode with the bounce",
            args(&["--mode", "direct", "--network", "bounce", "p1"]),
            "--network bounce needs the appliance mode",
        ),
        (
            "unknown network source",
            args(&["--network", "radio", URL, "p1"]),
            "invalid value 'radio' for '--network <NETWORK>'",
        ),
        (
            "direct mode, empty postfix",
            args(&["--mode", "direct", ""]),
            "VM_POSTFIX is empty",
        ),
        ("empty postfix", args(&[URL, ""]), "VM_POSTFIX is empty"),
        (
            "postfix with a space",
            args(&[URL, "a b"]),
            "VM_POSTFIX \"a b\" has ' '",
        ),
        ("postfix with a slash", args(&[URL, "a/b"]), "has '/'"),
        ("postfix with non-ASCII", args(&[URL, "ü"]), "has 'ü'"),
        (
            "postfix too long",
            args(&[URL, &long_postfix]),
            "longer than 48",
        ),
        (
            "postfix not UTF-8",
            vec![URL.into(), OsString::from_vec(b"p\xff".to_vec())],
            "invalid UTF-8",
        ),
        (
            "empty URL",
            args(&["", "p1"]),
            "STAGING_VM_URL must be an http://",
        ),
        (
            "URL of another scheme",
            args(&["ftp://h/a.xva", "p1"]),
            "STAGING_VM_URL must be",
        ),
        (
            "URL with a space",
            args(&["http://h/a b.xva", "p1"]),
            "without spaces",
        ),
        (
            "URL with an escape sequence",
            args(&["http://h/\u{1b}[2J", "p1"]),
            r"\u{1b}[2J",
        ),
        (
            "empty appliance label",
            args(&["--appliance-label", " ", URL, "p1"]),
            "--appliance-label must be non-empty",
        ),
        (
            "appliance label with a newline",
            args(&["--appliance-label", "a\nb", URL, "p1"]),
            "without control characters",
        ),
        (
            "empty password",
            args(&["--password", "", URL, "p1"]),
            "--password or XENSERVER_PASSWORD: the password is empty",
        ),
        (
            "password not ASCII",
            args(&["--password", "pässwörd", URL, "p1"]),
            "the password must be printable ASCII",
        ),
        (
            "zero interval",
            args(&["--interval", "0", URL, "p1"]),
            "--interval must be more than 0",
        ),
        (
            "interval beyond a year",
            args(&["--interval", "9000h", URL, "p1"]),
            "out of range",
        ),
        (
            "bad timeout",
            args(&["--boot-timeout", "long", URL, "p1"]),
            "invalid value 'long'",
        ),
        (
            "empty image",
            args(&["--image", "", URL, "p1"]),
            "--image must be non-empty",
        ),
        (
            "flavor with a newline",
            args(&["--flavor", "m1\nsmall", URL, "p1"]),
            "--flavor must be non-empty, without control characters",
        ),
        (
            "empty dom0 check",
            args(&["--dom0-check-command", "", URL, "p1"]),
            "--dom0-check-command must be non-empty",
        ),
        (
            "relative install dir",
            args(&["--install-dir", "opt/xitc", URL, "p1"]),
            "--install-dir must be an absolute path",
        ),
        (
            "empty SSH user",
            args(&["--ssh-user", "", URL, "p1"]),
            "--ssh-user \"\" is not a user name",
        ),
        (
            "SSH user with a space",
            args(&["--ssh-user", "a b", URL, "p1"]),
            "is not a user name",
        ),
        (
            "SSH address with a space",
            args(&["--ssh-address", "a b", URL, "p1"]),
            "--ssh-address: bad target",
        ),
        (
            "SSH address with port 0",
            args(&["--ssh-address", "127.0.0.1:0", URL, "p1"]),
            "the port is not a number from 1 to 65535",
        ),
        (
            "SSH address with a user",
            args(&["--ssh-address", "me@127.0.0.1", URL, "p1"]),
            "give the user with --ssh-user",
        ),
        (
            "metadata without =",
            args(&["--metadata", "novalue", URL, "p1"]),
            "is not KEY=VALUE",
        ),
        (
            "metadata with an empty key",
            args(&["--metadata", "=v", URL, "p1"]),
            "must be 1-255",
        ),
        (
            "metadata key too long",
            args(&["--metadata", &long_key, URL, "p1"]),
            "must be 1-255",
        ),
        (
            "metadata key with a slash",
            args(&["--snapshot-metadata", "a/b=v", URL, "p1"]),
            "Nova's rule",
        ),
        (
            "metadata value too long",
            args(&["--metadata", &long_value, URL, "p1"]),
            "longer than 255 characters",
        ),
        (
            "unknown flag",
            args(&["--bogus", URL, "p1"]),
            "unexpected argument '--bogus'",
        ),
        (
            "missing convert binary",
            args(&["--convert-binary", "/nonexistent/xitc-convert", URL, "p1"]),
            "--convert-binary /nonexistent/xitc-convert is not a file",
        ),
        (
            "convert binary is a directory",
            args(&["--convert-binary", dir_text, URL, "p1"]),
            "is not a file",
        ),
        (
            "key that is no OpenSSH key",
            args(&[
                "--convert-binary",
                convert,
                "--ssh-key",
                not_a_key.to_str().unwrap(),
                URL,
                "p1",
            ]),
            "is not an OpenSSH private key",
        ),
        (
            "missing key",
            args(&[
                "--convert-binary",
                convert,
                "--ssh-key",
                missing_key.to_str().unwrap(),
                URL,
                "p1",
            ]),
            "cannot read --ssh-key",
        ),
        (
            "endless key",
            args(&[
                "--convert-binary",
                convert,
                "--ssh-key",
                "/dev/zero",
                URL,
                "p1",
            ]),
            "--ssh-key /dev/zero is not a regular file",
        ),
        (
            "key is a directory",
            args(&[
                "--convert-binary",
                convert,
                "--ssh-key",
                dir_text,
                URL,
                "p1",
            ]),
            "is not a regular file",
        ),
        (
            "artifacts under a file",
            args(&[
                "--convert-binary",
                convert,
                "--artifacts",
                &format!("{}/kept", not_a_key.to_str().unwrap()),
                URL,
                "p1",
            ]),
            "/not-a-key/kept: cannot make it",
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, args, message) in cases {
        let output = test_rs(built())
            .env("OS_AUTH_URL", format!("{}/v2.0", cloud.base_url()))
            .args(&args)
            .output()
            .unwrap();
        assert_one_line_error(name, TOOL, &output, 2, message);
        assert_eq!(cloud.requests().len(), 0, "{name}: the cloud was called");
    }
}

fn args(texts: &[&str]) -> Vec<OsString> {
    texts.iter().map(OsString::from).collect()
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
    // Nor where its Debian package puts it (scripts/build-deb).
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("; nor at /usr/lib/xitc/xitc-convert (the xitc-convert package)"),
        "{output:?}"
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

#[test]
fn a_key_others_can_read_is_used_with_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    xitc_test_support::generate_key(&key, xitc_test_support::KeyType::Ed25519, "", false);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Nothing listens on the identity URL: the run ends at its first cloud
    // call (exit 1), after the warning.
    let output = test_rs(built())
        .arg("--convert-binary")
        .arg(built())
        .arg("--ssh-key")
        .arg(&key)
        .args([URL, "p1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(
            format!(
                "test-rs: warning: --ssh-key {} can be read by others (mode 0644): chmod 600 it",
                key.display()
            )
            .as_str()
        ),
        "{stderr}"
    );
    assert!(
        lines.last().unwrap().contains("nothing listens there"),
        "{stderr}"
    );
}
