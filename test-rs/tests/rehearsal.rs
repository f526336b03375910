//! The local rehearsal: test-rs against mimic (the cloud) and a local sshd (the
//! node, reached through --ssh-address), with the real sibling tools.
//!
//! The node side must never touch this machine, so xitc-convert is replaced by a
//! stand-in script (--convert-binary) that only creates the stamp (in the sshd's
//! temp dir, through XITC_STAMP_PATH) a second after it starts, waits until
//! test-rs removes it, and creates it again for the snapshot's wait: what the real
//! tool does on the node, minus the node. It exits by itself within a minute, and
//! the test kills it by PID if it has not. The dom0 check runs a harmless command
//! (the real one would contact 192.168.33.2; tests contact loopback only).
//!
//! mimic cannot delete Nova images (405), so the rehearsal keeps the snapshot
//! (--keep-image) and checks that servers and keypairs are gone.

mod siblings;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use xitc_common::cloud::{CloudClient, CloudConfig, Env, Timeouts};
use xitc_common::poll::Deadline;
use xitc_test_support::{Mimic, Sshd, wait_until_gone};

const STAND_IN: &str = r#"#!/bin/sh
# Stand-in for xitc-convert in the rehearsal: touches the stamp, twice; logs
# as the real one does, and answers --status (the artifacts read both).
if [ "$1" = --status ]; then echo "state: XENSERVER (the rehearsal's stand-in)"; exit 0; fi
echo "xitc-phase: START - begin" >> "$(dirname "$0")/xitc-convert.log"
echo $$ > "$(dirname "$0")/stand-in.pid"
printf '%s\n' "$@" > "$(dirname "$0")/stand-in.args"
stamp=${XITC_STAMP_PATH:?}
sleep 1
: > "$stamp"
i=0
while [ -e "$stamp" ] && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
: > "$stamp"
"#;

struct Rehearsal {
    sshd: Sshd,
    env: Vec<(&'static str, String)>,
    stand_in: PathBuf,
    install_dir: PathBuf,
    stamp: PathBuf,
}

impl Rehearsal {
    fn new(test: &str) -> Self {
        let sshd = Sshd::start();
        let stand_in = sshd.dir().join("stand-in-convert");
        std::fs::write(&stand_in, STAND_IN).unwrap();
        let mimic = Mimic::shared();
        Rehearsal {
            env: vec![
                ("OS_AUTH_URL", mimic.identity_url()),
                ("OS_USERNAME", format!("rehearsal-{test}")),
                ("OS_PASSWORD", "pw".to_owned()),
                ("OS_TENANT_NAME", format!("rehearsal-tenant-{test}")),
                ("OS_REGION_NAME", "ORD".to_owned()),
                ("PATH", std::env::var("PATH").unwrap_or_default()),
                // Where a failed run keeps its artifacts: gone with the sshd.
                ("TMPDIR", sshd.dir().to_str().unwrap().to_owned()),
            ],
            install_dir: sshd.dir().join("install dir"),
            stamp: sshd.dir().join("xenserver.ready"),
            stand_in,
            sshd,
        }
    }

    fn client(&self) -> CloudClient {
        let env = Env::from_pairs(
            self.env.iter().map(|(key, value)| (*key, value.as_str())),
            Path::new("/"),
        );
        CloudClient::new(CloudConfig::load(&env).unwrap(), Timeouts::default())
    }

    /// A mimic image that can be snapshotted once booted (mimic snapshots only
    /// servers booted from its own images).
    fn image(&self) -> String {
        let deadline = Deadline::new(Instant::now(), Some(Duration::from_secs(60)));
        self.client().list_images(None, &deadline).unwrap()[0]
            .id
            .clone()
    }

    fn test_rs(&self, postfix: &str, extra: &[&str]) -> Output {
        self.test_rs_with_image(postfix, &self.image(), extra)
    }

    fn test_rs_with_image(&self, postfix: &str, image: &str, extra: &[&str]) -> Output {
        let output = self.command(postfix, image, extra).output().unwrap();
        self.kill_stand_in();
        output
    }

    fn command(&self, postfix: &str, image: &str, extra: &[&str]) -> Command {
        let mut command = self.base_command(image);
        // Before `extra`, which may replace it (the last one counts).
        command
            .args(["--dom0-check-command", "test -x \"$HOME\" && true"])
            .args(extra)
            .args(["http://127.0.0.1:9/appliance.xva", postfix]);
        command
    }

