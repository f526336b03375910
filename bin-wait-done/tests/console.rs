//! `--console SERVER`: the wait follows the server's console log beside SSH.
//! Real components: OpenStack's Keystone for auth (test-support's shared
//! Keystone, a project and user per test) and OpenSSH's sshd as the node.
//! The compute side is the project's fake (`FakeHttp`), because no emulator
//! here serves `os-getConsoleOutput`: it checks each token with Keystone, as
//! keystonemiddleware does in front of a real Nova, and answers the console
//! action with a script of tails per project, as Nova gives them (the log's
//! last lines, repeated poll after poll, growing).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use xitc_test_support::{FakeHttp, Keystone, Reply, Sshd};

const PASSWORD: &str = "console-pw";

/// What the fake Nova answers to each project's console calls, in order (the
/// last answer again once they run out), and the bodies of the calls it had.
type Scripts = Arc<Mutex<HashMap<String, (Vec<Reply>, Vec<String>)>>>;

struct Cloud {
    keystone: &'static Keystone,
    scripts: Scripts,
    _nova: FakeHttp,
}

/// The shared Keystone with the fake Nova as its compute service.
fn cloud() -> &'static Cloud {
    static CLOUD: OnceLock<Cloud> = OnceLock::new();
    CLOUD.get_or_init(|| {
        let keystone = Keystone::shared();
        let scripts: Scripts = Arc::default();
        let answering = Arc::clone(&scripts);
        let nova = FakeHttp::start(move |request| {
            if !keystone.token_is_valid(request.header("x-auth-token").unwrap_or_default()) {
                return Reply::json(401, &json!({"error": {"code": 401, "message": "no"}}));
            }
            // /v2.1/<project>/servers/...
            let parts: Vec<&str> = request.path().split('/').collect();
            let project = parts.get(2).copied().unwrap_or_default().to_owned();
            let server = json!({"id": format!("id-{project}"), "name": "node",
                                "status": "ACTIVE", "accessIPv4": "", "addresses": {}});
            match (request.method.as_str(), &parts[3..]) {
                ("GET", ["servers", "detail"]) => Reply::json(200, &json!({"servers": [server]})),
                ("GET", ["servers", _]) => {
                    Reply::json(404, &json!({"itemNotFound": {"message": "not found"}}))
                }
                ("POST", ["servers", _, "action"]) => {
                    assert!(
                        request.body.contains("os-getConsoleOutput"),
                        "{}",
                        request.body
                    );
                    let mut scripts = answering.lock().unwrap();
                    let (replies, bodies) = scripts.get_mut(&project).expect("a script");
                    let reply = replies[bodies.len().min(replies.len() - 1)].clone();
                    bodies.push(request.body.clone());
                    reply
                }
                _ => Reply::json(404, &json!({"itemNotFound": {"message": "no route"}})),
            }
        });
        keystone.add_compute(
            "nova",
            xitc_test_support::KEYSTONE_REGION,
            &format!("{}/v2.1/$(project_id)s", nova.base_url()),
        );
        Cloud {
            keystone,
            scripts,
            _nova: nova,
        }
    })
}

/// Nova's answer with `text` as the log's tail.
fn tail(text: &str) -> Reply {
    Reply::json(200, &json!({"output": text}))
}

