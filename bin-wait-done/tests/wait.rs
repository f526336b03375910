//! xitc-wait-until-done against a real OpenSSH sshd (test-support's Sshd), as the
//! 2014 script's users ran it. The tool runs as a child process; the test thread
//! meanwhile changes the world (creates the stamp, restarts sshd, re-keys it).
//! One file for all of them, a little over 600 lines: they share the child
//! process and mark-reading helpers, and each scenario is one short test.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xitc_test_support::{KeyType, SshAgent, Sshd, generate_key};

const TOOL: &str = "xitc-wait-until-done";

fn banner(stamp: &str, host: &str, user: &str, port: u16) -> String {
    format!(
        "Waiting for stamp file [{stamp}]\n    ADDRESS : {host}\n    USERNAME: {user}\n\n \
         X - failed to connect to port {port}\n \
         ! - port {port} open, but the SSH handshake or login failed\n \
         . - stamp file did not exist\n"
    )
}

/// The tool, with an empty environment, polling fast, aimed at `sshd`.
fn tool(sshd: &Sshd, key: &Path) -> Command {
    let mut command = xitc_test_support::tool!("xitc-wait-until-done");
    command
        .args(["--interval", "200ms", "--timeout", "60"])
        .arg(format!("{}@127.0.0.1:{}", sshd.user(), sshd.port()))
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn stamp_in(sshd: &Sshd, name: &str) -> PathBuf {
    sshd.dir().join(name)
}

/// The tool running in the background, its stdout collected as it comes, so
/// the test can wait for marks instead of guessing how long polls take.
struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn with_stamp(command: &mut Command, stamp: &Path) -> Running {
    let mut child = command
        .arg("--stamp")
        .arg(stamp)
        .spawn()
        .expect("starting the tool");
    let mut pipe = child.stdout.take().unwrap();
    let stdout = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&stdout);
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        while let Ok(read) = pipe.read(&mut buffer) {
            if read == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
    Running {
        child,
        stdout,
        reader,
    }
}

impl Running {
    /// How many `mark`s the tool has printed after its banner.
    fn marks(&self, mark: char) -> usize {
        let stdout = self.stdout.lock().unwrap();
        let after_banner = stdout
            .find(" . - stamp file did not exist\n")
            .map_or("", |at| {
                &stdout[at + " . - stamp file did not exist\n".len()..]
            });
        after_banner.chars().filter(|c| *c == mark).count()
    }

    /// Waits until the tool has printed at least `count` `mark`s (60 s at most).
    fn wait_for(&self, mark: char, count: usize) {
        let start = std::time::Instant::now();
        while self.marks(mark) < count {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {count} {mark:?} marks: {}",
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn finished(running: Running) -> Output {
    let Running {
        child,
        stdout,
        reader,
    } = running;
    let mut output = child.wait_with_output().expect("waiting for the tool");
    reader.join().unwrap();
    output.stdout = stdout.lock().unwrap().clone().into_bytes();
    output
}

#[test]
fn a_stamp_that_exists_is_found_at_once() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "xenserver.ready");
    std::fs::write(&stamp, "").unwrap();
    let output = finished(with_stamp(&mut tool(&sshd, &sshd.client_key()), &stamp));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected = banner(
        &stamp.display().to_string(),
        "127.0.0.1",
        sshd.user(),
        sshd.port(),
    );
    assert_eq!(text(&output.stdout), format!("{expected}Found!\n"));
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn a_stamp_that_appears_later_is_waited_for_with_dots() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "later.ready");
    let child = with_stamp(&mut tool(&sshd, &sshd.client_key()), &stamp);
    child.wait_for('.', 1);
    std::fs::write(&stamp, "").unwrap();
    let output = finished(child);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let marks = stdout.lines().last().unwrap();
    assert!(
        marks.starts_with('.') && marks.ends_with(".Found!"),
        "{stdout}"
    );
    assert!(
        marks.trim_end_matches("Found!").chars().all(|c| c == '.'),
        "{stdout}"
    );
}

#[test]
fn the_default_stamp_path_comes_from_xitc_stamp_path() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "from-env.ready");
    std::fs::write(&stamp, "").unwrap();
    let output = tool(&sshd, &sshd.client_key())
        .env("XITC_STAMP_PATH", &stamp)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with(&format!("Waiting for stamp file [{}]", stamp.display()))
    );
}

