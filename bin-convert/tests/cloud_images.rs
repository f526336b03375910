//! Today's Ubuntu cloud images in the sandbox (README "Supported images"):
//! GPT on a virtio disk, BIOS boot 14 and the ESP 15 before the root 1, on
//! 24.04 `/boot` on 16; minimized images with GRUB's initrd-less first boot.
//! The partition tables are real (sparse images written by the real sfdisk,
//! [`world::sandbox_disk`]); Ubuntu's initrd-less GRUB cannot run here, so
//! what xitc-convert does about it is checked on the files it writes.
//! Layouts it does not handle are refused by `--check` and START's preflight,
//! before any change, each with its reason.

use std::path::Path;

use bin_convert::state::State;

mod world;
use world::*;

/// `--check` on a sandboxed node; its output.
fn check(sandbox: &Sandbox, bin: &Path) -> std::process::Output {
    std::os::unix::fs::chown(sandbox.root.path().join("proc/self"), Some(0), Some(0))
        .expect("this test runs as root (as CI does)");
    sandbox
        .convert()
        .env("PATH", path_with(bin))
        .args(["--check", "--iso-url", LOOPBACK_ISO, "pw", URL, "L"])
        .output()
        .unwrap()
}

#[test]
fn check_shows_the_plan_for_each_cloud_image() {
    for (image, minimized, layout) in [
        (
            CloudImage::Jammy,
            false,
            "GPT, 3 partitions, the root on 1; fstab lines for /boot/efi made optional before \
             the install (the installer deletes their partitions); installer disk vda (the \
             node's /dev/vda)",
        ),
        (
            CloudImage::Noble,
            true,
            "GPT, 4 partitions, the root on 1; /boot on partition 16: kernels copied to \
             partition 1; fstab lines for /boot, /boot/efi made optional before the install \
             (the installer deletes their partitions); GRUB_FORCE_PARTUUID: initrd-less boot \
             off for the shrink boot, restored after; installer disk vda (the node's /dev/vda)",
        ),
    ] {
        let sandbox = Sandbox::new();
        let bin = cloud_image_fixture(&sandbox, image, minimized);
        let before = sandbox.tree();
        let output = check(&sandbox, &bin);
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{image:?}: {stderr}");
        assert!(
            stdout.contains(&format!("\n  layout: {layout}\n")),
            "{image:?}: {stdout}"
        );
        assert!(
            stdout.contains(
                "\n  installers: XCP-ng 8.x, XenServer 8; not XenServer's main line (it installs \
                 on UEFI only), not XenServer 6.x and 7.x (no virtio driver)\n"
            ),
            "{stdout}"
        );
        // --dry-run shows the same plan.
        let output = sandbox
            .convert()
            .env("PATH", path_with(&bin))
            .args(["--dry-run", "pw", URL, "L"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        assert!(
            stdout.contains(&format!("\nlayout: {layout}\n")),
            "{stdout}"
        );
        assert_eq!(
            sandbox.tree(),
            before,
            "{image:?}: --check or --dry-run changed something"
        );
    }
}

#[test]
fn the_installer_names_the_disk_as_its_dom0_sees_it() {
    for (disk, installer, why) in [
        (
            "xvda",
            "sda",
            "the node's /dev/xvda, emulated hardware to the installer",
        ),
        ("sda", "sda", "the node's /dev/sda"),
        ("nvme0n1", "nvme0n1", "the node's /dev/nvme0n1"),
    ] {
        let sandbox = Sandbox::new();
        let bin = dos_node_fixture(&sandbox, disk, "ext4", 1);
        let output = check(&sandbox, &bin);
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{disk}: {stderr}");
        assert!(
            stdout.contains(&format!("; installer disk {installer} ({why})\n")),
            "{disk}: {stdout}"
        );
    }
}

#[test]
fn an_nvme_node_passes_its_partition_2_to_the_installer() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
        dos_node_fixture(sandbox, "nvme0n1", "ext4", 1)
    });
    let root = world.sandbox.root.path().to_path_buf();
    bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
        .unwrap();
    let entry = std::fs::read_to_string(root.join("etc/grub.d/45_xitc-installer")).unwrap();
    assert!(entry.contains(" make-ramdisk=/dev/nvme0n1p2 "), "{entry}");
    setup_installer_world_on(&root, &world.bin, "nvme0n1");
    std::fs::write(world.bin.join("fs-blocks"), "1048576\n").unwrap();
    bin_convert::runner::run_state(
        &world.system,
        &world.files,
        &world.config,
        State::SetupInstaller,
    )
    .unwrap();
    let table = partition_table(&root.join("nvme0n1.img"));
    assert!(table.contains("\n/dev/nvme0n1p2 : start="), "{table}");
    let commands = std::fs::read_to_string(root.join("commands.log")).unwrap();
    assert!(
        commands.contains("mkfs.ext3 -q -F /dev/nvme0n1p2\n"),
        "{commands}"
    );
}