    /// test-rs against this rehearsal's cloud and node, without the check
    /// command and the positional arguments.
    fn base_command(&self, image: &str) -> Command {
        siblings::built_beside_test_rs();
        let mut command = xitc_test_support::tool!("test-rs");
        command
            .envs(self.env.iter().map(|(key, value)| (*key, value.as_str())))
            .env("XITC_STAMP_PATH", &self.stamp)
            .args(["--ssh-address", &self.sshd.address()])
            .args(["--ssh-user", self.sshd.user()])
            .arg("--ssh-key")
            .arg(self.sshd.client_key())
            .arg("--convert-binary")
            .arg(&self.stand_in)
            .arg("--install-dir")
            .arg(&self.install_dir)
            .args(["--image", image, "--flavor", "2", "--keep-image"])
            .args([
                "--interval",
                "200ms",
                "--convert-timeout",
                "60",
                "--boot-timeout",
                "60",
            ])
            .args(["--snapshot-timeout", "60", "--ssh-timeout", "60"]);
        command
    }

    /// What the stand-in xitc-convert was started with, one argument a line.
    fn convert_arguments(&self) -> Vec<String> {
        std::fs::read_to_string(self.install_dir.join("stand-in.args"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Makes the stand-in start and never finish the conversion (no stamp).
    fn never_finish(&self) {
        std::fs::write(
            &self.stand_in,
            "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/stand-in.pid\"\n",
        )
        .unwrap();
    }

    fn kill_stand_in(&self) {
        let Ok(pid) = std::fs::read_to_string(self.install_dir.join("stand-in.pid")) else {
            return;
        };
        let pid: u32 = pid.trim().parse().unwrap();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        assert!(wait_until_gone(pid, Duration::from_secs(5)));
    }

    /// Servers and keypairs of the account, after the run.
    fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let client = self.client();
        let deadline = Deadline::new(Instant::now(), Some(Duration::from_secs(60)));
        let servers = client
            .list_servers(None, &deadline)
            .unwrap()
            .into_iter()
            .map(|server| server.name)
            .collect();
        let tenant = &self
            .env
            .iter()
            .find(|(key, _)| *key == "OS_TENANT_NAME")
            .expect("the rehearsal's tenant")
            .1;
        (servers, Mimic::shared().keypairs(tenant))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_whole_flow_passes_and_cleans_up() {
    let rehearsal = Rehearsal::new("pass");
    let output = rehearsal.test_rs("r1", &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("ALL TESTS PASSED"), "{stdout}");
    // Both waits follow the server's console (--console); mimic has no such
    // action, which the wait says once each time and goes on by SSH.
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr
            .matches("xitc-wait-until-done: note: the cloud gives no console log of server")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("There is no such action currently supported"),
        "{stderr}"
    );
    for step in [
        "create keypair",
        "boot Jxitctr1",
        "wait for Jxitctr1 to be ACTIVE",
        "get the address of Jxitctr1",
        "wait for SSH",
        "upload and start xitc-convert",
        "wait until the conversion is done",
        "remove the stamp and sync",
        "delete old images named Jxitcir1",
        "snapshot as Jxitcir1",
        "wait for the snapshot to be ACTIVE",
        "boot Jxitcsr1",
        "wait until the snapshot is done",
        "check the appliance reaches dom0",
        "clean up",
    ] {
        assert!(
            stdout.contains(&format!("<== {step}: ok (")),
            "step {step:?}:\n{stdout}"
        );
    }
    // The summary table lists every step with its result.
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("step ") && line.ends_with("result"))
    );
    // The uploaded tool and the 0600 password file are on the "node".
    let password = rehearsal.install_dir.join("xitc-convert.password");
    assert_eq!(
        std::fs::metadata(&password).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!stdout.contains(&std::fs::read_to_string(&password).unwrap()));
    // As in 2014: the password file, the URL and the label; no new options.
    assert_eq!(
        rehearsal.convert_arguments(),
        [
            "--password-file",
            password.to_str().unwrap(),
            "http://127.0.0.1:9/appliance.xva",
            "Devstack",
        ]
    );
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
}

/// `--mode direct`: xitc-convert gets the direct mode and the network source
/// and no appliance URL or label; test-rs waits for the stamp (in dom0, at the
/// node's address) on both servers and ends by asking the host's xapi. The
/// node's `xe` is xitc's xapi stand-in (bin-convert/tests/stand-ins/xe),
/// run by the check command through the node's sshd.
#[test]
fn the_direct_mode_waits_for_the_ready_stamp_and_asks_the_hosts_xapi() {
    let rehearsal = Rehearsal::new("direct");
    let xe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bin-convert/tests/stand-ins/xe");
    let check = format!(
        "XITC_ROOT='{}' '{}' host-list --minimal | grep -q .",
        rehearsal.sshd.dir().display(),
        xe.display()
    );
    let mut command = rehearsal.base_command(&rehearsal.image());
    command
        .args(["--mode", "direct", "--network", "config-drive"])
        .args(["--dom0-check-command", &check])
        .arg("d1");
    let output = command.output().unwrap();
    rehearsal.kill_stand_in();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for step in [
        "upload and start xitc-convert",
        "wait until the conversion is done",
        "wait until the snapshot is done",
        "check the host's XAPI answers",
        "clean up",
    ] {
        assert!(
            stdout.contains(&format!("<== {step}: ok (")),
            "step {step:?}:\n{stdout}"
        );
    }
    let password = rehearsal.install_dir.join("xitc-convert.password");
    assert_eq!(
        rehearsal.convert_arguments(),
        [
            "--mode",
            "direct",
            "--network",
            "config-drive",
            "--password-file",
            password.to_str().unwrap(),
        ]
    );
    let asked = std::fs::read_to_string(rehearsal.sshd.dir().join("xe.log")).unwrap();
    assert_eq!(asked, "host-list --minimal\n", "the check asked xapi once");
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
}

#[test]
fn a_failed_second_boot_is_named_and_cleaned_up() {
    let rehearsal = Rehearsal::new("second-boot");
    let output = rehearsal.test_rs(
        "r2",
        &[
            "--snapshot-metadata",
            r#"create_server_failure={"message": "Quota exceeded", "code": 403}"#,
        ],
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("ALL TESTS PASSED"));
    assert!(stdout.contains("<== boot Jxitcsr2: FAILED"), "{stdout}");
    // The first wait's note (mimic gives no console log) comes before.
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|line| line.starts_with("test-rs: error: step 'boot Jxitcsr2': ")),
        "{stderr}"
    );
    assert!(stderr.contains("Quota exceeded"), "{stderr}");
    assert!(stdout.contains("<== clean up: ok"), "{stdout}");
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
    // A failed run keeps its artifacts without being asked, under the temp
    // dir, and says where: the first server's (the second never existed).
    let kept = stdout
        .lines()
        .find_map(|line| line.strip_prefix("artifacts kept in "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let kept = Path::new(kept);
    assert!(kept.starts_with(rehearsal.sshd.dir()), "{}", kept.display());
    let notes = std::fs::read_to_string(kept.join("notes.txt")).unwrap();
    assert!(notes.contains("Jxitctr2/xitc-convert.log: kept"), "{notes}");
    assert!(!notes.contains("Jxitcsr2"), "{notes}");
}

/// `--artifacts DIR` keeps them on a passing run too: each server's log and
/// `--status` from the node's side that answered (the rehearsal's node is
/// "Ubuntu": no dom0, so no installer logs), the console where the cloud
/// gives one (mimic gives none: said), and the timeline.
#[test]
fn artifacts_are_kept_when_asked() {
    let rehearsal = Rehearsal::new("artifacts");
    let dir = rehearsal.sshd.dir().join("kept artifacts");
    let output = rehearsal.test_rs("r9", &["--artifacts", dir.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("artifacts kept in {}", dir.display())),
        "{stdout}"
    );
    for server in ["Jxitctr9", "Jxitcsr9"] {
        let node = dir.join(server);
        assert_eq!(
            std::fs::read_to_string(node.join("xitc-convert.log")).unwrap(),
            std::fs::read_to_string(rehearsal.install_dir.join("xitc-convert.log")).unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(node.join("status.txt")).unwrap(),
            "state: XENSERVER (the rehearsal's stand-in)\n"
        );
        assert!(!node.join("console.log").exists());
        assert!(!node.join("installer-logs.tar.gz").exists());
    }
    let notes = std::fs::read_to_string(dir.join("notes.txt")).unwrap();
    for said in [
        "Jxitctr9: the node answered as Ubuntu",
        "Jxitctr9/console.log: not kept: the cloud gives none: HTTP 400",
        "Jxitcsr9/status.txt: kept",
        "Jxitcsr9/installer-logs.tar.gz: not kept: the node runs Ubuntu",
        "timeline.json: kept",
    ] {
        assert!(notes.contains(said), "{said:?} in {notes}");
    }
    let timeline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("timeline.json")).unwrap()).unwrap();
    assert_eq!(timeline, serde_json::json!({"phases": [], "lines": []}));
}

