//! common::ssh against a real OpenSSH sshd: commands, uploads, fingerprints and
//! failure kinds.

use std::process::Command;
use std::time::{Duration, Instant};

use xitc_common::ssh::{self, Credential, FailureKind, HostKeyPolicy, Target, shell_quote};
use xitc_test_support::{KeyType, Sshd, generate_key};

const LIMIT: Duration = Duration::from_secs(20);

fn target(sshd: &Sshd) -> Target {
    Target::parse(&format!("{}@127.0.0.1:{}", sshd.user(), sshd.port()), None).unwrap()
}

fn key(sshd: &Sshd) -> Credential {
    Credential::from_argument(&sshd.client_key(), None, None).unwrap()
}

/// A session as the test user with the server's client key, any host key.
fn connect(sshd: &Sshd) -> ssh::Connection {
    ssh::connect(&target(sshd), &key(sshd), &HostKeyPolicy::AcceptAny, LIMIT).unwrap()
}

#[test]
fn exec_returns_status_and_both_outputs() {
    let sshd = Sshd::start();
    let connection = connect(&sshd);
    let output = connection
        .exec("echo out; echo err >&2; exit 3", LIMIT)
        .unwrap();
    assert_eq!(
        (
            output.status,
            output.stdout.as_str(),
            output.stderr.as_str()
        ),
        (3, "out\n", "err\n")
    );
    // The same session serves further commands.
    assert_eq!(connection.exec("true", LIMIT).unwrap().status, 0);

    assert_eq!(connection.run("echo fine", LIMIT).unwrap().stdout, "fine\n");
    let failure = connection
        .run("echo first >&2; echo 'no such thing' >&2; exit 7", LIMIT)
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::CommandFailed);
    assert!(
        failure.message.ends_with("exited with 7: no such thing"),
        "{failure}"
    );
}

#[test]
fn upload_writes_the_file_with_its_mode() {
    let sshd = Sshd::start();
    let connection = connect(&sshd);
    let local = sshd.dir().join("local.bin");
    let contents: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    std::fs::write(&local, &contents).unwrap();
    let remote = sshd.dir().join("uploaded dir's file");
    connection
        .upload(&local, remote.to_str().unwrap(), 0o750, LIMIT)
        .unwrap();
    assert_eq!(std::fs::read(&remote).unwrap(), contents);
    let mode = connection
        .exec(
            &format!("stat -c %a {}", shell_quote(remote.to_str().unwrap())),
            LIMIT,
        )
        .unwrap();
    assert_eq!(mode.stdout, "750\n");
}

#[test]
fn the_fingerprint_is_the_one_ssh_keygen_prints() {
    let sshd = Sshd::start();
    let connection = connect(&sshd);
    let public = sshd.dir().join("host.pub");
    std::fs::write(&public, sshd.host_public_key()).unwrap();
    let keygen = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&public)
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&keygen.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(connection.fingerprint, expected);
}

#[test]
fn failures_are_classified() {
    let mut sshd = Sshd::start();
    let stranger_path = sshd.dir().join("stranger");
    generate_key(&stranger_path, KeyType::Rsa, "", true);
    let stranger = Credential::from_argument(&stranger_path, None, None).unwrap();
    let failure =
        ssh::connect(&target(&sshd), &stranger, &HostKeyPolicy::AcceptAny, LIMIT).unwrap_err();
    assert_eq!(failure.kind, FailureKind::AuthRejected, "{failure}");

    let wrong_user = Target::parse(&format!("nosuchuser@127.0.0.1:{}", sshd.port()), None).unwrap();
    let failure =
        ssh::connect(&wrong_user, &key(&sshd), &HostKeyPolicy::AcceptAny, LIMIT).unwrap_err();
    assert_eq!(failure.kind, FailureKind::AuthRejected, "{failure}");

    sshd.stop();
    let failure = ssh::connect(
        &target(&sshd),
        &key(&sshd),
        &HostKeyPolicy::AcceptAny,
        LIMIT,
    )
    .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Unreachable, "{failure}");
    // (A name that does not resolve is Unreachable too, but resolving one would
    // ask a DNS server off this machine; tests contact loopback only.)
}

/// The limit of `exec` is one deadline for the whole command: neither output
/// trickling in nor a command that hangs once its session is open runs past it.
#[test]
fn a_command_that_trickles_or_hangs_ends_at_its_deadline() {
    let sshd = Sshd::start();
    let connection = connect(&sshd);
    for command in ["while :; do echo tick; sleep 0.2; done", "sleep 60"] {
        let started = Instant::now();
        let failure = connection
            .exec(command, Duration::from_secs(2))
            .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Session, "{command}: {failure}");
        assert_eq!(
            failure.message,
            format!("`{command}` did not finish within 2.0s")
        );
        // Ended by the deadline, not by the command (which never ends) or by
        // the per-read timeouts libssh2 had before (each tick reset them).
        assert!(
            started.elapsed() < LIMIT,
            "{command}: {:?}",
            started.elapsed()
        );
    }
    // The server is still there for a new session.
    assert_eq!(
        connect(&sshd).exec("echo again", LIMIT).unwrap().stdout,
        "again\n"
    );
}

#[test]
fn output_beyond_the_bound_is_a_failure_naming_the_stream() {
    let sshd = Sshd::start();
    let connection = connect(&sshd);
    let over = ssh::MAX_OUTPUT + 1;
    for (command, stream) in [
        (format!("head -c {over} /dev/zero"), "stdout"),
        ("yes".to_owned(), "stdout"),
        (
            format!("head -c {over} /dev/zero >&2; echo never"),
            "stderr",
        ),
    ] {
        let failure = connect(&sshd).exec(&command, LIMIT).unwrap_err();
        assert_eq!(
            failure.kind,
            FailureKind::CommandFailed,
            "{command}: {failure}"
        );
        assert_eq!(
            failure.message,
            format!("`{command}` printed more than 1024 KiB on {stream}")
        );
    }
    // Up to the bound, both streams arrive whole, read side by side.
    let output = connection
        .exec(
            &format!("head -c {} /dev/zero >&2; echo done", ssh::MAX_OUTPUT),
            LIMIT,
        )
        .unwrap();
    assert_eq!(
        (output.status, output.stdout.as_str(), output.stderr.len()),
        (0, "done\n", ssh::MAX_OUTPUT)
    );
}

#[test]
fn output_that_is_not_utf8_is_decoded_lossily() {
    let sshd = Sshd::start();
    let output = connect(&sshd)
        .exec(r"printf 'a\377b'; printf '\300' >&2", LIMIT)
        .unwrap();
    assert_eq!(
        (output.stdout.as_str(), output.stderr.as_str()),
        ("a\u{FFFD}b", "\u{FFFD}")
    );
}
