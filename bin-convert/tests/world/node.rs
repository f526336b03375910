//! The sandboxed node's system: its kernel command line, network and
//! programs, and its disk, whose partition table is real (a sparse image the
//! real sfdisk writes), in the layouts nodes have: one DOS partition on any
//! disk name, or Ubuntu 22.04's and 24.04's cloud images.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{KILL_PRELUDE, Sandbox, script, write};

/// A node in the sandbox: mounts, sysfs, routes, resolv.conf, and stand-ins
/// for df, ip, update-grub and grub-reboot first in PATH; its disk is
/// `xvda` (a Xen cloud's), DOS-labelled, the root `fs_type` on `partition`.
pub fn node_fixture(sandbox: &Sandbox, fs_type: &str, partition: u32) -> PathBuf {
    dos_node_fixture(sandbox, "xvda", fs_type, partition)
}

/// [`node_fixture`] on the disk `disk` (`xvda`, `sda`, `nvme0n1`).
pub fn dos_node_fixture(sandbox: &Sandbox, disk: &str, fs_type: &str, partition: u32) -> PathBuf {
    let root = sandbox.root.path();
    let bin = node_basics(root);
    let device = format!(
        "/dev/{}",
        bin_convert::disk::partition_name(disk, partition)
    );
    write(
        &root.join("proc/self/mounts"),
        &format!("rootfs / rootfs rw 0 0\n{device} / {fs_type} rw 0 0\n"),
    );
    sysfs_disk(root, "vbd-51712", disk, &[partition]);
    sandbox_disk(
        root,
        &bin,
        disk,
        &format!("label: dos\nlabel-id: 0x5c1e2f3a\n\n{device} : start=2048, type=83\n"),
        &format!(
            "{disk}\n{} 0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19 5c1e2f3a-0{partition} cloudimg-rootfs\n",
            device.trim_start_matches("/dev/")
        ),
    );
    bin
}

/// What every sandboxed node has but its disk: the kernel's command line,
/// this boot's network, and stand-ins for df, ip, update-grub, grub-reboot.
fn node_basics(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    write(
        &root.join("proc/cmdline"),
        "BOOT_IMAGE=/boot/vmlinuz-6.8.0-31-generic root=UUID=0b6a8b1e ro console=tty1 console=ttyS0\n",
    );
    write(
        &root.join("proc/net/route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
         eth0\t00000000\t01AB0FCB\t0003\t0\t0\t0\t00000000\n",
    );
    write(
        &root.join("sys/class/net/eth0/address"),
        "BC:76:4E:20:1A:2B\n",
    );
    write(
        &root.join("proc/cpuinfo"),
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx sse2 hypervisor\n",
    );
    write(&root.join("etc/resolv.conf"), "nameserver 127.0.0.53\n");
    write(
        &root.join("run/systemd/resolve/resolv.conf"),
        "nameserver 203.0.113.53\nnameserver 198.51.100.53\n",
    );
    let bin = root.join("stand-ins");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in [
        (
            "df",
            "printf '     Used    Avail\\n2147483648 30064771072\\n'",
        ),
        (
            "ip",
            "echo '2: eth0    inet 203.0.171.17/24 brd 203.0.171.255 scope global eth0'",
        ),
        ("update-grub", "exit 0"),
        ("grub-reboot", "exit 0"),
    ] {
        script(&bin.join(name), &format!("{KILL_PRELUDE}\n{body}"));
    }
    bin
}

/// Ubuntu's cloud images, as livecd-rootfs lays them out (README "Supported
/// images"): GPT on a virtio disk `vda`, BIOS boot 14 and the ESP 15
/// (`LABEL=UEFI` on /boot/efi) first, the root 1 last, grown to the disk's
/// end; 24.04 adds `/boot` on 16 (`LABEL=BOOT`), which holds the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudImage {
    Jammy,
    Noble,
}

/// The root's UUID in the cloud-image fixtures.
pub const CLOUD_ROOT_UUID: &str = "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19";

