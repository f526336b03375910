//! SETUP_INSTALLER's steps: in Ubuntu, after the boot-time shrink.
//! They check the shrink happened (and stop, state unchanged, when it did not),
//! put the ramdisk source on a new ext3 partition 2 behind the shrunk root (see
//! `start.rs` for why), save the cloud's network settings and the user's
//! authorized_keys for dom0, and boot the installer once with `grub-reboot`, so
//! that a failed install falls back to Ubuntu.

use std::path::Path;

use anyhow::Context as _;

use xitc_common::poll::SystemClock;

use crate::handover::hand_over;
use crate::preflight;
use crate::render::{INSTALLER_ENTRY, SHRINK_MARGIN_SECTORS};
use crate::waits;
use crate::work::Work;

/// Room on partition 2 beyond `xsinst/` itself.
const RAMDISK_SLACK: u64 = 64 << 20;

/// Where partition 2 is mounted while `xsinst/` is copied onto it.
const RAMDISK_MOUNT: &str = "/mnt/xitc-ramdisk";

/// `xvda` + 2 → `xvda2`; `nvme0n1` + 2 → `nvme0n1p2`.
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

fn sysfs_number(work: &Work<'_>, path: &str) -> anyhow::Result<u64> {
    work.system
        .read_to_string(path)
        .with_context(|| format!("reading {path}"))?
        .trim()
        .parse()
        .with_context(|| format!("{path} does not hold a number"))
}

pub fn inspect(work: &mut Work<'_>) -> anyhow::Result<()> {
    // The boot hook can start before DHCP has set the default route (where
    // network-online.target waits for nothing): the network is read once it
    // is there (found by the real-VM test).
    waits::default_route(
        work.system,
        &SystemClock,
        work.limits.wait(work.limits.network),
    )?;
    // The downloads are done: nothing more to fit.
    work.node = Some(preflight::check(work.system, work.config, &[])?);
    Ok(())
}

pub fn remove_shrink_hook(work: &mut Work<'_>) -> anyhow::Result<()> {
    for path in [
        "/usr/share/initramfs-tools/hooks/xitc-shrink",
        "/usr/share/initramfs-tools/scripts/local-premount/xitc-shrink",
    ] {
        work.system.remove_file(path)?;
    }
    work.system.run("update-initramfs", &["-u"]).map(drop)
}

pub fn verify_shrink(work: &mut Work<'_>) -> anyhow::Result<()> {
    let node = work.node()?.clone();
    let target_file = &work.files.shrink_target;
    let target: u64 = work
        .system
        .read_to_string(target_file)
        .with_context(|| format!("reading {}", target_file.display()))?
        .trim()
        .parse()
        .context("the shrink target is not a number")?;
    let header = work.system.run("dumpe2fs", &["-h", &node.root_device])?;
    let value = |key: &str| -> anyhow::Result<u64> {
        header
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim_start_matches(':').trim().parse().ok())
            .with_context(|| format!("dumpe2fs shows no {key} for {}", node.root_device))
    };
    let fs_bytes = value("Block count")? * value("Block size")?;
    let part = node.root_device.trim_start_matches("/dev/").to_owned();
    let part_bytes = sysfs_number(work, &format!("/sys/class/block/{part}/size"))? * 512;
    let most = fs_bytes + SHRINK_MARGIN_SECTORS * 512 + (1 << 20);
    if fs_bytes > target || part_bytes > most {
        anyhow::bail!(
            "the root was not shrunk (file system {fs_bytes} bytes, partition {part_bytes} bytes, \
             target {target} bytes): see the boot messages of the initramfs (xitc-shrink); \
             the state stays SETUP_INSTALLER and the node does not reboot"
        );
    }
    Ok(())
}

pub fn ramdisk_partition(work: &mut Work<'_>) -> anyhow::Result<()> {
    let node = work.node()?.clone();
    let disk_device = format!("/dev/{}", node.disk);
    let part1 = node.root_device.trim_start_matches("/dev/").to_owned();
    let part2 = partition_name(&node.disk, 2);
    let xsinst = &work.files.xsinst;
    let needed = work
        .system
        .list_files(xsinst)?
        .iter()
        .map(|(_, length)| length)
        .sum::<u64>()
        + RAMDISK_SLACK;
    if !work.system.exists(format!("/sys/class/block/{part2}")) {
        let start1 = sysfs_number(work, &format!("/sys/class/block/{part1}/start"))?;
        let size1 = sysfs_number(work, &format!("/sys/class/block/{part1}/size"))?;
        let start = (start1 + size1).div_ceil(2048) * 2048;
        let sectors = needed.div_ceil(512).div_ceil(2048) * 2048;
        let table = format!("start={start}, size={sectors}, type=83\n");
        work.system.run_with_input(
            "sfdisk",
            &["-q", "--append", "--no-reread", &disk_device],
            &table,
        )?;
        work.system
            .run("partx", &["-a", "--nr", "2", &disk_device])?;
    }
    let part2_device = format!("/dev/{part2}");
    work.system.run("mkfs.ext3", &["-q", "-F", &part2_device])?;
    work.system.create_dir_all(RAMDISK_MOUNT)?;
    work.system.run("mount", &[&part2_device, RAMDISK_MOUNT])?;
    let target = Path::new(RAMDISK_MOUNT).join("xsinst");
    let copied = work.system.create_dir_all(&target).and_then(|()| {
        for (name, _) in work.system.list_files(xsinst)? {
            work.system
                .copy_file(xsinst.join(&name), target.join(&name))?;
        }
        Ok(())
    });
    let unmounted = work.system.run("umount", &[RAMDISK_MOUNT]);
    copied?;
    unmounted.map(drop)
}

pub fn save_settings(work: &mut Work<'_>) -> anyhow::Result<()> {
    let node = work.node()?.clone();
    let xsinst = &work.files.xsinst;
    hand_over(
        work.system,
        &work.log,
        &node.network,
        xsinst,
        &xsinst.join("authorized_keys"),
    )
}

pub fn boot_installer_once(work: &mut Work<'_>) -> anyhow::Result<()> {
    work.system.run("grub-reboot", &[INSTALLER_ENTRY]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert_eq!(partition_name("xvda", 2), "xvda2");
        assert_eq!(partition_name("sda", 2), "sda2");
        assert_eq!(partition_name("nvme0n1", 2), "nvme0n1p2");
        assert_eq!(partition_name("mmcblk0", 2), "mmcblk0p2");
    }
}