/// A test's project, whose console answers `replies`; the tool's cloud
/// settings.
fn account(test: &str, replies: Vec<Reply>) -> (Vec<(&'static str, String)>, Scripts) {
    let cloud = cloud();
    let (project, user) = (format!("console-{test}"), format!("console-user-{test}"));
    let (project_id, _) = cloud.keystone.project_with_user(&project, &user, PASSWORD);
    cloud
        .scripts
        .lock()
        .unwrap()
        .insert(project_id, (replies, Vec::new()));
    let env = vec![
        ("OS_AUTH_URL", format!("{}/v3", cloud.keystone.url())),
        ("OS_USERNAME", user),
        ("OS_PASSWORD", PASSWORD.to_owned()),
        ("OS_PROJECT_NAME", project),
    ];
    (env, Arc::clone(&cloud.scripts))
}

/// The tool waiting for `stamp` on `sshd`, following server `node`'s console.
fn wait(sshd: &Sshd, env: &[(&'static str, String)], stamp: &str, timeout: &str) -> Output {
    wait_on("node", sshd, env, stamp, timeout)
}

/// [`wait`], following the console of `server`.
fn wait_on(
    server: &str,
    sshd: &Sshd,
    env: &[(&'static str, String)],
    stamp: &str,
    timeout: &str,
) -> Output {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("xitc-wait-until-done"));
    command
        .env_clear()
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .args([
            "--interval",
            "200ms",
            "--timeout",
            timeout,
            "--console",
            server,
        ])
        .args(["--stamp", stamp])
        .arg(format!("{}@127.0.0.1:{}", sshd.user(), sshd.port()))
        .arg(sshd.client_key())
        .stdin(Stdio::null());
    command.output().expect("running xitc-wait-until-done")
}

/// The tool waiting `timeout` for a stamp that never comes, following the
/// console of a test's project whose console answers `replies`: its exit
/// code, its stderr, and the calls the console had.
fn wait_in_vain(test: &str, replies: Vec<Reply>, timeout: &str) -> (Option<i32>, String, Scripts) {
    let (env, scripts) = account(test, replies);
    let sshd = Sshd::start();
    let stamp = sshd.dir().join("never.ready");
    let output = wait(&sshd, &env, stamp.to_str().unwrap(), timeout);
    (output.status.code(), text(&output.stderr), scripts)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const BOOT: &str = "[    0.000000] Linux version 6.8.0\r\nxitc-phase: START - begin\r\n";

#[test]
fn a_failure_on_the_console_ends_the_wait_at_once_quoting_it() {
    let (env, _) = account(
        "failure",
        vec![
            Reply::json(409, &json!({"conflictingRequest": {"message": "building"}})),
            tail(""),
            tail(BOOT),
            // A phase line written after a login prompt on the same line.
            tail(&format!(
                "{BOOT}xitc-vm login: xitc-phase: START download begin\r\nnoise \u{1b}[2J\r\n"
            )),
            // The tail scrolled; the failure comes, with a hostile byte.
            tail(
                "xitc-vm login: xitc-phase: START download begin\r\nnoise \u{1b}[2J\r\n\
                 xitc-phase: START download FAILED: HTTP 404 \u{1b}]0;x\u{7}for the ISO\r\n",
            ),
        ],
    );
    let sshd = Sshd::start();
    let stamp = sshd.dir().join("never.ready");
    let output = wait(&sshd, &env, stamp.to_str().unwrap(), "120");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "xitc-wait-until-done: console: xitc-phase: START - begin",
            "xitc-wait-until-done: console: xitc-phase: START download begin",
        ],
        "{stderr}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("xitc-wait-until-done: error: ")
            && last.contains("the console of server \"node\" says START download failed: ")
            && last.contains("FAILED: HTTP 404 ")
            && last.contains("for the ISO"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );
    assert!(!stderr.contains(PASSWORD));
    // The banner and marks are as without --console.
    assert!(text(&output.stdout).starts_with("Waiting for stamp file ["));
}

/// The installer's failure, as host-installer logs it: its exception comes
/// in the lines after INSTALL FAILED., shown before the error (at most 20).
#[test]
fn an_installer_failure_is_shown_with_what_follows_it() {
    let mut log = String::from(
        "INFO     [2026-12-07 21:36:29] Starting installation/upgrade/restore\r\n\
         INFO     [2026-12-07 21:36:29] INSTALL FAILED.\r\n\
         INFO     [2026-12-07 21:36:29] A fatal exception occurred:\r\n\
         INFO     [2026-12-07 21:36:29] Traceback (most recent call last):\r\n",
    );
    for frame in 0..30 {
        let _ = write!(log, "  File \"install.py\", line {frame}\r\n");
    }
    let (env, _) = account("installer-failure", vec![tail(&log)]);
    let sshd = Sshd::start();
    let stamp = sshd.dir().join("never.ready");
    let output = wait(&sshd, &env, stamp.to_str().unwrap(), "120");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let console: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("xitc-wait-until-done: console: "))
        .collect();
    assert_eq!(console.len(), 1 + 20, "{stderr}");
    assert!(console[0].ends_with("Starting installation/upgrade/restore"));
    assert!(
        console[1].ends_with("A fatal exception occurred:"),
        "{stderr}"
    );
    assert!(console[2].ends_with("Traceback (most recent call last):"));
    assert_eq!(console[20], "  File \"install.py\", line 17");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.contains("says the XenServer installer failed: ") && last.ends_with("INSTALL FAILED."),
        "{stderr}"
    );
}

#[test]
fn a_cloud_without_console_logs_is_said_once_and_ssh_goes_on() {
    for (status, message) in [
        (400, "There is no such action currently supported"),
        (
            403,
            "Policy doesn't allow os_compute_api:os-console-output to be performed.",
        ),
        (
            501,
            "Unable to get console log, functionality not implemented",
        ),
    ] {
        without_console_logs(status, message);
    }
}

/// A cloud that answers the console action with `status`: said once, never
/// asked again, and the stamp is found by SSH.
fn without_console_logs(status: u16, message: &str) {
    let (env, scripts) = account(
        &format!("without-{status}"),
        vec![Reply::json(status, &json!({"error": {"message": message}}))],
    );
    let sshd = Sshd::start();
    let stamp = sshd.dir().join("later.ready");
    let path = stamp.clone();
    let creator = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        std::fs::write(path, "").unwrap();
    });
    let output = wait(&sshd, &env, stamp.to_str().unwrap(), "60");
    creator.join().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{status}: {stderr}");
    assert!(text(&output.stdout).ends_with("Found!\n"));
    assert_eq!(
        stderr.matches("gives no console log").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("HTTP {status}: {message}")),
        "{stderr}"
    );
    let served = scripts
        .lock()
        .unwrap()
        .values()
        .find(|(replies, _)| {
            replies.len() == 1
                && matches!(&replies[0], Reply::Respond { status: answered, .. } if *answered == status)
        })
        .map(|(_, bodies)| bodies.len());
    assert_eq!(
        served,
        Some(1),
        "HTTP {status}: asked once, then never again"
    );
}