#[test]
fn layouts_it_does_not_handle_are_refused_before_any_change() {
    // (what, the change to a 24.04 node, the reason)
    type Change = fn(&Path);
    let cases: [(&str, Change, &str); 4] = [
        (
            "an LVM root",
            |root| {
                write(
                    &root.join("proc/self/mounts"),
                    "/dev/mapper/vg0-root / ext4 rw 0 0\n/dev/vda16 /boot ext4 rw 0 0\n",
                );
            },
            "/ is on /dev/mapper/vg0-root, which is not a partition of a disk",
        ),
        (
            "a partition 2",
            |root| {
                // The BIOS boot partition numbered 2 instead of 14.
                let table =
                    partition_table(&root.join("vda.img")).replace("/dev/vda14", "/dev/vda2");
                write_table(root, "vda", &[], &table);
            },
            "/dev/vda has a partition 2: xitc-convert puts the installer's files on a new \
             partition 2",
        ),
        (
            "a partition behind the root",
            |root| {
                // The root ends mid-disk, a swap partition 5 after it.
                let table: String = partition_table(&root.join("vda.img"))
                    .lines()
                    .map(|line| {
                        if line.starts_with("/dev/vda1 ") {
                            "/dev/vda1 : start=2097152, size=50000000, \
                             type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n\
                             /dev/vda5 : start=60000000, size=2048, \
                             type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n"
                                .to_owned()
                        } else {
                            format!("{line}\n")
                        }
                    })
                    .collect();
                write_table(root, "vda", &[], &table);
            },
            "partition 5 lies behind partition 1 on /dev/vda",
        ),
        (
            "/boot on another disk",
            |root| {
                sysfs_disk(root, "pci0000:00/0000:00:05.0/virtio3", "vdb", &[1]);
                write(
                    &root.join("proc/self/mounts"),
                    "/dev/vda1 / ext4 rw 0 0\n/dev/vdb1 /boot ext4 rw 0 0\n",
                );
            },
            "/boot is on /dev/vdb1, another disk than the root's (vda)",
        ),
    ];
    for (what, change, reason) in cases {
        let sandbox = Sandbox::new();
        let bin = cloud_image_fixture(&sandbox, CloudImage::Noble, false);
        change(sandbox.root.path());
        let before = sandbox.tree();
        let output = check(&sandbox, &bin);
        xitc_test_support::assert_one_line_error(what, TOOL, &output, 2, reason);
        assert!(
            text(&output)
                .1
                .contains("the node cannot be converted, nothing was changed"),
            "{what}"
        );
        assert_eq!(sandbox.tree(), before, "{what}: something changed");
    }
}