#[test]
fn a_server_in_error_is_named_and_cleaned_up() {
    let rehearsal = Rehearsal::new("error");
    let output = rehearsal.test_rs("r3", &["--metadata", "server_error=1"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("step 'wait for Jxitctr3 to be ACTIVE'") && stderr.contains("is in ERROR"),
        "{stderr}"
    );
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
}

#[test]
fn leftovers_of_an_earlier_run_are_removed_first() {
    let rehearsal = Rehearsal::new("leftovers");
    // An earlier run that failed before its snapshot and was told to --keep
    // (mimic could not delete a snapshot it left; a real cloud can).
    let output = rehearsal.test_rs("r4", &["--keep", "--metadata", "server_error=1"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let (servers, keypairs) = rehearsal.leftovers();
    assert_eq!(
        (servers, keypairs),
        (vec!["Jxitctr4".to_owned()], vec!["Jxitckr4".to_owned()])
    );
    let output = rehearsal.test_rs("r4", &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
}

#[test]
fn a_failed_snapshot_is_named_and_cleaned_up() {
    let rehearsal = Rehearsal::new("snapshot");
    // mimic fails (HTTP 500) to snapshot a server booted from an image it does
    // not know; 500 is retried until --snapshot-timeout runs out.
    let output = rehearsal.test_rs_with_image("r5", "no-such-image", &["--snapshot-timeout", "2"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(
        stderr.contains("step 'snapshot as Jxitcir5'") && stderr.contains("HTTP 500"),
        "{stderr}"
    );
    assert!(text(&output.stdout).contains("<== clean up: ok"));
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
}

#[test]
fn ctrl_c_stops_the_wait_and_cleans_up() {
    let rehearsal = Rehearsal::new("interrupt");
    rehearsal.never_finish();
    let child = rehearsal
        .command("r6", &rehearsal.image(), &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = rehearsal.install_dir.join("stand-in.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "test-rs never started the stand-in"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = child.wait_with_output().unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("step 'wait until the conversion is done': interrupted (Ctrl-C)"),
        "{stderr}"
    );
    assert!(stdout.contains("<== clean up: ok"), "{stdout}");
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()));
}

/// A run that failed in `step`: its error names the step, the clean-up ran,
/// and the account holds no server and no keypair afterwards.
fn assert_failed_and_cleaned_up(rehearsal: &Rehearsal, output: &Output, step: &str, why: &str) {
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    // Text from the cloud reaches the terminal escaped, on stdout and stderr.
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "{step}: {stdout}\n{stderr}"
    );
    assert!(!output.status.success(), "{step}: {stdout}\n{stderr}");
    assert!(!stdout.contains("ALL TESTS PASSED"), "{step}: {stdout}");
    assert!(
        stdout.contains(&format!("<== {step}: FAILED")),
        "{step}: {stdout}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("test-rs: error: step '{step}': ")) && last.contains(why),
        "{step}: {stderr}"
    );
    assert!(stdout.contains("<== clean up: ok"), "{step}: {stdout}");
    assert_eq!(rehearsal.leftovers(), (Vec::new(), Vec::new()), "{step}");
}

/// Every step after the first creation can fail; each failure leaves nothing
/// behind (the other failure points have tests of their own above: the
/// server in ERROR, the second boot, the snapshot, Ctrl-C).
#[test]
fn a_failure_at_each_later_step_is_cleaned_up() {
    let rehearsal = Rehearsal::new("points");
    let closed_port = xitc_test_support::free_port();
    let closed = format!("127.0.0.1:{closed_port}");
    let cases: [(&str, &str, Vec<&str>, &str); 4] = [
        (
            "p1",
            "boot Jxitctp1",
            vec![
                "--metadata",
                r#"create_server_failure={"message": "Invalid \u001b[2J imageRef", "code": 400}"#,
            ],
            r"Invalid \u{1b}[2J imageRef",
        ),
        (
            "p2",
            "wait for SSH",
            vec!["--ssh-address", &closed, "--ssh-timeout", "2"],
            "timed out",
        ),
        (
            "p3",
            "upload and start xitc-convert",
            vec!["--install-dir", "/proc/xitc-cannot-be-made"],
            "mkdir -p",
        ),
        (
            "p4",
            "check the appliance reaches dom0",
            vec!["--dom0-check-command", "echo no dom0 >&2; exit 3"],
            "exited with 3: no dom0",
        ),
    ];
    for (postfix, step, extra, why) in cases {
        let output = rehearsal.test_rs(postfix, &extra);
        assert_failed_and_cleaned_up(&rehearsal, &output, step, why);
    }
}

#[test]
fn a_conversion_that_never_ends_is_cleaned_up() {
    let rehearsal = Rehearsal::new("never");
    rehearsal.never_finish();
    let output = rehearsal.test_rs("n1", &["--convert-timeout", "2"]);
    assert_failed_and_cleaned_up(
        &rehearsal,
        &output,
        "wait until the conversion is done",
        "xitc-wait-until-done failed",
    );
}