/// `count` kernel lines numbered from `first`.
fn boot_lines(first: usize, count: usize) -> String {
    (first..first + count).fold(String::new(), |text, n| {
        text + &format!("[ {n}.0] kernel\r\n")
    })
}

/// A boot wrote more between two polls than a tail holds: the watch asks for
/// the whole log and shows the phase lines that scrolled past, none lost.
#[test]
fn lines_that_scrolled_past_a_tail_are_read_from_the_whole_log() {
    let before = format!("{BOOT}{}", boot_lines(1, 5));
    let scrolled = format!(
        "xitc-phase: START - done: next state SETUP_INSTALLER\r\n{}",
        boot_lines(6, 8)
    );
    let after = format!(
        "xitc-phase: SETUP_INSTALLER - begin\r\n{}",
        boot_lines(14, 3)
    );
    let (code, stderr, scripts) = wait_in_vain(
        "scrolled",
        vec![
            tail(&before),
            // Asked for the last lines: the phase lines before them are gone.
            tail(&format!("{}{after}", boot_lines(8, 6))),
            // Asked for the whole log.
            tail(&format!("{before}{scrolled}{after}")),
        ],
        "3",
    );
    assert_eq!(code, Some(124), "{stderr}");
    let console: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("xitc-wait-until-done: console: "))
        .collect();
    assert_eq!(
        console,
        [
            "xitc-phase: START - begin",
            "xitc-phase: START - done: next state SETUP_INSTALLER",
            "xitc-phase: SETUP_INSTALLER - begin",
        ],
        "{stderr}"
    );
    assert!(!stderr.contains("does not go on"), "{stderr}");
    let bodies = scripts
        .lock()
        .unwrap()
        .values()
        .find(|(replies, _)| replies.len() == 3)
        .map(|(_, bodies)| bodies.clone())
        .unwrap();
    assert!(bodies[1].contains("\"length\":500"), "{bodies:?}");
    assert!(!bodies[2].contains("length"), "{bodies:?}");
}