#[test]
fn a_closed_port_shows_x_until_sshd_comes_up() {
    let mut sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "up.ready");
    std::fs::write(&stamp, "").unwrap();
    sshd.stop();
    let child = with_stamp(&mut tool(&sshd, &sshd.client_key()), &stamp);
    child.wait_for('X', 1);
    sshd.restart();
    let output = finished(child);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let marks = text(&output.stdout).lines().last().unwrap().to_owned();
    assert!(
        marks.starts_with('X') && marks.ends_with("XFound!"),
        "{marks}"
    );
}

#[test]
fn ci_layout_prints_one_mark_per_line() {
    for variable in ["BUILD_NUMBER", "CI"] {
        let mut sshd = Sshd::start();
        let stamp = stamp_in(&sshd, "ci.ready");
        sshd.stop();
        let child = with_stamp(tool(&sshd, &sshd.client_key()).env(variable, "1"), &stamp);
        child.wait_for('X', 1);
        sshd.restart();
        child.wait_for('.', 1);
        std::fs::write(&stamp, "").unwrap();
        let output = finished(child);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        let after_banner: Vec<&str> = stdout.lines().skip(7).collect();
        assert_eq!(after_banner.last(), Some(&"Found!"), "{stdout}");
        let marks = &after_banner[..after_banner.len() - 1];
        assert!(marks.len() >= 2, "{stdout}");
        assert!(
            marks.iter().all(|line| *line == "X" || *line == "."),
            "{stdout}"
        );
        assert_eq!(marks.first(), Some(&"X"));
        assert_eq!(marks.last(), Some(&"."));
    }
}

#[test]
fn a_rejected_key_shows_bangs_notes_once_and_times_out() {
    let sshd = Sshd::start();
    let stranger = sshd.dir().join("stranger");
    generate_key(&stranger, KeyType::Ed25519, "", false);
    let stamp = stamp_in(&sshd, "never.ready");
    let output = tool(&sshd, &stranger)
        .args(["--timeout", "2", "--stamp"])
        .arg(&stamp)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(124), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let marks = stdout.lines().nth(7).unwrap();
    assert!(
        !marks.is_empty() && marks.chars().all(|c| c == '!'),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{TOOL}: note: "))
            && lines[0].contains("did not accept the key")
    );
    assert!(
        lines[1].starts_with(&format!(
            "{TOOL}: error: waiting for stamp file {}",
            stamp.display()
        )) && lines[1].contains("timed out after 2."),
        "{stderr}"
    );
}

#[test]
fn a_server_that_never_speaks_ssh_is_bounded_by_the_timeout() {
    // A plain TCP listener: accepts, never sends a banner. Only a fake can do this.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("id");
    generate_key(&key, KeyType::Ed25519, "", false);
    let output = xitc_test_support::tool!("xitc-wait-until-done")
        .args([
            "--timeout",
            "2",
            "--connect-timeout",
            "30",
            "--interval",
            "1",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg(&key)
        .output()
        .unwrap();
    drop(listener);
    assert_eq!(output.status.code(), Some(124), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout)
            .lines()
            .nth(7)
            .unwrap()
            .starts_with('!')
    );
}

/// A node whose check hangs once logged in (here sshd's ForceCommand trickles
/// output forever): each check is cut off at --connect-timeout and the wait
/// ends at --timeout, with `!` marks (the check failed) and exit 124.
#[test]
fn a_check_that_hangs_after_login_is_bounded_by_the_timeout() {
    let sshd = Sshd::start_with("ForceCommand sh -c 'while :; do echo .; sleep 0.2; done'\n");
    let output = xitc_test_support::tool!("xitc-wait-until-done")
        .args([
            "--timeout",
            "3",
            "--connect-timeout",
            "1",
            "--interval",
            "0.5",
        ])
        .arg(format!("{}@127.0.0.1:{}", sshd.user(), sshd.port()))
        .arg(sshd.client_key())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(124), "{}", text(&output.stderr));
    let marks = stdout.lines().nth(7).unwrap_or_default();
    assert!(
        !marks.is_empty() && marks.chars().all(|mark| mark == '!'),
        "{stdout}"
    );
}

