//! xitc-convert's command line, sandboxed with --root: --status, --dry-run,
//! the saved config, the password's sources, a real run stopped by preflight,
//! a state of the other OS, and bad input. Every test checks that nothing in
//! the sandbox changed where nothing may change.

use xitc_test_support::assert_one_line_error;

mod world;
use world::*;

#[test]
fn status_of_a_fresh_node() {
    let sandbox = Sandbox::new();
    let output = sandbox.convert().arg("--status").output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "state: START (runs on Ubuntu) - no state file yet\nstate file: {INSTALL}/xitc-convert.state\n\
             config: none saved yet (the first run saves it)\ninstall dir: {INSTALL}\n\
             log: {INSTALL}/xitc-convert.log\n"
        )
    );
}

#[test]
fn status_masks_the_password() {
    let sandbox = Sandbox::new();
    let config = sandbox.save_config();
    sandbox.set_state("UBUNTU");
    let output = sandbox.convert().arg("--status").output().unwrap();
    let (stdout, _) = text(&output);
    assert!(output.status.success());
    assert!(
        stdout.starts_with("state: UBUNTU (runs on Ubuntu)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("root password:    set (SHA-512 crypt hash"),
        "{stdout}"
    );
    assert!(!stdout.contains(&config.root_password_hash));
    assert!(stdout.contains(&format!("appliance URL:    {URL}")));
}

#[test]
fn dry_run_of_start_lists_its_steps_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let before = sandbox.tree();
    let output = sandbox
        .convert()
        .args(["--dry-run", "secret-pw-1", URL, "Devstack"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("xitc-convert --dry-run: state START (runs on Ubuntu)"),
        "{stdout}"
    );
    // No node in this sandbox: the plan says so and goes on.
    assert!(
        lines[1].starts_with("layout: not read here (cannot read /proc/self/mounts"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("  1. preflight: "), "{stdout}");
    // The steps that may refuse come before the first change (README "The
    // lifecycle").
    assert!(lines[4].starts_with("  3. installer-files: "), "{stdout}");
    assert!(lines[5].starts_with("  4. appliance: "), "{stdout}");
    assert!(lines[6].starts_with("  5. shrink-target: "), "{stdout}");
    assert!(lines[7].starts_with("  6. save-config: "), "{stdout}");
    assert!(lines[14].starts_with("  13. prepare-reboot: "), "{stdout}");
    assert_eq!(lines[15], "then: state SETUP_INSTALLER, reboot");
    assert_eq!(lines[16], "nothing was changed");
    assert!(!stdout.contains("secret-pw-1") && !stderr.contains("secret-pw-1"));
    assert_eq!(sandbox.tree(), before, "--dry-run changed the sandbox");
}

#[test]
fn the_password_can_come_from_the_environment_or_a_file() {
    let sandbox = Sandbox::new();
    let file = sandbox.root.path().join("pw");
    std::fs::write(&file, "from-file-pw\n").unwrap();
    let from_file = sandbox
        .convert()
        .arg("--password-file")
        .arg(&file)
        .args(["--dry-run", URL, "Devstack"])
        .output()
        .unwrap();
    let from_env = sandbox
        .convert()
        .env("XENSERVER_PASSWORD", "from-env-pw")
        .args(["--dry-run", URL, "Devstack"])
        .output()
        .unwrap();
    for output in [from_file, from_env] {
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        assert!(
            stdout.contains(&format!("appliance \"Devstack\" from {URL}")),
            "{stdout}"
        );
        assert!(!stdout.contains("-pw"));
    }
}

#[test]
fn dry_run_in_a_later_state_uses_the_saved_config() {
    let sandbox = Sandbox::new();
    sandbox.save_config();
    sandbox.set_state("XENSERVER");
    let before = sandbox.tree();
    let output = sandbox.convert().arg("--dry-run").output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.starts_with(
        "xitc-convert --dry-run: state XENSERVER (runs on dom0), appliance \"Devstack\""
    ));
    assert!(stdout.contains("  1. wait-xapi: "));
    assert!(stdout.contains("then: state UBUNTU\n"), "{stdout}");
    assert_eq!(sandbox.tree(), before);
}

/// A config saved by START in the direct mode (an old config has no mode:
/// the appliance mode, as the test above shows): dom0 stays in XENSERVER,
/// with the direct mode's steps and its stamp in dom0.
#[test]
fn dry_run_in_the_direct_mode_plans_no_appliance_and_no_ubuntu() {
    use bin_convert::config::{Config, Mode, NetworkSource};
    let sandbox = Sandbox::new();
    let config = Config {
        mode: Mode::Direct,
        network: NetworkSource::Dhcp,
        appliance_url: String::new(),
        appliance_label: String::new(),
        ..sandbox.save_config()
    };
    config
        .save(
            &sandbox.system(),
            &std::path::Path::new(INSTALL).join("xitc-convert.config"),
        )
        .unwrap();
    for state in ["XENSERVER_FIRSTBOOT", "XENSERVER"] {
        sandbox.set_state(state);
        let output = sandbox.convert().arg("--dry-run").output().unwrap();
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        let steps: Vec<&str> = stdout
            .lines()
            .filter_map(|line| line.trim_start().split_once(". "))
            .map(|(_, rest)| rest.split(':').next().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "clear-stamp",
                "wait-xapi",
                "management",
                "wait-ready",
                "stamp"
            ],
            "{stdout}"
        );
        assert!(
            stdout.starts_with(&format!(
                "xitc-convert --dry-run: state {state} (runs on dom0), direct mode (xapi at the \
                 cloud's address, no appliance), network source dhcp; would run:\n"
            )),
            "{stdout}"
        );
        assert!(stdout.contains("\nthen: state XENSERVER\n"), "{stdout}");
    }
}

#[test]
fn a_real_run_on_a_node_that_fails_preflight_changes_nothing() {
    let sandbox = Sandbox::new();
    let before = sandbox.tree();
    let output = sandbox
        .convert()
        .args(["secret-pw-2", URL, "Devstack"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("preflight"), "{stderr}");
    assert!(!stdout.contains("secret-pw-2") && !stderr.contains("secret-pw-2"));
    // Only xitc-convert's own log (saying why) and lock file are new.
    let new: Vec<String> = sandbox
        .tree()
        .into_keys()
        .filter(|path| !before.contains_key(path))
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(new, ["xitc-convert.lock", "xitc-convert.log"], "{stdout}");
    let log = std::fs::read_to_string(
        sandbox
            .root
            .path()
            .join(INSTALL.trim_start_matches('/'))
            .join("xitc-convert.log"),
    )
    .unwrap();
    assert!(
        log.contains("preflight failed: the node cannot be converted"),
        "{log}"
    );
}

/// (name, arguments, environment, exit code, message)
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, i32, &'a str);

// A table of cases: long by nature, and clearer whole than split.
#[allow(clippy::too_many_lines)]
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let unreadable = sandbox.root.path().join("no-such-password-file");
    let unreadable = unreadable.to_str().unwrap();
    let not_hex = "g".repeat(64);
    let files = tempfile::tempdir().unwrap();
    let not_utf8 = files.path().join("latin1-password");
    std::fs::write(&not_utf8, b"p\xe4ssword\n").unwrap();
    let not_utf8 = not_utf8.to_str().unwrap();
    let huge = files.path().join("huge-password");
    std::fs::write(&huge, vec![b'x'; 2 << 20]).unwrap();
    let huge = huge.to_str().unwrap();
    let cases: Vec<Case> = vec![
        (
            "password file not UTF-8",
            vec!["--password-file", not_utf8, URL, "L"],
            vec![],
            2,
            "is not UTF-8 text",
        ),
        (
            "huge password file",
            vec!["--password-file", huge, URL, "L"],
            vec![],
            2,
            "is larger than 1048576 bytes",
        ),
        (
            "URL with an escape sequence",
            vec!["pw", "http://h/\u{1b}[2Ja.xva", "L"],
            vec![],
            2,
            r#"without spaces, got "http://h/\u{1b}[2Ja.xva""#,
        ),
        (
            "label with a newline",
            vec!["pw", URL, "a\nb"],
            vec![],
            2,
            "APPLIANCE_NAME_LABEL must be non-empty, without control characters",
        ),
        (
            "size that overflows",
            vec!["--ubuntu-size", "99999999999T", "pw", URL, "L"],
            vec![],
            2,
            "is too large",
        ),
        (
            "stamp path with a newline",
            vec!["pw", URL, "L"],
            vec![("XITC_STAMP_PATH", "/var/run/a\nb")],
            2,
            "XITC_STAMP_PATH must not contain control characters",
        ),
        (
            "no password",
            vec![],
            vec![],
            2,
            "no password: give PASSWORD, XENSERVER_PASSWORD or --password-file",
        ),
        (
            "no URL",
            vec![],
            vec![("XENSERVER_PASSWORD", "pw")],
            2,
            "APPLIANCE_URL is missing",
        ),
        (
            "no label",
            vec![URL],
            vec![("XENSERVER_PASSWORD", "pw")],
            2,
            "APPLIANCE_NAME_LABEL is missing",
        ),
        (
            "two positionals, no password",
            vec![URL, "L"],
            vec![],
            2,
            "no password",
        ),
        (
            "four arguments",
            vec!["pw", URL, "L", "x"],
            vec![],
            2,
            "unexpected value 'x'",
        ),
        (
            "empty password",
            vec!["", URL, "L"],
            vec![],
            2,
            "the password is empty",
        ),
        (
            "non-ASCII password",
            vec!["pässword", URL, "L"],
            vec![],
            2,
            "printable ASCII",
        ),
        (
            "password with a newline",
            vec!["a\nb", URL, "L"],
            vec![],
            2,
            "printable ASCII",
        ),
        (
            "password twice",
            vec!["pw", URL, "L"],
            vec![("XENSERVER_PASSWORD", "pw2")],
            2,
            "given more than once",
        ),
        (
            "unreadable password file",
            vec!["--password-file", unreadable, URL, "L"],
            vec![],
            2,
            "cannot read --password-file",
        ),
        (
            "endless password file",
            vec!["--password-file", "/dev/zero", URL, "L"],
            vec![],
            2,
            "--password-file /dev/zero is not a regular file",
        ),
        (
            "password file is a directory",
            vec!["--password-file", "/", URL, "L"],
            vec![],
            2,
            "--password-file / is not a regular file",
        ),
        (
            "URL without scheme",
            vec!["pw", "example.com/a.xva", "L"],
            vec![],
            2,
            "APPLIANCE_URL must be an http://",
        ),
        (
            "URL with a space",
            vec!["pw", "http://h/a b.xva", "L"],
            vec![],
            2,
            "without spaces",
        ),
        (
            "bad ISO URL",
            vec!["--iso-url", "ftp://h/x.iso", "pw", URL, "L"],
            vec![],
            2,
            "--iso-url must be",
        ),
        (
            "empty label",
            vec!["pw", URL, " "],
            vec![],
            2,
            "APPLIANCE_NAME_LABEL must be non-empty",
        ),
        (
            "short checksum",
            vec!["--iso-sha256", "abc", "pw", URL, "L"],
            vec![],
            2,
            "--iso-sha256 must be 64 hex digits",
        ),
        (
            "non-hex checksum",
            vec!["--appliance-sha256", &not_hex, "pw", URL, "L"],
            vec![],
            2,
            "--appliance-sha256 must be 64 hex digits",
        ),
        (
            "bad size",
            vec!["--ubuntu-size", "big", "pw", URL, "L"],
            vec![],
            2,
            "is not a size",
        ),
        (
            "zero size",
            vec!["--ubuntu-size", "0", "pw", URL, "L"],
            vec![],
            2,
            "more than 0",
        ),
        (
            "bad disk",
            vec!["--installer-disk", "/dev/sda", "pw", URL, "L"],
            vec![],
            2,
            "--installer-disk must be a device name",
        ),
        (
            "bad NIC",
            vec!["--installer-nic", "eth 0", "pw", URL, "L"],
            vec![],
            2,
            "--installer-nic must be",
        ),
        (
            "relative install dir",
            vec!["--install-dir", "opt/x", "pw", URL, "L"],
            vec![],
            2,
            "--install-dir must be absolute",
        ),
        (
            "unknown flag",
            vec!["--bogus"],
            vec![],
            2,
            "unexpected argument '--bogus'",
        ),
        (
            "dry run and status",
            vec!["--dry-run", "--status"],
            vec![],
            2,
            "cannot be used with",
        ),
        (
            "root that is no directory",
            vec!["--root", "/nonexistent/root", "pw", URL, "L"],
            vec![],
            2,
            "--root /nonexistent/root is not a directory",
        ),
        (
            "appliance user with a space",
            vec!["--appliance-user", "dom zero", "pw", URL, "L"],
            vec![],
            2,
            "--appliance-user must be a user name like domzero, got \"dom zero\"",
        ),
        (
            "appliance user with a shell character",
            vec!["--appliance-user", "x;reboot", "pw", URL, "L"],
            vec![],
            2,
            "--appliance-user must be a user name",
        ),
        (
            "no VCPUs",
            vec!["--appliance-vcpus", "0", "pw", URL, "L"],
            vec![],
            2,
            "invalid value '0' for '--appliance-vcpus <N>'",
        ),
        (
            "VCPUs not a number",
            vec!["--appliance-vcpus", "many", "pw", URL, "L"],
            vec![],
            2,
            "invalid value 'many' for '--appliance-vcpus <N>'",
        ),
        (
            "direct mode with an appliance",
            vec!["--mode", "direct", "pw", URL, "L"],
            vec![],
            2,
            "the direct mode takes no APPLIANCE_URL or APPLIANCE_NAME_LABEL",
        ),
        (
            "direct mode with the bounce",
            vec!["--mode", "direct", "--network", "bounce", "pw"],
            vec![],
            2,
            "--network bounce needs the appliance mode",
        ),
        (
            "direct mode with appliance VCPUs",
            vec!["--mode", "direct", "--appliance-vcpus", "2", "pw"],
            vec![],
            2,
            "--appliance-vcpus is for the appliance mode",
        ),
        (
            "unknown mode",
            vec!["--mode", "indirect", "pw"],
            vec![],
            2,
            "invalid value 'indirect' for '--mode <MODE>'",
        ),
        (
            "unknown network source",
            vec!["--mode", "direct", "--network", "carrier-pigeon", "pw"],
            vec![],
            2,
            "invalid value 'carrier-pigeon' for '--network <NETWORK>'",
        ),
        (
            "relative stamp path",
            vec!["pw", URL, "L"],
            vec![("XITC_STAMP_PATH", "var/run/x")],
            2,
            "XITC_STAMP_PATH must be an absolute path",
        ),
    ];
    let before = sandbox.tree();
    for (name, args, env, code, message) in &cases {
        let output = sandbox
            .convert()
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        assert_one_line_error(name, TOOL, &output, *code, message);
    }
    assert_eq!(sandbox.tree(), before);
    assert!(cases.len() >= 20);

    // Damaged files of the node are failures (exit 1), not usage errors.
    sandbox.set_state("BANANA");
    let output = sandbox.convert().arg("--status").output().unwrap();
    assert_one_line_error(
        "damaged state file",
        TOOL,
        &output,
        1,
        "holds \"BANANA\", which is not a state",
    );
    sandbox.set_state("UBUNTU");
    let output = sandbox.convert().arg("--dry-run").output().unwrap();
    assert_one_line_error(
        "later state without config",
        TOOL,
        &output,
        2,
        "state UBUNTU needs the config that START saved",
    );
    std::fs::write(
        sandbox
            .root
            .path()
            .join(INSTALL.trim_start_matches('/'))
            .join("xitc-convert.config"),
        "{not json",
    )
    .unwrap();
    let output = sandbox.convert().arg("--status").output().unwrap();
    assert_one_line_error("damaged config", TOOL, &output, 1, "is damaged");
}

#[test]
fn a_dom0_state_in_ubuntu_stops_without_rebooting_and_says_why() {
    let sandbox = Sandbox::new();
    sandbox.save_config();
    sandbox.set_state("XENSERVER_FIRSTBOOT");
    let bin = sandbox.root.path().join("stand-ins");
    std::fs::create_dir_all(&bin).unwrap();
    recording_stand_ins(&bin);
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    // A real run logs to stdout too (journald), so the message is on both.
    let (stdout, stderr) = text(&output);
    let message = "state XENSERVER_FIRSTBOOT runs in dom0, but this is Ubuntu: the XenServer install did not happen";
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("xitc-convert: error: ") && stderr.contains(message),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stdout.contains(message), "{stdout}");
    assert!(
        !sandbox.root.path().join("commands.log").exists(),
        "nothing may run, no reboot"
    );
    let status = sandbox.convert().arg("--status").output().unwrap();
    let (stdout, _) = text(&status);
    assert!(
        stdout.contains("last log line: [")
            && stdout.contains("the XenServer install did not happen"),
        "{stdout}"
    );

    // And the other way round: an Ubuntu state in dom0. (UBUNTU itself in
    // dom0 redoes the last dom0 state's stamp: tests/lifecycle.rs.)
    std::fs::write(
        sandbox.root.path().join("etc/xensource-inventory"),
        "INSTALLATION_UUID=x\n",
    )
    .unwrap();
    sandbox.set_state("SETUP_INSTALLER");
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output)
            .1
            .contains("state SETUP_INSTALLER runs in Ubuntu, but this is dom0")
    );
}

