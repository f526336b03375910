//! xitc-convert's frame, sandboxed with --root: --status, --dry-run, the saved
//! config, a real run stopped by preflight, and bad input. Every
//! test checks that nothing in the sandbox changed where nothing may change.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Output;

use bin_convert::config::Config;
use bin_convert::system::System;
use xitc_test_support::assert_one_line_error;

mod world;
use world::*;

/// --check asks the ISO's server for its size: tests must never reach the real
/// default mirror (loopback only; nothing listens on port 9).
const LOOPBACK_ISO: &str = "http://127.0.0.1:9/installer.iso";

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
    assert!(lines[3].starts_with("  3. ubuntu-boot: "), "{stdout}");
    assert!(lines[10].starts_with("  10. prepare-reboot: "), "{stdout}");
    assert_eq!(lines[11], "then: state SETUP_INSTALLER, reboot");
    assert_eq!(lines[12], "nothing was changed");
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

#[test]
fn check_reads_the_node_from_the_live_system_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    std::os::unix::fs::chown(sandbox.root.path().join("proc/self"), Some(0), Some(0))
        .expect("this test runs as root (as CI does), to give the fixture's /proc/self to root");
    let before = sandbox.tree();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--iso-url",
            LOOPBACK_ISO,
            "--ubuntu-size",
            "8G",
            "pw",
            URL,
            "L",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "preflight: the node can be converted\n  root: /dev/xvda1 (ext4), partition 1 of xvda\n  \
         space on /: 2147483648 bytes used, 30064771072 bytes free\n  \
         network: eth0 203.0.171.17/24 via 203.15.171.1, MAC bc:76:4e:20:1a:2b, \
         name servers 203.0.113.53, 198.51.100.53\nnothing was changed\n"
    );
    assert_eq!(sandbox.tree(), before);
}

#[test]
fn check_reports_every_problem_at_once() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "xfs", 2);
    for missing in ["update-grub", "grub-reboot"] {
        std::fs::remove_file(bin.join(missing)).unwrap();
    }
    // Ubuntu 14.04's sfdisk.
    std::fs::write(
        bin.join("sfdisk"),
        "#!/bin/sh\necho 'sfdisk from util-linux 2.20.1'\n",
    )
    .unwrap();
    // Booted by UEFI.
    std::fs::create_dir_all(sandbox.root.path().join("sys/firmware/efi")).unwrap();
    std::fs::write(
        sandbox.root.path().join("proc/net/route"),
        "Iface\tDestination\n",
    )
    .unwrap();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--iso-url",
            LOOPBACK_ISO,
            "--ubuntu-size",
            "2G",
            "pw",
            URL,
            "L",
        ])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for problem in [
        "nothing was changed",
        "update-grub not found in PATH",
        "grub-reboot not found in PATH",
        "/ is xfs, not ext2/3/4",
        "/ is on partition 2 of its disk; it must be partition 1",
        "--ubuntu-size 2147483648 bytes is too small",
        "there is no default route",
        "sfdisk is util-linux 2.20; the shrink needs 2.26 or later",
        "the node boots by UEFI (/sys/firmware/efi exists); xitc-convert converts BIOS-booted nodes",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem:?} missing from {stderr}"
        );
    }
}