#[test]
fn stamp_paths_with_spaces_and_quotes_are_quoted() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "it's a \"stamp\" $(x).ready");
    std::fs::write(&stamp, "").unwrap();
    let output = finished(with_stamp(&mut tool(&sshd, &sshd.client_key()), &stamp));
    assert!(output.status.success(), "{}", text(&output.stderr));

    // A path that would run a command if it were not quoted.
    let marker = sshd.dir().join("injected");
    let hostile = format!("{}/$(touch {})", sshd.dir().display(), marker.display());
    let output = tool(&sshd, &sshd.client_key())
        .args(["--timeout", "1", "--stamp", &hostile])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(124));
    assert!(!marker.exists(), "the stamp path was run as a command");
}

#[test]
fn user_host_and_port_forms_including_ipv6() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "forms.ready");
    std::fs::write(&stamp, "").unwrap();
    let user = sshd.user().to_owned();
    let port = sshd.port().to_string();
    for (target, extra) in [
        (format!("{user}@127.0.0.1:{port}"), None),
        (format!("{user}@127.0.0.1"), Some(port.as_str())),
        (format!("{user}@[::1]:{port}"), None),
        (format!("{user}@localhost:{port}"), None),
    ] {
        let mut command = xitc_test_support::tool!("xitc-wait-until-done");
        command.args(["--timeout", "20", "--stamp"]).arg(&stamp);
        if let Some(port) = extra {
            command.args(["--port", port]);
        }
        let output = command
            .arg(&target)
            .arg(sshd.client_key())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{target}: {}",
            text(&output.stderr)
        );
        assert!(text(&output.stdout).ends_with("Found!\n"), "{target}");
    }
}

#[test]
fn root_is_the_default_user() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "root.ready");
    let output = xitc_test_support::tool!("xitc-wait-until-done")
        .args(["--timeout", "1", "--stamp"])
        .arg(&stamp)
        .arg(format!("127.0.0.1:{}", sshd.port()))
        .arg(sshd.client_key())
        .output()
        .unwrap();
    assert!(text(&output.stdout).contains("    USERNAME: root\n"));
}

#[test]
fn encrypted_keys_need_their_passphrase() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "enc.ready");
    std::fs::write(&stamp, "").unwrap();
    for (name, key_type, pem) in [
        ("openssh-ed25519", KeyType::Ed25519, false),
        ("openssh-rsa", KeyType::Rsa, false),
        ("pem-rsa", KeyType::Rsa, true),
        ("pem-ecdsa", KeyType::Ecdsa, true),
    ] {
        let key = sshd.dir().join(name);
        generate_key(&key, key_type, "correct horse", pem);
        sshd.authorize(&std::fs::read_to_string(key.with_extension("pub")).unwrap());

        let output = tool(&sshd, &key)
            .env("XITC_KEY_PASSPHRASE", "correct horse")
            .arg("--stamp")
            .arg(&stamp)
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));

        let output = tool(&sshd, &key)
            .arg("--stamp")
            .arg(&stamp)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(
            output.stdout.is_empty(),
            "{name}: marks before the key was checked"
        );
        assert!(
            text(&output.stderr).contains("is encrypted: set XITC_KEY_PASSPHRASE"),
            "{name}"
        );

        let output = tool(&sshd, &key)
            .env("XITC_KEY_PASSPHRASE", "not-the-passphrase-42")
            .arg("--stamp")
            .arg(&stamp)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("wrong passphrase for key file"),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("correct horse") && !stderr.contains("not-the-passphrase-42"));
    }
}