/// A 24.04 node booted by UEFI (Secure Boot off, GRUB's x86_64-efi modules on
/// disk): START's entry boots Xen by multiboot2, and the answerfile asks for
/// no UEFI boot entry.
#[test]
fn start_on_a_uefi_node_boots_xen_by_multiboot2_and_writes_no_boot_entry() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
        cloud_image_fixture(sandbox, CloudImage::Noble, false)
    });
    let root = world.sandbox.root.path().to_path_buf();
    std::fs::create_dir_all(root.join("sys/firmware/efi/efivars")).unwrap();
    write(
        &root.join("boot/grub/x86_64-efi/multiboot2.mod"),
        "GRUB's module",
    );
    if let Err(error) =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
    {
        panic!("START failed: {error:#}");
    }
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let entry = read("etc/grub.d/45_xitc-installer");
    for line in [
        "\n    insmod multiboot2\n",
        &format!("\n    multiboot2 {INSTALL}/installer/xen.gz "),
        &format!("\n    module2 {INSTALL}/installer/vmlinuz "),
        &format!("\n    module2 {INSTALL}/installer/install.img\n"),
    ] {
        assert!(entry.contains(line), "{line:?} not in {entry}");
    }
    let install = INSTALL.trim_start_matches('/');
    let answerfile = read(&format!("{install}/xsinst/answerfile.xml"));
    assert!(
        answerfile.contains("<bootloader write-boot-entry=\"false\">grub2</bootloader>"),
        "{answerfile}"
    );
}

// One story on a 24.04 minimized image, as the node lives it: long by nature.
#[allow(clippy::too_many_lines)]
#[test]
fn start_and_setup_installer_on_a_24_04_image() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
        cloud_image_fixture(sandbox, CloudImage::Noble, true)
    });
    let root = world.sandbox.root.path().to_path_buf();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    // A line naming its partition by device, as hand-made ones do.
    let fstab = read("etc/fstab") + "/dev/vda14 none swap sw 0 0\n";
    write(&root.join("etc/fstab"), &fstab);
    let table_before = partition_table(&root.join("vda.img"));
    if let Err(error) =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
    {
        panic!("START failed: {error:#}");
    }
    // The shrink boot boots with the initrd.
    assert_eq!(
        read("etc/default/grub.d/99-xitc-convert.cfg"),
        "# xitc-convert: boot with the initrd, where the shrink runs; removed after it\n\
         GRUB_FORCE_PARTUUID=\n"
    );
    let install = INSTALL.trim_start_matches('/');
    let answerfile = read(&format!("{install}/xsinst/answerfile.xml"));
    assert!(
        answerfile.contains("<primary-disk preserve-first-partition=\"true\">vda</primary-disk>"),
        "{answerfile}"
    );
    let entry = read("etc/grub.d/45_xitc-installer");
    assert!(entry.contains(" make-ramdisk=/dev/vda2 "), "{entry}");
    assert_eq!(
        partition_table(&root.join("vda.img")),
        table_before,
        "START changed the partition table"
    );

    // The reboot: the initramfs shrank the root.
    setup_installer_world_on(&root, &world.bin, "vda");
    std::fs::write(world.bin.join("fs-blocks"), "1048576\n").unwrap(); // 4 GiB
    std::fs::write(root.join("commands.log"), "").unwrap();
    if let Err(error) = bin_convert::runner::run_state(
        &world.system,
        &world.files,
        &world.config,
        State::SetupInstaller,
    ) {
        panic!("SETUP_INSTALLER failed: {error:#}");
    }
    assert_eq!(
        read(&format!("{install}/xitc-convert.state")),
        "XENSERVER_FIRSTBOOT\n"
    );
    // Partition 2 numbered 2, typed for GPT, behind the shrunk root; the
    // rest of the table (ids, the other partitions) as it was.
    // Compared with sfdisk's column padding folded.
    let table = partition_table(&root.join("vda.img"))
        .split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace("= ", "=");
    let root_end = 2_097_152 + (4u64 << 30) / 512 + 2048;
    let part2_start = root_end.div_ceil(2048) * 2048;
    assert!(
        table.contains(&format!(
            "/dev/vda2 : start={part2_start}, size=133120, \
             type=0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        )),
        "{table}"
    );
    for kept in [
        "label-id: 6F5B0C7E-1B43-4E4A-9B8F-1C2D3E4F5A6B",
        "/dev/vda14 : start=2048, size=8192,",
        "/dev/vda15 : start=10240, size=217088,",
        "/dev/vda16 : start=227328, size=1869824,",
    ] {
        assert!(table.contains(kept), "{kept:?} not in {table}");
    }
    // The kernels, beneath the /boot mount, on partition 1.
    for file in [
        "vmlinuz-6.8.0-31-generic",
        "initrd.img-6.8.0-31-generic",
        "config-6.8.0-31-generic",
        "System.map-6.8.0-31-generic",
    ] {
        assert_eq!(read(&format!("mnt/xitc-root/boot/{file}")), file);
    }
    let commands = read("commands.log");
    for expected in [
        "mount --bind / /mnt/xitc-root\n",
        "umount /mnt/xitc-root\n",
        "mkfs.ext3 -q -F /dev/vda2\n",
        "grub-reboot XenServer installer\n",
    ] {
        assert!(
            commands.contains(expected),
            "{expected:?} not in {commands}"
        );
    }
    // fstab: the deleted partitions' lines optional, the original kept.
    assert_eq!(
        read("etc/fstab"),
        "LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,commit=30,errors=remount-ro\t0 1\n\
         # xitc-convert: optional until the installer deletes its partition (then commented out):\n\
         LABEL=BOOT\t/boot\text4\tdefaults,nofail\t0 2\n\
         # xitc-convert: optional until the installer deletes its partition (then commented out):\n\
         LABEL=UEFI\t/boot/efi\tvfat\tumask=0077,nofail\t0 1\n\
         # xitc-convert: its partition is deleted by the installer: /dev/vda14 none swap sw 0 0\n"
    );
    assert!(read("etc/fstab.xitc-convert-before").contains("\nLABEL=BOOT\t/boot"));
    // GRUB's initrd-less boot is back, as the image had it.
    assert!(!root.join("etc/default/grub.d/99-xitc-convert.cfg").exists());
    assert!(
        root.join("etc/default/grub.d/40-force-partuuid.cfg")
            .exists()
    );
}

#[test]
fn a_failed_shrink_keeps_its_hook_for_the_next_boot() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    let world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
        cloud_image_fixture(sandbox, CloudImage::Jammy, false)
    });
    let root = world.sandbox.root.path().to_path_buf();
    bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
        .unwrap();
    setup_installer_world_on(&root, &world.bin, "vda");
    std::fs::write(world.bin.join("fs-blocks"), "2621440\n").unwrap(); // 10 GiB: not shrunk
    let error = bin_convert::runner::run_state(
        &world.system,
        &world.files,
        &world.config,
        State::SetupInstaller,
    )
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("the root was not shrunk"),
        "{error:#}"
    );
    for hook in [
        "usr/share/initramfs-tools/hooks/xitc-shrink",
        "usr/share/initramfs-tools/scripts/local-premount/xitc-shrink",
    ] {
        assert!(root.join(hook).exists(), "{hook} was removed");
    }
    assert!(!partition_table(&root.join("vda.img")).contains("/dev/vda2"));
}

