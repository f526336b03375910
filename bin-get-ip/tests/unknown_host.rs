//! An auth URL whose host name does not exist ends the run at once, exit 1,
//! naming the host (README "xitc-get-ip-address-of-instance"), instead of
//! being retried until `--timeout` (exit 124) as it was while ureq's lookup
//! failure looked like a passing fault.
//!
//! No network is asked: the tool runs in a network namespace of its own (no
//! route anywhere) and a mount namespace whose `/etc/nsswitch.conf` says
//! `hosts: files`, so glibc's real getaddrinfo answers "no such name"
//! (`EAI_NONAME`) from `/etc/hosts` alone for `keystone.invalid` (RFC 6761: a
//! name that never exists). Needs root and util-linux's `unshare` (CI runs as
//! root).

use std::process::Command;

use xitc_test_support::assert_one_line_error;

#[test]
fn an_auth_url_whose_host_does_not_exist_ends_the_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let nsswitch = dir.path().join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();
    let tool = assert_cmd::cargo::cargo_bin!("xitc-get-ip-address-of-instance");
    // The mount is private to the namespace: this machine's nsswitch.conf is
    // untouched.
    let mut command = Command::new("unshare");
    command
        .env_clear()
        .env("OS_AUTH_URL", "http://keystone.invalid:5000/v3")
        .env("OS_USERNAME", "user")
        .env("OS_PASSWORD", "hunter2-secret")
        .env("OS_PROJECT_NAME", "project")
        .env("NSSWITCH", &nsswitch)
        .env("TOOL", tool)
        .args([
            "--mount",
            "--net",
            "sh",
            "-c",
            "mount --bind \"$NSSWITCH\" /etc/nsswitch.conf && \
             exec \"$TOOL\" --timeout 20 instance",
        ]);
    let output = command
        .output()
        .expect("unshare (util-linux; this test runs as root, as CI does)");
    // Before the fix: exit 124 after 20 s of "retrying" notes.
    assert_one_line_error(
        "unknown host",
        "xitc-get-ip-address-of-instance",
        &output,
        1,
        "no such host: keystone.invalid",
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}