#[test]
fn status_reads_a_log_cut_mid_character_and_escapes_what_it_shows() {
    let sandbox = Sandbox::new();
    sandbox.save_config();
    let log = sandbox
        .root
        .path()
        .join("opt/xenapi-in-the-cloud/xitc-convert.log");
    // A crash (or a full disk) cut the last line inside "é"; an earlier line
    // of the log carried a terminal escape from a remote message.
    let mut bytes =
        b"[1] xitc-convert: first line\n[2] xitc-convert: \x1b[2Jappliance said caf".to_vec();
    bytes.push(0xc3);
    std::fs::write(&log, &bytes).unwrap();
    let status = sandbox.convert().arg("--status").output().unwrap();
    let (stdout, stderr) = text(&status);
    assert!(status.status.success(), "{stderr}");
    assert!(
        stdout.contains("last log line: [2] xitc-convert: \\u{1b}[2Jappliance said caf\u{fffd}\n"),
        "{stdout}"
    );
}

#[test]
fn status_into_a_full_stdout_is_exit_1_with_one_line() {
    let sandbox = Sandbox::new();
    sandbox.save_config();
    let status = sandbox
        .convert()
        .arg("--status")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    xitc_test_support::assert_one_line_error(
        "a full stdout",
        "xitc-convert",
        &status,
        1,
        "writing to stdout: ",
    );
}
