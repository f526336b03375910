//! The shell scripts xitc-convert writes, run for real and checked by shellcheck:
//! the installer's post-install script on a fake new root, and the boot-time
//! shrink on disk images: an MBR image with an ext
//! file system holding data in partition 1, reached through a loop device at the
//! partition's offset (this machine makes no partition devices). The script is
//! the one xitc-convert renders, run by sh, with the real e2fsprogs and sfdisk.
//! Needs root (losetup), as CI has.

use std::path::{Path, PathBuf};
use std::process::Command;

use bin_convert::render::{SHRINK_HOOK, SHRINK_MARGIN_SECTORS, Shrink, shrink_premount_script};
use xitc_common::phase::{Event, Phase};

const START_SECTOR: u64 = 2048;

fn run(program: &str, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command.args(args);
    xitc_test_support::stdout_of(command)
}

/// A disk image with partition 1 over all of it but the first MiB, an ext file
/// system in it with some files, and a loop device on the partition.
struct Disk {
    _dir: tempfile::TempDir,
    image: PathBuf,
    loop_device: String,
}

fn attach(image: &Path, start: u64, sectors: u64) -> String {
    run(
        "losetup",
        &[
            "-f",
            "--show",
            "-o",
            &(start * 512).to_string(),
            "--sizelimit",
            &(sectors * 512).to_string(),
            image.to_str().unwrap(),
        ],
    )
    .trim()
    .to_owned()
}