/// A log that does not go on from what was read even whole (it started
/// afresh): its lines are shown, and that some may be missing is said once.
#[test]
fn a_log_that_does_not_go_on_is_said_once() {
    let (code, stderr, _) = wait_in_vain(
        "afresh",
        vec![
            tail(BOOT),
            tail("xitc-phase: XENSERVER - begin\r\n"),
            tail("xitc-phase: XENSERVER - begin\r\n"),
        ],
        "2",
    );
    assert_eq!(code, Some(124), "{stderr}");
    assert!(
        stderr.contains("console: xitc-phase: XENSERVER - begin\n"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches(
                "note: the console log of server \"node\" does not go on from what was read before"
            )
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn on_timeout_the_last_console_lines_are_shown() {
    let lines: String = (1..=30).fold(String::new(), |text, n| text + &format!("boot line {n}\n"));
    let (code, stderr, _) = wait_in_vain("timeout", vec![tail(&lines)], "2");
    assert_eq!(code, Some(124), "{stderr}");
    assert!(
        stderr.contains("the last 20 lines of server \"node\"'s console:\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("xitc-wait-until-done:   boot line 30\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("xitc-wait-until-done:   boot line 11\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("boot line 10\n"), "{stderr}");
}

/// The stamp ends the wait, but not before the console's lines since the
/// last poll are said: the node's last phases before the stamp (here all
/// of them: the stamp is there at the first poll). A failure line among them
/// is said too; the stamp is the verdict.
#[test]
fn at_the_stamp_the_console_is_read_once_more() {
    let (env, _) = account(
        "stamp",
        vec![tail(
            "xitc-phase: XENSERVER - begin\r\n\
             xitc-phase: XENSERVER wait-xapi FAILED: a retry\r\n\
             xitc-phase: XENSERVER stamp begin\r\n",
        )],
    );
    let sshd = Sshd::start();
    let stamp = sshd.dir().join("xenserver.ready");
    std::fs::write(&stamp, "").unwrap();
    let output = wait(&sshd, &env, stamp.to_str().unwrap(), "60");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "xitc-wait-until-done: console: xitc-phase: XENSERVER - begin",
            "xitc-wait-until-done: console: xitc-phase: XENSERVER wait-xapi FAILED: a retry",
            "xitc-wait-until-done: console: xitc-phase: XENSERVER stamp begin",
        ],
        "{stderr}"
    );
    assert!(text(&output.stdout).ends_with("Found!\n"));
}

#[test]
fn a_server_that_does_not_exist_is_said_at_once() {
    let (env, _) = account("missing", vec![tail("")]);
    let sshd = Sshd::start();
    let stamp = sshd.dir().join("never.ready");
    let output = wait_on("other", &sshd, &env, stamp.to_str().unwrap(), "60");
    xitc_test_support::assert_one_line_error(
        "missing server",
        "xitc-wait-until-done",
        &Output {
            stdout: Vec::new(),
            ..output.clone()
        },
        1,
        "no server is named \"other\" or has that id",
    );
}

#[test]
fn without_cloud_settings_console_is_refused_before_waiting() {
    let sshd = Sshd::start();
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("xitc-wait-until-done"));
    let output = command
        .env_clear()
        .args(["--console", "node", "--timeout", "60"])
        .arg(format!("{}@127.0.0.1:{}", sshd.user(), sshd.port()))
        .arg(sshd.client_key())
        .current_dir(sshd.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    xitc_test_support::assert_one_line_error(
        "no cloud",
        "xitc-wait-until-done",
        &output,
        2,
        "no cloud credentials",
    );
}
