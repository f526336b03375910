//! The root file system and its disk, read from the live system:
//! `/proc/self/mounts`, `/sys/class/block`, `df`, and the version of sfdisk,
//! the partitioning tool the shrink and the ramdisk partition use.

use crate::system::System;

/// The device and type of the file system on `/` (the last one mounted there).
pub fn root_mount(mounts: &str) -> Option<(String, String)> {
    mounts.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let device = fields.next()?;
        let mount_point = fields.next()?;
        let fs_type = fields.next()?;
        (mount_point == "/" && fs_type != "rootfs").then(|| (device.to_owned(), fs_type.to_owned()))
    })
}

/// The disk and partition number of block device `name` (`xvda1` → `xvda`, 1),
/// from sysfs: a partition has a `partition` file, and its directory sits inside
/// its disk's (`/sys/class/block/xvda1` → `…/block/xvda/xvda1`). Names alone
/// cannot tell: `nvme0n1` is a disk, `nvme0n1p1` its partition.
pub fn partition_of(system: &System, name: &str) -> Option<(String, u32)> {
    let number: u32 = system
        .read_to_string(format!("/sys/class/block/{name}/partition"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let real = system
        .canonicalize(format!("/sys/class/block/{name}"))
        .ok()?;
    let disk = real.parent()?.file_name()?.to_str()?.to_owned();
    Some((disk, number))
}

/// `df -B1 --output=used,avail /`: a header line, then "USED AVAIL".
pub fn parse_df(output: &str) -> Option<(u64, u64)> {
    let mut fields = output.lines().nth(1)?.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// `sfdisk from util-linux 2.38.1` → (2, 38).
pub fn sfdisk_version(output: &str) -> Option<(u32, u32)> {
    let version = output.split_whitespace().last()?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let minor = minor.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfdisk_versions() {
        assert_eq!(
            sfdisk_version("sfdisk from util-linux 2.38.1\n"),
            Some((2, 38))
        );
        assert_eq!(
            sfdisk_version("sfdisk from util-linux 2.20.1"),
            Some((2, 20))
        );
        assert_eq!(
            sfdisk_version("sfdisk from util-linux 2.40-rc1"),
            Some((2, 40))
        );
        assert_eq!(sfdisk_version("sfdisk (util-linux) 2.26"), Some((2, 26)));
        assert_eq!(sfdisk_version("nonsense"), None);
    }

    #[test]
    fn the_root_mount_is_the_last_on_slash() {
        let mounts = "rootfs / rootfs rw 0 0\n/dev/xvda1 / ext4 rw,relatime 0 0\n\
                      proc /proc proc rw 0 0\n/dev/xvdb /mnt ext3 rw 0 0\n";
        assert_eq!(
            root_mount(mounts),
            Some(("/dev/xvda1".into(), "ext4".into()))
        );
        assert_eq!(root_mount("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn partitions_and_their_disks_come_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let devices = dir.path().join("sys/devices/virtual/block");
        let class = dir.path().join("sys/class/block");
        std::fs::create_dir_all(&class).unwrap();
        for (disk, partition, number) in [("xvda", "xvda1", 1), ("nvme0n1", "nvme0n1p2", 2)] {
            let part_dir = devices.join(disk).join(partition);
            std::fs::create_dir_all(&part_dir).unwrap();
            std::fs::write(part_dir.join("partition"), format!("{number}\n")).unwrap();
            std::os::unix::fs::symlink(
                format!("../../devices/virtual/block/{disk}/{partition}"),
                class.join(partition),
            )
            .unwrap();
            std::os::unix::fs::symlink(
                format!("../../devices/virtual/block/{disk}"),
                class.join(disk),
            )
            .unwrap();
            assert_eq!(
                partition_of(&system, partition),
                Some((disk.to_owned(), number))
            );
            assert_eq!(partition_of(&system, disk), None, "{disk} is a whole disk");
        }
        assert_eq!(partition_of(&system, "sdz9"), None);
    }

    #[test]
    fn space_from_df() {
        assert_eq!(
            parse_df("     Used    Avail\n1073741824 9663676416\n"),
            Some((1 << 30, 9_663_676_416))
        );
        assert_eq!(parse_df("Used Avail\n"), None);
    }
}
