//! xitc-convert's frame, sandboxed with --root: --status, --dry-run, the saved
//! config, the refusal to run steps this version cannot do, and bad input. Every
//! test checks that nothing in the sandbox changed where nothing may change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bin_convert::config::Config;
use bin_convert::system::System;
use xitc_common::secret::Secret;
use xitc_test_support::assert_one_line_error;

const TOOL: &str = "xitc-convert";
const INSTALL: &str = "/opt/xenapi-in-the-cloud";
const URL: &str = "http://127.0.0.1:9/appliance.xva";

struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(INSTALL.trim_start_matches('/'))).unwrap();
        std::fs::create_dir_all(root.path().join("etc/default")).unwrap();
        std::fs::write(root.path().join("etc/default/grub"), "GRUB_DEFAULT=0\n").unwrap();
        Sandbox { root }
    }

    fn system(&self) -> System {
        System::new(Some(self.root.path().to_path_buf()))
    }

    fn convert(&self) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("xitc-convert"));
        command
            .env_clear()
            .arg("--root")
            .arg(self.root.path())
            .args(["--install-dir", INSTALL]);
        command
    }

    /// Every file under the root with its contents: to prove nothing changed.
    fn tree(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    into.insert(path.clone(), Vec::new());
                    walk(&path, into);
                } else {
                    into.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut tree = BTreeMap::new();
        walk(self.root.path(), &mut tree);
        tree
    }

    fn save_config(&self) -> Config {
        let config = Config {
            appliance_url: URL.into(),
            appliance_label: "Devstack".into(),
            iso_url: bin_convert::DEFAULT_ISO_URL.into(),
            iso_sha256: None,
            appliance_sha256: None,
            ubuntu_size: Some(8 << 30),
            installer_disk: "sda".into(),
            installer_nic: "eth0".into(),
            root_password_hash: bin_convert::config::hash_password(&Secret::new("pw")).unwrap(),
        };
        config
            .save(
                &self.system(),
                &Path::new(INSTALL).join("xitc-convert.config"),
            )
            .unwrap();
        config
    }

    fn set_state(&self, state: &str) {
        std::fs::write(
            self.root
                .path()
                .join(INSTALL.trim_start_matches('/'))
                .join("xitc-convert.state"),
            format!("{state}\n"),
        )
        .unwrap();
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

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
    assert!(lines[1].starts_with("  1. preflight: "), "{stdout}");
    assert!(lines[9].starts_with("  9. prepare-reboot: "), "{stdout}");
    assert_eq!(lines[10], "then: state SETUP_INSTALLER, reboot");
    assert_eq!(lines[11], "nothing was changed");
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

#[test]
fn a_real_run_refuses_steps_it_cannot_do_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let before = sandbox.tree();
    let output = sandbox
        .convert()
        .args(["secret-pw-2", URL, "Devstack"])
        .output()
        .unwrap();
    assert_one_line_error(
        "real run",
        TOOL,
        &output,
        1,
        "state START: this version of xitc-convert cannot do the steps preflight, save-config",
    );
    assert!(!text(&output).1.contains("secret-pw-2"));
    assert_eq!(sandbox.tree(), before);
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
    let cases: Vec<Case> = vec![
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
    assert!(cases.len() >= 15);

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