// One story, START then SETUP_INSTALLER, as the node lives it.
#[allow(clippy::too_many_lines)]
#[test]
fn start_and_setup_installer_run_in_the_sandbox_and_again_after_a_crash() {
    use bin_convert::state::State;
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let outside_before = outside_the_sandbox();
    let world = StartWorld::new(&nginx, &iso, &xva);
    let (sandbox, bin, system, files, config) = (
        &world.sandbox,
        &world.bin,
        &world.system,
        &world.files,
        &world.config,
    );
    let root = sandbox.root.path().to_path_buf();
    if let Err(error) = bin_convert::runner::run_state(system, files, config, State::Start) {
        panic!("START failed: {error:#}");
    }

    check_start_result(&root, config, &iso, &xva);
    let install = root.join(INSTALL.trim_start_matches('/'));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();

    // A crash anywhere leaves the state START: the whole state runs again and
    // ends the same, without downloading the verified files again.
    let gets = || nginx.access_log().matches("\"GET /").count();
    let requests = gets();
    std::fs::write(install.join("xitc-convert.state"), "START\n").unwrap();
    bin_convert::runner::run_state(system, files, config, State::Start).unwrap();
    assert_eq!(
        std::fs::read_to_string(install.join("xitc-convert.state")).unwrap(),
        "SETUP_INSTALLER\n"
    );
    assert_eq!(gets(), requests, "downloads repeated");
    assert_eq!(std::fs::read(install.join("xenserver.iso")).unwrap(), iso);
    assert!(read("etc/default/grub").contains("GRUB_DEFAULT=saved\n"));

    // The reboot; the initramfs did (or did not) shrink the root.
    setup_installer_world(&root, bin);
    std::fs::write(root.join("commands.log"), "").unwrap();
    std::fs::write(bin.join("fs-blocks"), "2621440\n").unwrap(); // 10 GiB: not shrunk
    let error =
        bin_convert::runner::run_state(system, files, config, State::SetupInstaller).unwrap_err();
    assert!(
        format!("{error:#}").contains("the root was not shrunk"),
        "{error:#}"
    );
    assert_eq!(
        read(&format!(
            "{}/xitc-convert.state",
            INSTALL.trim_start_matches('/')
        )),
        "SETUP_INSTALLER\n"
    );
    assert!(
        !read("commands.log").contains("reboot"),
        "no reboot after a failed shrink"
    );

    std::fs::write(bin.join("fs-blocks"), "1048576\n").unwrap(); // 4 GiB: shrunk
    std::fs::write(root.join("commands.log"), "").unwrap();
    if let Err(error) = bin_convert::runner::run_state(system, files, config, State::SetupInstaller)
    {
        panic!("SETUP_INSTALLER failed: {error:#}");
    }
    assert_eq!(
        read(&format!(
            "{}/xitc-convert.state",
            INSTALL.trim_start_matches('/')
        )),
        "XENSERVER_FIRSTBOOT\n"
    );
    assert!(
        !root
            .join("usr/share/initramfs-tools/hooks/xitc-shrink")
            .exists()
    );
    let commands = read("commands.log");
    // Partition 2 starts at the first 1 MiB boundary behind partition 1.
    let part1_end = 2048 + (4u64 << 30) / 512 + 2048;
    let part2_start = part1_end.div_ceil(2048) * 2048;
    for expected in [
        "update-initramfs -u\n",
        &format!("sfdisk -q --append --no-reread /dev/xvda\n<start={part2_start}, size="),
        "partx -a --nr 2 /dev/xvda\n",
        "mkfs.ext3 -q -F /dev/xvda2\n",
        "mount /dev/xvda2 /mnt/xitc-ramdisk\n",
        "umount /mnt/xitc-ramdisk\n",
        "grub-reboot XenServer installer\n",
        "reboot \n",
    ] {
        assert!(
            commands.contains(expected),
            "{expected:?} not in:\n{commands}"
        );
    }
    let ramdisk = root.join("mnt/xitc-ramdisk/xsinst");
    let settings = bin_convert::settings::CloudSettings::from_json(
        &std::fs::read_to_string(ramdisk.join("cloud-settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings.describe(),
        "eth0 203.0.171.17/24 via 203.15.171.1, MAC bc:76:4e:20:1a:2b, \
         name servers 203.0.113.53, 198.51.100.53"
    );
    assert_eq!(settings.netmask.to_string(), "255.255.255.0");
    assert_eq!(
        std::fs::read_to_string(ramdisk.join("authorized_keys")).unwrap(),
        "ssh-ed25519 AAAA user@laptop\n"
    );
    assert_eq!(std::fs::read(ramdisk.join("xenserver.iso")).unwrap(), iso);
    assert!(ramdisk.join("answerfile.xml").is_file() && ramdisk.join("postinst.sh").is_file());
    assert_eq!(
        outside_the_sandbox(),
        outside_before,
        "the real system was touched"
    );
}

#[test]
fn start_reaches_the_same_end_after_a_failure_at_any_external_step() {
    use bin_convert::state::State;
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let clean = StartWorld::new(&nginx, &iso, &xva);
    bin_convert::runner::run_state(&clean.system, &clean.files, &clean.config, State::Start)
        .unwrap();
    let expected = clean.outcome();
    for failing in ["blkid", "update-grub", "update-initramfs", "sync", "reboot"] {
        let world = StartWorld::new(&nginx, &iso, &xva);
        // The stand-in fails once, as a crash there would interrupt the run.
        let stand_in = world.bin.join(failing);
        let script = std::fs::read_to_string(&stand_in).unwrap();
        let marker = world.bin.join(format!("fail-{failing}"));
        std::fs::write(&marker, "").unwrap();
        std::fs::write(
            &stand_in,
            script.replacen(
                "#!/bin/sh\n",
                &format!(
                    "#!/bin/sh\nif [ -e '{0}' ]; then rm '{0}'; exit 1; fi\n",
                    marker.display()
                ),
                1,
            ),
        )
        .unwrap();
        let state_file = world
            .sandbox
            .root
            .path()
            .join(INSTALL.trim_start_matches('/'))
            .join("xitc-convert.state");
        let first = bin_convert::runner::run_state(
            &world.system,
            &world.files,
            &world.config,
            State::Start,
        );
        if failing == "reboot" {
            // The state was recorded before the reboot failed: the next boot goes on.
            assert!(first.is_err());
            assert_eq!(
                std::fs::read_to_string(&state_file).unwrap(),
                "SETUP_INSTALLER\n"
            );
        } else {
            assert!(first.is_err(), "{failing} failing must fail START");
            assert!(
                !state_file.exists(),
                "{failing}: the state moved on after a failure"
            );
            bin_convert::runner::run_state(
                &world.system,
                &world.files,
                &world.config,
                State::Start,
            )
            .unwrap();
        }
        assert_same_start_outcome(&world.outcome(), &expected, failing);
    }
}

#[test]
fn start_killed_at_every_program_it_runs_reaches_the_same_end() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let kill_point = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand-ins/kill-point");
    let run = |world: &StartWorld, kill_at: Option<u32>| {
        let mut command = world.sandbox.convert();
        command.env("PATH", path_with(&world.bin));
        if let Some(call) = kill_at {
            command
                .env("XITC_TEST_KILL_POINT", &kill_point)
                .env("XITC_TEST_KILL_AT", call.to_string());
        }
        command.output().unwrap()
    };
    let new_world = || {
        let world = StartWorld::new(&nginx, &iso, &xva);
        world
            .config
            .save(&world.system, &world.files.config)
            .unwrap();
        world
    };
    // A clean run, counting the programs START runs (kill at call 0: never).
    let clean = new_world();
    let output = run(&clean, Some(0));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls: u32 = std::fs::read_to_string(clean.sandbox.root.path().join("kill-count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        calls >= 7,
        "df, ip, blkid, update-grub, update-initramfs, sync, reboot: {calls}"
    );
    let expected = clean.outcome();
    for call in 1..=calls {
        let world = new_world();
        let output = run(&world, Some(call));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&output.status),
            Some(9),
            "call {call}: not killed"
        );
        let state = std::fs::read_to_string(
            world
                .sandbox
                .root
                .path()
                .join(INSTALL.trim_start_matches('/'))
                .join("xitc-convert.state"),
        )
        .unwrap_or_default();
        // Killed at the reboot, START is done: the next boot goes on from there.
        if state != "SETUP_INSTALLER\n" {
            let output = run(&world, None);
            assert!(
                output.status.success(),
                "rerun after a kill at call {call}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert_same_start_outcome(
            &world.outcome(),
            &expected,
            &format!("killed at call {call}"),
        );
    }
}

/// What a finished START leaves in the sandbox `root`.
fn check_start_result(root: &Path, config: &Config, iso: &[u8], xva: &[u8]) {
    let install = root.join(INSTALL.trim_start_matches('/'));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    assert_eq!(
        std::fs::read_to_string(install.join("xitc-convert.state")).unwrap(),
        "SETUP_INSTALLER\n"
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&install.join("xitc-convert.config")), 0o600);
    assert!(
        read("etc/systemd/system/xitc-convert.service")
            .contains(&format!("--install-dir \"{INSTALL}\""))
    );
    assert!(
        root.join("etc/systemd/system/multi-user.target.wants/xitc-convert.service")
            .is_symlink()
    );
    assert_eq!(std::fs::read(install.join("xenserver.iso")).unwrap(), iso);
    assert_eq!(std::fs::read(install.join("appliance.xva")).unwrap(), xva);
    assert_eq!(
        std::fs::read(install.join("installer/install.img")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        std::fs::read(install.join("installer/xen.gz")).unwrap(),
        vec![8u8; 20_000]
    );
    assert_eq!(
        std::fs::metadata(install.join("xsinst/xenserver.iso"))
            .unwrap()
            .ino(),
        std::fs::metadata(install.join("xenserver.iso"))
            .unwrap()
            .ino(),
        "xsinst/ holds the ISO as a hard link, not a copy"
    );
    let answerfile = std::fs::read_to_string(install.join("xsinst/answerfile.xml")).unwrap();
    assert!(answerfile.contains(&format!(
        "<root-password type=\"hash\">{}</root-password>",
        config.root_password_hash
    )));
    assert!(
        answerfile.contains("<primary-disk preserve-first-partition=\"true\">sda</primary-disk>")
    );
    assert!(answerfile.contains("sr-type=\"ext\""), "XCP-ng 8.3 dialect");
    assert!(
        std::fs::read_to_string(install.join("xsinst/xitc-dom0-boot"))
            .unwrap()
            .contains("UUID=0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19")
    );
    let grub = read("etc/grub.d/45_xitc-installer");
    assert!(
        grub.contains(&format!("multiboot {INSTALL}/installer/xen.gz")),
        "{grub}"
    );
    assert!(grub.contains("make-ramdisk=/dev/sda2"), "{grub}");
    assert!(
        grub.contains("set fallback=0\n")
            && grub.contains(
                "search --no-floppy --fs-uuid --set=root 0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19\n"
            ),
        "{grub}"
    );
    assert!(read("etc/default/grub").contains("GRUB_DEFAULT=saved\n"));
    assert_eq!(
        read("usr/share/initramfs-tools/hooks/xitc-shrink"),
        bin_convert::render::SHRINK_HOOK
    );
    let premount = read("usr/share/initramfs-tools/scripts/local-premount/xitc-shrink");
    // 2 GiB in use (df stand-in) + 2 GiB: 4 GiB.
    assert!(
        premount.contains(&format!("TARGET_KIB={}\n", 4u64 << 20)),
        "{premount}"
    );
    assert!(
        premount.contains("PART='/dev/xvda1'\nDISK='/dev/xvda'\n"),
        "{premount}"
    );
    assert_eq!(
        read("commands.log"),
        "blkid -s UUID -o value /dev/xvda1\nupdate-grub \nupdate-initramfs -u\nsync \nreboot \n"
    );
    let log = std::fs::read_to_string(install.join("xitc-convert.log")).unwrap();
    assert!(
        log.contains("state START: done; next state SETUP_INSTALLER"),
        "{log}"
    );
}

#[test]
fn check_needs_room_for_the_downloads() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    // 1 GiB free: not enough for 2 MB of downloads plus the 1 GiB margin.
    std::fs::write(
        bin.join("df"),
        "#!/bin/sh\nprintf '     Used    Avail\\n2147483648 1073741824\\n'\n",
    )
    .unwrap();
    let nginx = xitc_test_support::Nginx::start();
    std::fs::write(nginx.root().join("big.xva"), vec![0u8; 2_000_000]).unwrap();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--iso-url",
            LOOPBACK_ISO,
            "pw",
            &nginx.url("big.xva"),
            "L",
        ])
        .output()
        .unwrap();
    assert_one_line_error(
        "no room",
        TOOL,
        &output,
        2,
        "the downloads need 2000000 bytes more on /, plus a margin of 1073741824, and only 1073741824 are free",
    );
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
fn the_ubuntu_state_hands_the_cloud_settings_to_dom0_and_boots_xenserver() {
    use bin_convert::state::State;
    let sandbox = Sandbox::new();
    let root = sandbox.root.path().to_path_buf();
    let bin = node_fixture(&sandbox, "ext4", 1);
    recording_stand_ins(&bin);
    let record = "echo \"$(basename \"$0\") $*\" >> \"$XITC_ROOT/commands.log\"";
    for (name, body) in [
        ("mountpoint", format!("{record}\nexit 1")),
        (
            "lsblk",
            "printf 'xvda \\nxvda1 cloudimg-rootfs\\nxvda2 root-vgdorj\\n'".to_owned(),
        ),
        ("mount", record.to_owned()),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(root.join("root/.ssh")).unwrap();
    std::fs::write(
        root.join("root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA new@laptop\n",
    )
    .unwrap();
    // dom0's root as Ubuntu sees it once mounted, after a first dom0 boot.
    let grub = "set default=0\nmenuentry 'XCP-ng' {\n\tmultiboot2 /boot/xen.gz\n}\n";
    let dom0_grub = root.join("mnt/dom0/boot/grub/grub.cfg");
    std::fs::create_dir_all(dom0_grub.parent().unwrap()).unwrap();
    let with_ubuntu = bin_convert::bootloader::grub_default(
        &bin_convert::bootloader::grub_add(
            grub,
            &bin_convert::bootloader::UbuntuEntry {
                kernel: "/boot/vmlinuz-ubuntu".into(),
                initrd: "/boot/initrd-ubuntu".into(),
                ubuntu: bin_convert::bootloader::UbuntuBoot {
                    root_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".into(),
                    args: "console=ttyS0".into(),
                },
                files_uuid: Some("5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b".into()),
            },
        )
        .unwrap(),
        true,
    )
    .unwrap();
    std::fs::write(&dom0_grub, &with_ubuntu).unwrap();
    let config = sandbox.save_config();
    let system = System::new(Some(root.clone())).with_search_path(path_with(&bin));
    let files = bin_convert::paths::Files::new(PathBuf::from(INSTALL));
    if let Err(error) = bin_convert::runner::run_state(&system, &files, &config, State::Ubuntu) {
        panic!("UBUNTU failed: {error:#}");
    }
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    assert_eq!(
        read(&format!(
            "{}/xitc-convert.state",
            INSTALL.trim_start_matches('/')
        )),
        "XENSERVER\n"
    );
    assert_eq!(
        read("commands.log"),
        "mountpoint -q /mnt/dom0\nmount /dev/xvda2 /mnt/dom0\ndebconf-set-selections \nsync \nreboot \n"
    );
    // Ubuntu's GRUB packages stay off dom0's boot sector.
    assert_eq!(
        read("debconf.selections"),
        bin_convert::steps::ubuntu::KEEP_OFF_THE_BOOT_SECTOR
    );
    let settings =
        bin_convert::settings::CloudSettings::from_json(&read("mnt/dom0/root/cloud-settings.json"))
            .unwrap();
    assert_eq!(settings.address.to_string(), "203.0.171.17");
    assert_eq!(
        read("mnt/dom0/root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA new@laptop\n"
    );
    let flipped = std::fs::read_to_string(&dom0_grub).unwrap();
    assert!(flipped.contains("set default=0\n"), "{flipped}");
    assert_eq!(
        flipped.matches("menuentry 'Ubuntu (xitc-convert)'").count(),
        1
    );
}

#[test]
fn forget_networking_puts_dom0_on_vlan_100_and_ends_the_same_when_repeated() {
    let sandbox = Sandbox::new();
    let root = sandbox.root.path().to_path_buf();
    let config = sandbox.save_config();
    let settings = bin_convert::settings::CloudSettings {
        version: 1,
        interface: "eth0".into(),
        address: "203.0.113.7".parse().unwrap(),
        prefix: 24,
        netmask: "255.255.255.0".parse().unwrap(),
        gateway: "203.0.113.1".parse().unwrap(),
        mac: "bc:76:4e:20:1a:2b".into(),
        nameservers: vec!["203.0.113.53".parse().unwrap()],
    };
    std::fs::create_dir_all(root.join("root")).unwrap();
    std::fs::write(
        root.join("root/cloud-settings.json"),
        serde_json::to_string(&settings).unwrap(),
    )
    .unwrap();
    // xe, backed by a state file (uuids persist between calls).
    let stand_ins = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand-ins");
    let system = System::new(Some(root.clone())).with_search_path(path_with(&stand_ins));
    let files = bin_convert::paths::Files::new(PathBuf::from(INSTALL));
    let state = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root.join("xe.json")).unwrap()).unwrap()
    };
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let log = bin_convert::log::Log::new(&system, Path::new("/xitc.log"));
        let mut work = bin_convert::work::Work {
            system: &system,
            files: &files,
            config: &config,
            log,
            node: None,
            limits: bin_convert::work::Limits::default(),
        };
        if let Err(error) = bin_convert::shared::dom0::forget_networking(&mut work) {
            panic!("forget-networking failed: {error:#}");
        }
        let xe = state();
        let pifs = xe["pifs"].as_object().unwrap();
        assert_eq!(pifs.len(), 2, "the NIC and its VLAN: {xe}");
        let physical = pifs.values().find(|pif| pif["VLAN"] == "-1").unwrap();
        assert_eq!(physical["mac"], "bc:76:4e:20:1a:2b");
        assert_eq!(physical["IP"], "0.0.0.0");
        let (vlan_uuid, vlan) = pifs.iter().find(|(_, pif)| pif["VLAN"] == "100").unwrap();
        assert_eq!(vlan["IP"], "192.168.33.2");
        assert_eq!(xe["management"], vlan_uuid.as_str());
        let management_networks = xe["networks"]
            .as_object()
            .unwrap()
            .values()
            .filter(|name| *name == "xitc-management")
            .count();
        assert_eq!(management_networks, 1, "no new network on a re-run: {xe}");
        outcomes.push(xe["networks"].clone());
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let calls = std::fs::read_to_string(root.join("xe.log")).unwrap();
    assert!(
        calls.starts_with("host-management-disable\nvlan-list --minimal\n"),
        "{calls}"
    );
    assert!(
        std::fs::read_to_string(root.join("xitc.log"))
            .unwrap()
            .contains("applying the cloud's network settings: eth0 203.0.113.7/24")
    );
}
