//! START and SETUP_INSTALLER in the sandbox, as the node lives them, against
//! nginx: the whole story, START after a failure at any external step, and
//! START killed (SIGKILL, the real binary) at every program it runs; each
//! rerun reaches the same end.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use bin_convert::config::Config;

mod world;
use world::*;

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
    // The node's consoles (its command line has console=tty1 console=ttyS0).
    for console in ["dev/tty1", "dev/ttyS0"] {
        write(&root.join(console), "");
    }
    if let Err(error) = bin_convert::runner::run_state(system, files, config, State::Start) {
        panic!("START failed: {error:#}");
    }

    check_start_result(&root, config, &iso, &xva);
    // Every step's begin and end on both consoles, in order, between the
    // state's begin and its end (README "Phase lines").
    let mut expected = vec!["xitc-phase: START - begin".to_owned()];
    for step in bin_convert::plan::steps(State::Start, config) {
        expected.push(format!("xitc-phase: START {} begin", step.name));
        expected.push(format!("xitc-phase: START {} ok", step.name));
    }
    expected.push("xitc-phase: START - done: next state SETUP_INSTALLER, reboot".to_owned());
    for console in ["dev/tty1", "dev/ttyS0"] {
        let text = std::fs::read_to_string(root.join(console)).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{console}");
        assert!(
            text.ends_with("\r\n"),
            "{console}: CR LF, as the kernel writes"
        );
    }
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
        "sfdisk -q --no-reread /dev/xvda\n<label: dos\nlabel-id: 0x5c1e2f3a\n",
        &format!("\n/dev/xvda2 : start={part2_start}, size="),
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
    // The real sfdisk wrote partition 2, numbered 2, the rest as it was.
    let table = partition_table(&root.join("xvda.img"));
    assert!(
        table.contains("label-id: 0x5c1e2f3a\n")
            && table.contains("/dev/xvda1 : start=        2048, size=     8390656, type=83\n")
            && table.contains(&format!("/dev/xvda2 : start=     {part2_start}, size=")),
        "{table}"
    );
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