impl Disk {
    fn new(size_bytes: u64, fs_type: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        run(
            "truncate",
            &["-s", &size_bytes.to_string(), image.to_str().unwrap()],
        );
        let sectors = size_bytes / 512 - START_SECTOR;
        let table = format!("label: dos\nstart={START_SECTOR}, size={sectors}, type=83\n");
        let mut sfdisk = Command::new("sfdisk")
            .args(["-q", image.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut sfdisk.stdin.take().unwrap(), table.as_bytes()).unwrap();
        assert!(sfdisk.wait().unwrap().success());
        let loop_device = attach(&image, START_SECTOR, sectors);
        run(&format!("mkfs.{fs_type}"), &["-q", "-F", &loop_device]);
        Disk {
            _dir: dir,
            image,
            loop_device,
        }
    }

    /// What a reboot does: the partition device as the new table says.
    fn reboot(&mut self) {
        run("losetup", &["-d", &self.loop_device]);
        let (start, size) = self.partition();
        self.loop_device = attach(&self.image, start, size);
    }

    fn put(&self, name: &str, contents: &[u8]) {
        let local = self.image.with_file_name(name);
        std::fs::write(&local, contents).unwrap();
        run(
            "debugfs",
            &[
                "-w",
                "-R",
                &format!("write {} {name}", local.display()),
                &self.loop_device,
            ],
        );
    }

    fn get(&self, name: &str) -> Vec<u8> {
        let out = self.image.with_file_name(format!("{name}.out"));
        run(
            "debugfs",
            &[
                "-R",
                &format!("dump {name} {}", out.display()),
                &self.loop_device,
            ],
        );
        std::fs::read(out).unwrap()
    }

    /// Partition 1's (start, size) in sectors, from the table itself.
    fn partition(&self) -> (u64, u64) {
        let json = run("sfdisk", &["--json", self.image.to_str().unwrap()]);
        let field = |name: &str| -> u64 {
            let at = json.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
            json[at..]
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        (field("start"), field("size"))
    }

    fn fs_bytes(&self) -> u64 {
        let header = run("dumpe2fs", &["-h", &self.loop_device]);
        let value = |key: &str| -> u64 {
            header
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .unwrap()
                .trim_start_matches(':')
                .trim()
                .parse()
                .unwrap()
        };
        value("Block count") * value("Block size")
    }

    fn shrink_to(&self, target_bytes: u64) -> String {
        self.shrink_with_consoles(target_bytes).0
    }

    /// Runs the shrink; its output, and what it wrote on the boot's serial
    /// console (a file standing in for `/dev/ttyS0`; the boot's other
    /// console, tty1, is not there and is passed over).
    fn shrink_with_consoles(&self, target_bytes: u64) -> (String, String) {
        let script = shrink_premount_script(&Shrink {
            partition: self.loop_device.clone(),
            disk: self.image.to_str().unwrap().to_owned(),
            target_bytes,
        })
        .unwrap();
        let path = self.image.with_file_name("xitc-shrink");
        std::fs::write(&path, script).unwrap();
        let consoles = tempfile::tempdir().unwrap();
        let cmdline = consoles.path().join("cmdline");
        std::fs::write(
            &cmdline,
            "root=/dev/vda1 console=tty1 console=ttyS0,115200n8\n",
        )
        .unwrap();
        std::fs::write(consoles.path().join("ttyS0"), "").unwrap();
        // Never this machine's own consoles.
        let output = Command::new("sh")
            .arg(&path)
            .env("XITC_CMDLINE", &cmdline)
            .env("XITC_DEV", consoles.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the script must never fail the boot"
        );
        assert!(!consoles.path().join("tty1").exists());
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            std::fs::read_to_string(consoles.path().join("ttyS0")).unwrap(),
        )
    }

    fn assert_clean(&self) {
        let output = Command::new("e2fsck")
            .args(["-fn", &self.loop_device])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "e2fsck -fn: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .args(["-d", &self.loop_device])
            .status();
    }
}

fn data(seed: u8, length: usize) -> Vec<u8> {
    (0..length)
        .map(|i| u8::try_from((i * 31 + usize::from(seed)) % 251).unwrap())
        .collect()
}

fn check_shrink(fs_type: &str) {
    let mut disk = Disk::new(256 << 20, fs_type);
    let files = [("small", data(1, 1000)), ("big", data(2, 5 << 20))];
    for (name, contents) in &files {
        disk.put(name, contents);
    }
    let (log, console) = disk.shrink_with_consoles(64 << 20);
    assert!(log.contains("xitc-shrink: done"), "{log}");
    let phases: Vec<Phase> = console
        .lines()
        .map(|line| Phase::find(line).unwrap())
        .collect();
    assert_eq!(phases.len(), 2, "{console}");
    assert_eq!(phases[0], Phase::new("SHRINK", None, Event::Begin));
    assert_eq!(phases[1].event, Event::Ok, "{console}");
    assert_eq!(
        phases[1].detail.as_deref(),
        Some(
            format!(
                "the file system is {} KiB, partition 1 {} sectors",
                64 << 10,
                (64 << 20) / 512 + SHRINK_MARGIN_SECTORS
            )
            .as_str()
        )
    );
    disk.assert_clean();
    assert_eq!(disk.fs_bytes(), 64 << 20);
    let (start, size) = disk.partition();
    assert_eq!(start, START_SECTOR, "the partition must keep its start");
    assert_eq!(size, (64 << 20) / 512 + SHRINK_MARGIN_SECTORS);
    for (name, contents) in &files {
        assert_eq!(&disk.get(name), contents, "{name} changed");
    }
    // After the reboot, again: nothing more happens.
    disk.reboot();
    disk.assert_clean();
    let (again, console) = disk.shrink_with_consoles(64 << 20);
    assert!(again.contains("nothing to do"), "{again}");
    assert!(
        console.ends_with("xitc-phase: SHRINK - ok: partition 1 is already 133120 sectors\n"),
        "{console}"
    );
    assert_eq!(disk.partition(), (start, size));
    disk.assert_clean();
}

#[test]
fn ext4_with_data_is_shrunk_and_intact() {
    check_shrink("ext4");
}

#[test]
fn ext3_with_data_is_shrunk_and_intact() {
    check_shrink("ext3");
}

#[test]
fn a_target_below_the_data_is_refused_and_nothing_changes() {
    let disk = Disk::new(128 << 20, "ext4");
    disk.put("payload", &data(3, 40 << 20));
    let before = (disk.partition(), disk.fs_bytes());
    let (log, console) = disk.shrink_with_consoles(16 << 20);
    assert!(
        log.contains("it does not fit") && log.contains("left as it is"),
        "{log}"
    );
    let failed = Phase::find(console.lines().last().unwrap()).unwrap();
    assert_eq!(
        (failed.state.as_str(), failed.event),
        ("SHRINK", Event::Failed)
    );
    assert!(
        failed
            .detail
            .unwrap()
            .ends_with("it does not fit; the disk is left as it is"),
        "{console}"
    );
    assert_eq!((disk.partition(), disk.fs_bytes()), before);
    disk.assert_clean();
}

#[test]
fn disks_with_nine_digit_sector_counts() {
    // 60 GiB, sparse: 125,827,072 sectors.
    let disk = Disk::new(60 << 30, "ext4");
    assert!(disk.partition().1 >= 100_000_000);
    disk.put("file", &data(4, 4096));
    disk.shrink_to(2 << 30);
    disk.assert_clean();
    assert_eq!(
        disk.partition().1,
        (2u64 << 30) / 512 + SHRINK_MARGIN_SECTORS
    );
    assert_eq!(disk.get("file"), data(4, 4096));
}

#[test]
fn the_scripts_pass_shellcheck() {
    let dir = tempfile::tempdir().unwrap();
    let premount = dir.path().join("premount");
    std::fs::write(
        &premount,
        shrink_premount_script(&Shrink {
            partition: "/dev/xvda1".into(),
            disk: "/dev/xvda".into(),
            target_bytes: 8 << 30,
        })
        .unwrap(),
    )
    .unwrap();
    let hook = dir.path().join("hook");
    std::fs::write(&hook, SHRINK_HOOK).unwrap();
    for script in [&premount, &hook] {
        assert_shellcheck_clean(script, &["-s", "sh", "-e", "SC1091"]);
    }
}

/// Runs shellcheck with `options` on `script` (from the repository's root,
/// where `-x` finds sourced files) and fails on any finding.
fn assert_shellcheck_clean(script: &Path, options: &[&str]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = Command::new("shellcheck")
        .args(options)
        .arg(script)
        .current_dir(repo)
        .output()
        .expect("shellcheck (apt-get install shellcheck; scripts/install-test-deps)");
    assert!(
        output.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stdout)
    );
}