#[test]
fn an_installer_that_cannot_see_a_virtio_disk_is_refused_before_the_disk_is_touched() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let iso = installer_iso_of(
        scratch.path(),
        "[general]\nfamily = XenServer\nversion = 7.1.2\n",
    );
    std::fs::write(nginx.root().join("installer.iso"), &iso).unwrap();
    let xva = xitc_test_support::appliance_xva(xitc_common::xva::DomainType::Hvm);
    std::fs::write(nginx.root().join("appliance.xva"), &xva).unwrap();
    let world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
        cloud_image_fixture(sandbox, CloudImage::Jammy, false)
    });
    let root = world.sandbox.root.path().to_path_buf();
    let error =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
            .unwrap_err();
    assert!(
        format!("{error:#}").contains(
            "XenServer 7.1.2's installer has no virtio driver and cannot see this node's disk \
             (/dev/vda): use XCP-ng 8.x or XenServer 8 (--iso-url)"
        ),
        "{error:#}"
    );
    assert_eq!(
        xitc_common::exit::kind_of(&error),
        xitc_common::exit::Kind::Usage
    );
    for untouched in [
        "etc/grub.d/45_xitc-installer",
        "usr/share/initramfs-tools/hooks/xitc-shrink",
    ] {
        assert!(!root.join(untouched).exists(), "{untouched} was written");
    }
    assert_eq!(
        std::fs::read_to_string(
            root.join(INSTALL.trim_start_matches('/'))
                .join("xitc-convert.state")
        )
        .unwrap_or_else(|_| "START\n".into()),
        "START\n"
    );
}