#[test]
fn unencrypted_key_types_and_formats_log_in() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "types.ready");
    std::fs::write(&stamp, "").unwrap();
    for (name, key_type, pem) in [
        ("ecdsa", KeyType::Ecdsa, false),
        ("rsa", KeyType::Rsa, false),
        ("rsa-pem", KeyType::Rsa, true),
    ] {
        let key = sshd.dir().join(name);
        generate_key(&key, key_type, "", pem);
        sshd.authorize(&std::fs::read_to_string(key.with_extension("pub")).unwrap());
        let output = tool(&sshd, &key)
            .arg("--stamp")
            .arg(&stamp)
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
    }
}

#[test]
fn the_ssh_agent_is_used_for_a_dash() {
    let sshd = Sshd::start();
    let agent = SshAgent::start();
    agent.add(&sshd.client_key());
    let stamp = stamp_in(&sshd, "agent.ready");
    std::fs::write(&stamp, "").unwrap();
    let output = tool(&sshd, Path::new("-"))
        .env("SSH_AUTH_SOCK", agent.socket())
        .arg("--stamp")
        .arg(&stamp)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).ends_with("Found!\n"));
}

fn fingerprint_by_ssh_keygen(public_key: &str, dir: &Path) -> String {
    let file = dir.join("for-keygen.pub");
    std::fs::write(&file, public_key).unwrap();
    let output = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&file)
        .output()
        .unwrap();
    text(&output.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn a_changed_host_key_is_accepted_by_default_and_reported() {
    let mut sshd = Sshd::start();
    let old = fingerprint_by_ssh_keygen(&sshd.host_public_key(), sshd.dir());
    let stamp = stamp_in(&sshd, "rekey.ready");
    let child = with_stamp(&mut tool(&sshd, &sshd.client_key()), &stamp);
    child.wait_for('.', 1);
    sshd.new_host_key();
    sshd.restart();
    let new = fingerprint_by_ssh_keygen(&sshd.host_public_key(), sshd.dir());
    // A '.' after the restart comes from a new session, with the new key.
    let dots = child.marks('.');
    child.wait_for('.', dots + 2);
    std::fs::write(&stamp, "").unwrap();
    let output = finished(child);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "host key of [127.0.0.1]:{} changed from {old} to {new}",
            sshd.port()
        )),
        "{stderr}"
    );
}

fn known_hosts_line(sshd: &Sshd) -> String {
    let mut fields = sshd
        .host_public_key()
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    fields.truncate(2);
    format!("[127.0.0.1]:{} {}\n", sshd.port(), fields.join(" "))
}