fn shellcheck(name: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, script).unwrap();
    assert_shellcheck_clean(&path, &["-s", "sh"]);
}

fn dom0_hook(ramdisk: &Path) -> bin_convert::render::Dom0Hook {
    bin_convert::render::Dom0Hook {
        ramdisk_dir: ramdisk.to_str().unwrap().to_owned(),
        ubuntu_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".into(),
        ubuntu_mount: "/mnt/ubuntu".into(),
        install_dir: "/opt/xenapi-in-the-cloud".into(),
    }
}

/// Runs the post-install script as the installer does: `sh SCRIPT NEW_ROOT`.
fn run_post_install(script: &Path, new_root: &Path) {
    let status = Command::new("sh")
        .arg(script)
        .arg(new_root)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_post_install_script_installs_the_dom0_hook_for_systemd_and_rc_local() {
    let ramdisk = tempfile::tempdir().unwrap();
    let hook = dom0_hook(ramdisk.path());
    let script = bin_convert::render::post_install_script(&hook);
    assert!(
        script.starts_with("#!/bin/sh\n"),
        "the installer needs exactly #!/bin/sh"
    );
    shellcheck("postinst.sh", &script);
    shellcheck(
        "xitc-dom0-boot",
        &bin_convert::render::dom0_boot_script(&hook),
    );
    for (name, text) in [
        ("cloud-settings.json", "{\"version\": 1}\n"),
        ("authorized_keys", "ssh-ed25519 AAAA user\n"),
        ("xitc-dom0-boot", "#!/bin/sh\n"),
    ] {
        std::fs::write(ramdisk.path().join(name), text).unwrap();
    }
    let postinst = ramdisk.path().join("postinst.sh");
    std::fs::write(&postinst, &script).unwrap();
    for systemd in [true, false] {
        let new_root = tempfile::tempdir().unwrap();
        let root = new_root.path();
        if systemd {
            std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        } else {
            std::fs::create_dir_all(root.join("etc/rc.d")).unwrap();
            std::fs::write(
                root.join("etc/rc.d/rc.local"),
                "#!/bin/sh\ntouch /var/lock/subsys/local\n",
            )
            .unwrap();
        }
        std::fs::create_dir_all(root.join("root")).unwrap();
        run_post_install(&postinst, root);
        assert_eq!(
            std::fs::read_to_string(root.join("root/cloud-settings.json")).unwrap(),
            "{\"version\": 1}\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("root/.ssh/authorized_keys")).unwrap(),
            "ssh-ed25519 AAAA user\n"
        );
        assert!(root.join("opt/xitc/xitc-dom0-boot").is_file());
        if systemd {
            let unit =
                std::fs::read_to_string(root.join("etc/systemd/system/xitc-convert.service"))
                    .unwrap();
            assert!(
                unit.contains("ExecStart=/opt/xitc/xitc-dom0-boot\n"),
                "{unit}"
            );
            assert!(
                root.join("etc/systemd/system/multi-user.target.wants/xitc-convert.service")
                    .exists()
            );
        } else {
            let rc_local = std::fs::read_to_string(root.join("etc/rc.d/rc.local")).unwrap();
            assert!(
                rc_local.ends_with("/opt/xitc/xitc-dom0-boot &\n"),
                "{rc_local}"
            );
        }
        let log = std::fs::read_to_string(root.join("root/xitc-postinst.log")).unwrap();
        assert!(
            log.contains("hook installed") || log.contains("unit installed"),
            "{log}"
        );
    }
}

/// On a UEFI install the firmware must find dom0's GRUB by the removable-media
/// path: XenServer's grub-efi installs only EFI/xenserver/grubx64.efi, so the
/// script copies it there; XCP-ng's copy (and a BIOS install, no ESP) is left
/// alone.
#[test]
fn the_post_install_script_gives_a_uefi_dom0_the_removable_media_path() {
    let ramdisk = tempfile::tempdir().unwrap();
    let postinst = ramdisk.path().join("postinst.sh");
    std::fs::write(
        &postinst,
        bin_convert::render::post_install_script(&dom0_hook(ramdisk.path())),
    )
    .unwrap();
    let run = |root: &Path| {
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        run_post_install(&postinst, root);
        std::fs::read_to_string(root.join("root/xitc-postinst.log")).unwrap()
    };
    // XenServer's package: only EFI/xenserver.
    let xenserver = tempfile::tempdir().unwrap();
    let esp = xenserver.path().join("boot/efi/EFI");
    std::fs::create_dir_all(esp.join("xenserver")).unwrap();
    std::fs::write(esp.join("xenserver/grubx64.efi"), "dom0's GRUB").unwrap();
    let log = run(xenserver.path());
    assert_eq!(
        std::fs::read_to_string(esp.join("BOOT/BOOTX64.EFI")).unwrap(),
        "dom0's GRUB"
    );
    assert!(log.contains("EFI/BOOT/BOOTX64.EFI added"), "{log}");
    // XCP-ng's: its own fallback copy stays.
    let xcp_ng = tempfile::tempdir().unwrap();
    let esp = xcp_ng.path().join("boot/efi/EFI");
    std::fs::create_dir_all(esp.join("xenserver")).unwrap();
    std::fs::create_dir_all(esp.join("BOOT")).unwrap();
    std::fs::write(esp.join("xenserver/grubx64.efi"), "dom0's GRUB").unwrap();
    std::fs::write(esp.join("BOOT/BOOTX64.EFI"), "XCP-ng's copy").unwrap();
    let log = run(xcp_ng.path());
    assert_eq!(
        std::fs::read_to_string(esp.join("BOOT/BOOTX64.EFI")).unwrap(),
        "XCP-ng's copy"
    );
    assert!(!log.contains("BOOTX64"), "{log}");
    // BIOS: no ESP, nothing made.
    let bios = tempfile::tempdir().unwrap();
    let log = run(bios.path());
    assert!(!bios.path().join("boot").exists());
    assert!(!log.contains("BOOTX64"), "{log}");
}

/// dom0's grub.cfg as host-installer writes it (python-libs
/// `Bootloader.writeGrub2`: serial lines, `set default=INDEX`, entries with
/// the Xen line first), with the `xe` entry (Xen on VGA only) and the
/// `xe-serial` one (`backend.buildBootLoaderMenu`).
fn dom0_grub_cfg(default: Option<&str>, serial_entry: bool) -> String {
    let mut cfg = String::from(
        "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n",
    );
    if let Some(default) = default {
        cfg.push_str("set default=");
        cfg.push_str(default);
        cfg.push('\n');
    }
    cfg.push_str(
        "set timeout=5\nmenuentry 'XCP-ng' {\n\tsearch --label --set root root-vgdorj\n\t\
         multiboot2 /boot/xen.gz dom0_mem=2048M,max:2048M console=vga vga=mode-0x0311\n\t\
         module2 /boot/vmlinuz-4.19-xen root=LABEL=root-vgdorj ro console=hvc0 console=tty0 quiet\n\t\
         module2 /boot/initrd-4.19-xen.img\n}\n",
    );
    if serial_entry {
        cfg.push_str(
            "menuentry 'XCP-ng (Serial)' {\n\tsearch --label --set root root-vgdorj\n\t\
             multiboot2 /boot/xen.gz com1=115200,8n1 console=com1,vga dom0_mem=2048M,max:2048M\n\t\
             module2 /boot/vmlinuz-4.19-xen root=LABEL=root-vgdorj ro console=tty0 console=hvc0\n\t\
             module2 /boot/initrd-4.19-xen.img\n}\n",
        );
    }
    cfg
}

/// dom0's boots show on the serial console: the post-install script leaves a
/// serial default alone (by index or title), makes the serial entry the
/// default where another one is (changing nothing else), and says so where
/// there is none.
#[test]
fn the_post_install_script_boots_dom0_on_the_serial_console() {
    let ramdisk = tempfile::tempdir().unwrap();
    let postinst = ramdisk.path().join("postinst.sh");
    std::fs::write(
        &postinst,
        bin_convert::render::post_install_script(&dom0_hook(ramdisk.path())),
    )
    .unwrap();
    // (grub.cfg where it is, its text before) -> its text after, the log says.
    let cases = [
        (
            "boot/grub/grub.cfg",
            dom0_grub_cfg(Some("1"), true),
            dom0_grub_cfg(Some("1"), true),
            "writes to the serial console",
        ),
        (
            "boot/grub/grub.cfg",
            dom0_grub_cfg(Some("'XCP-ng (Serial)'"), true),
            dom0_grub_cfg(Some("'XCP-ng (Serial)'"), true),
            "writes to the serial console",
        ),
        (
            "boot/grub/grub.cfg",
            dom0_grub_cfg(Some("0"), true),
            dom0_grub_cfg(Some("1"), true),
            "is now entry 1",
        ),
        (
            "boot/efi/EFI/xenserver/grub.cfg",
            dom0_grub_cfg(Some("\"XCP-ng\""), true),
            dom0_grub_cfg(Some("1"), true),
            "is now entry 1",
        ),
        (
            "boot/grub/grub.cfg",
            dom0_grub_cfg(None, true),
            format!("set default=1\n{}", dom0_grub_cfg(None, true)),
            "is now entry 1",
        ),
        (
            "boot/grub/grub.cfg",
            dom0_grub_cfg(Some("0"), false),
            dom0_grub_cfg(Some("0"), false),
            "no boot entry of dom0 writes to the serial console",
        ),
    ];
    for (path, before, after, said) in cases {
        let new_root = tempfile::tempdir().unwrap();
        let root = new_root.path();
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        let cfg = root.join(path);
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, &before).unwrap();
        run_post_install(&postinst, root);
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), after, "{before}");
        let log = std::fs::read_to_string(root.join("root/xitc-postinst.log")).unwrap();
        assert!(log.contains(said), "{before}\n{log}");
        assert!(!cfg.with_extension("cfg.xitc").exists());
    }
}

/// The project's own shell scripts (the test command, the real-VM test and its
/// stand-in installer, the benches) stay as clean as the ones xitc-convert
/// writes.
#[test]
fn the_projects_shell_scripts_pass_shellcheck() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut scripts: Vec<PathBuf> = Vec::new();
    for dir in [
        "scripts",
        "scripts/lib",
        "tests/vm",
        "tests/vm/installer",
        "tests/deb",
        "bench",
    ] {
        for entry in std::fs::read_dir(repo.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read(&path).unwrap_or_default();
            if path.is_file()
                && (text.starts_with(b"#!/bin/sh")
                    || text.starts_with(b"#!/usr/bin/env bash")
                    || path.extension().is_some_and(|ext| ext == "sh"))
            {
                scripts.push(path);
            }
        }
    }
    assert!(
        scripts
            .iter()
            .any(|path| path.ends_with("tests/vm/installer/init")),
        "found: {scripts:?}"
    );
    for script in &scripts {
        assert_shellcheck_clean(script, &["-x"]);
    }
}