/// A node booted from `image`; `minimized` adds the image's
/// `40-force-partuuid.cfg` (GRUB's initrd-less first boot).
pub fn cloud_image_fixture(sandbox: &Sandbox, image: CloudImage, minimized: bool) -> PathBuf {
    let root = sandbox.root.path();
    let bin = node_basics(root);
    let noble = image == CloudImage::Noble;
    let mut mounts = "/dev/vda1 / ext4 rw,relatime,discard 0 0\n".to_owned();
    let mut fstab =
        "LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,commit=30,errors=remount-ro\t0 1\n".to_owned();
    let mut table = "label: gpt\nlabel-id: 6F5B0C7E-1B43-4E4A-9B8F-1C2D3E4F5A6B\n\n\
                     /dev/vda14 : start=2048, size=8192, type=21686148-6449-6E6F-744E-656564454649\n\
                     /dev/vda15 : start=10240, size=217088, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
        .to_owned();
    let mut identities = format!(
        "vda\nvda1 {CLOUD_ROOT_UUID} 9a1f2b3c-0001 cloudimg-rootfs\nvda14  9a1f2b3c-0014 \n\
         vda15 B2C4-77E1 9a1f2b3c-0015 UEFI\n"
    );
    let mut partitions = vec![1, 14, 15];
    let root_start = if noble {
        mounts.push_str("/dev/vda16 /boot ext4 rw,relatime 0 0\n");
        fstab.push_str("LABEL=BOOT\t/boot\text4\tdefaults\t0 2\n");
        table.push_str(
            "/dev/vda16 : start=227328, size=1869824, type=BC13C2FF-59E6-4262-A352-B275FD6F7172\n",
        );
        identities.push_str("vda16 9e1f0c2d-5b6a-4c3e-8f7a-1b2c3d4e5f60 9a1f2b3c-0016 BOOT\n");
        partitions.push(16);
        2_097_152
    } else {
        227_328
    };
    mounts.push_str("/dev/vda15 /boot/efi vfat rw,relatime,fmask=0077 0 0\n");
    fstab.push_str("LABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n");
    write(&root.join("proc/self/mounts"), &mounts);
    write(&root.join("etc/fstab"), &fstab);
    let _ = writeln!(
        table,
        "/dev/vda1 : start={root_start}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    );
    sysfs_disk(root, "pci0000:00/0000:00:04.0/virtio2", "vda", &partitions);
    sandbox_disk(root, &bin, "vda", &table, &identities);
    for file in [
        "vmlinuz-6.8.0-31-generic",
        "initrd.img-6.8.0-31-generic",
        "config-6.8.0-31-generic",
        "System.map-6.8.0-31-generic",
    ] {
        write(&root.join("boot").join(file), file);
    }
    if minimized {
        write(
            &root.join("etc/default/grub.d/40-force-partuuid.cfg"),
            "# Force the use of a partuuid, since it is the only thing we know\n\
             GRUB_FORCE_PARTUUID=9a1f2b3c-0001\n",
        );
    }
    bin
}

/// The size of a sandbox disk: what a real flavor has (sparse, so free).
pub const DISK_BYTES: u64 = 50 << 30;

/// A disk in sysfs as the kernel shows it: `/sys/devices/<bus>/block/<disk>`
/// with a `partition` file per partition, and the `/sys/class/block` links.
pub fn sysfs_disk(root: &Path, bus: &str, disk: &str, partitions: &[u32]) {
    let device = root.join(format!("sys/devices/{bus}/block/{disk}"));
    let class = root.join("sys/class/block");
    std::fs::create_dir_all(&class).unwrap();
    std::os::unix::fs::symlink(
        format!("../../devices/{bus}/block/{disk}"),
        class.join(disk),
    )
    .unwrap();
    for number in partitions {
        let name = bin_convert::disk::partition_name(disk, *number);
        write(
            &device.join(&name).join("partition"),
            &format!("{number}\n"),
        );
        std::os::unix::fs::symlink(
            format!("../../devices/{bus}/block/{disk}/{name}"),
            class.join(&name),
        )
        .unwrap();
    }
}

/// The node's disk `/dev/<disk>` in the sandbox: `<disk>.img`, a sparse image
/// of [`DISK_BYTES`] with a real partition table (`table`, sfdisk's input
/// naming `/dev/<disk>`), its size in sysfs ([`sysfs_disk`] made the disk),
/// and stand-ins that answer for it: `sfdisk` runs the real sfdisk on the
/// image (names mapped both ways; every call but `--version` and `--dump`
/// logged, its input too, in commands.log), `lsblk` prints `identities`
/// (`lsblk -rno NAME,UUID,PARTUUID,LABEL`).
pub fn sandbox_disk(root: &Path, bin: &Path, disk: &str, table: &str, identities: &str) {
    let image = root.join(format!("{disk}.img"));
    let file = std::fs::File::create(&image).unwrap();
    file.set_len(DISK_BYTES).unwrap();
    drop(file);
    let device = format!("/dev/{disk}");
    let part = partition_prefix(disk);
    write_table(root, disk, &[], table);
    let class = root.join("sys/class/block").join(disk);
    let sysfs = std::fs::canonicalize(&class).unwrap();
    write(&sysfs.join("size"), &format!("{}\n", DISK_BYTES / 512));
    write(&root.join("lsblk.out"), identities);
    let sfdisk = real_sfdisk().display().to_string();
    script(
        &bin.join("sfdisk"),
        &format!(
            r#"{KILL_PRELUDE}
img="$XITC_ROOT/{disk}.img"
[ "$1" = --version ] && exec {sfdisk} --version
for arg; do shift; [ "$arg" = {device} ] && arg="$img"; set -- "$@" "$arg"; done
case " $* " in *" --dump "*)
    {sfdisk} "$@" | sed -e "s|$img\([0-9]\)|{part}\1|g" -e "s|$img|{device}|g"; exit ;;
esac
echo "sfdisk $*" | sed "s|$img|{device}|g" >> "$XITC_ROOT/commands.log"
input=$(cat)
printf '<%s\n' "$input" >> "$XITC_ROOT/commands.log"
printf '%s\n' "$input" | sed -e "s|{part}\([0-9]\)|$img\1|g" -e "s|{device}|$img|g" | {sfdisk} "$@"
"#
        ),
    );
    script(
        &bin.join("lsblk"),
        &format!("{KILL_PRELUDE}\ncat \"$XITC_ROOT/lsblk.out\""),
    );
}