#[test]
fn strict_refuses_a_changed_key_with_both_fingerprints() {
    let mut sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "strict.ready");
    std::fs::write(&stamp, "").unwrap();
    let known_hosts = sshd.dir().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("# pinned\n{}", known_hosts_line(&sshd)),
    )
    .unwrap();
    let strict = |sshd: &Sshd| {
        tool(sshd, &sshd.client_key())
            .args(["--host-key-policy", "strict", "--known-hosts"])
            .arg(&known_hosts)
            .arg("--stamp")
            .arg(&stamp)
            .output()
            .unwrap()
    };
    let output = strict(&sshd);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // Hashed entries (ssh-keygen -H) are understood too.
    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(hashed.status.success());
    assert!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .contains("|1|")
    );
    assert!(strict(&sshd).status.success());

    let old = fingerprint_by_ssh_keygen(&sshd.host_public_key(), sshd.dir());
    sshd.new_host_key();
    sshd.restart();
    let new = fingerprint_by_ssh_keygen(&sshd.host_public_key(), sshd.dir());
    let output = strict(&sshd);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&old) && stderr.contains(&new), "{stderr}");
    assert!(stderr.contains("changed"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn strict_refuses_an_unknown_host() {
    let sshd = Sshd::start();
    let known_hosts = sshd.dir().join("empty_known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let output = tool(&sshd, &sshd.client_key())
        .args(["--host-key-policy", "strict", "--known-hosts"])
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("is not in"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn accept_new_records_the_first_key_and_refuses_a_change() {
    let mut sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "tofu.ready");
    std::fs::write(&stamp, "").unwrap();
    let known_hosts = sshd.dir().join("new_known_hosts");
    let accept_new = |sshd: &Sshd| {
        tool(sshd, &sshd.client_key())
            .args(["--host-key-policy", "accept-new", "--known-hosts"])
            .arg(&known_hosts)
            .arg("--stamp")
            .arg(&stamp)
            .output()
            .unwrap()
    };
    assert!(accept_new(&sshd).status.success());
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        known_hosts_line(&sshd)
    );
    assert!(accept_new(&sshd).status.success());
    assert_eq!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .lines()
            .count(),
        1
    );

    sshd.new_host_key();
    sshd.restart();
    let output = accept_new(&sshd);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("changed"));
}

#[test]
fn strict_stops_when_the_key_changes_mid_wait() {
    let mut sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "never.ready");
    let known_hosts = sshd.dir().join("known_hosts");
    std::fs::write(&known_hosts, known_hosts_line(&sshd)).unwrap();
    let child = with_stamp(
        tool(&sshd, &sshd.client_key())
            .args(["--host-key-policy", "strict", "--known-hosts"])
            .arg(&known_hosts),
        &stamp,
    );
    child.wait_for('.', 1);
    sshd.new_host_key();
    sshd.restart();
    let output = finished(child);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.lines().nth(7).unwrap().starts_with('.'), "{stdout}");
    assert!(
        stdout.ends_with('\n'),
        "marks line not ended before the error"
    );
    assert!(text(&output.stderr).contains("changed"));
}

/// The tool's stdout is a pipe whose reader has gone away before the first
/// write (`xitc-wait-until-done … | head -0`).
fn with_closed_stdout(command: &mut Command, stamp: &Path) -> Child {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .arg("--stamp")
        .arg(stamp)
        .stdout(writer)
        .spawn()
        .expect("starting the tool")
}

#[test]
fn a_reader_that_went_away_is_no_success_the_wait_decides() {
    let sshd = Sshd::start();
    // No stamp: the wait runs out, exit 124 though nobody reads the marks.
    let stamp = stamp_in(&sshd, "never.ready");
    let mut command = tool(&sshd, &sshd.client_key());
    command.args(["--timeout", "2"]);
    let output = with_closed_stdout(&mut command, &stamp)
        .wait_with_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(124), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("timed out"),
        "{}",
        text(&output.stderr)
    );
    // The stamp appears during the wait: found, exit 0, nothing on stderr.
    let stamp = stamp_in(&sshd, "later.ready");
    let child = with_closed_stdout(&mut tool(&sshd, &sshd.client_key()), &stamp);
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(&stamp, "").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn a_full_stdout_is_exit_1_with_a_message_after_the_wait() {
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "xenserver.ready");
    std::fs::write(&stamp, "").unwrap();
    let output = tool(&sshd, &sshd.client_key())
        .arg("--stamp")
        .arg(&stamp)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    xitc_test_support::assert_one_line_error(
        "a full stdout",
        "xitc-wait-until-done",
        &output,
        1,
        "writing to stdout: ",
    );
}

#[test]
fn a_key_others_can_read_is_used_with_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let sshd = Sshd::start();
    let stamp = stamp_in(&sshd, "xenserver.ready");
    std::fs::write(&stamp, "").unwrap();
    let key = sshd.dir().join("shared-key");
    std::fs::copy(sshd.client_key(), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = finished(with_stamp(&mut tool(&sshd, &key), &stamp));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        format!(
            "xitc-wait-until-done: warning: key file {} can be read by others (mode 0644): chmod 600 it\n",
            key.display()
        )
    );
    assert!(text(&output.stdout).ends_with("Found!\n"));
}