/// Runs the real sfdisk (`-q ARGS`) on the sandbox's `disk` image with
/// `input` (naming `/dev/<disk>` partitions) on its stdin.
pub fn write_table(root: &Path, disk: &str, args: &[&str], input: &str) {
    let image = root.join(format!("{disk}.img"));
    let part = partition_prefix(disk);
    let mut sfdisk = Command::new(real_sfdisk())
        .arg("-q")
        .args(args)
        .arg(&image)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk (apt-get install fdisk; scripts/install-test-deps)");
    let input = input.replace(&part, image.to_str().unwrap());
    std::io::Write::write_all(&mut sfdisk.stdin.take().unwrap(), input.as_bytes()).unwrap();
    assert!(sfdisk.wait().unwrap().success(), "sfdisk {args:?} <{input}");
}

/// How `disk`'s partitions are named, less their number: `/dev/vda`,
/// `/dev/nvme0n1p` (sfdisk names an image's partitions IMAGE1, IMAGE2).
fn partition_prefix(disk: &str) -> String {
    bin_convert::disk::partition_name(&format!("/dev/{disk}"), 0)
        .trim_end_matches('0')
        .to_owned()
}

/// The real sfdisk, which the stand-in runs.
pub fn real_sfdisk() -> PathBuf {
    ["/usr/sbin/sfdisk", "/sbin/sfdisk"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("sfdisk (apt-get install fdisk; scripts/install-test-deps)")
}

/// `sfdisk --dump` of a sandbox disk image (`vda.img`), named as the node
/// sees it (`/dev/vda`).
pub fn partition_table(image: &Path) -> String {
    let output = Command::new(real_sfdisk())
        .arg("--dump")
        .arg(image)
        .output()
        .unwrap();
    let disk = image.file_stem().unwrap().to_str().unwrap();
    let device = format!("/dev/{disk}");
    let part = partition_prefix(disk);
    let dump = String::from_utf8_lossy(&output.stdout).into_owned();
    let image = image.to_str().unwrap();
    dump.lines()
        .map(|line| match line.strip_prefix(image) {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                format!("{part}{rest}\n")
            }
            Some(rest) => format!("{device}{rest}\n"),
            None => format!("{}\n", line.replace(image, &device)),
        })
        .collect()
}
