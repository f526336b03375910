//! SETUP_INSTALLER's steps: in Ubuntu, after the boot-time shrink.
//! They check the shrink happened (and stop, state unchanged and the shrink
//! hook still in place for the next boot, when it did not), put the ramdisk
//! source on a new ext3 partition 2 behind the shrunk root (see `start.rs` for
//! why), save the cloud's network settings and the user's authorized_keys for
//! dom0, ready Ubuntu for losing every partition but 1 ([`crate::layout`]:
//! kernels onto partition 1, fstab), and boot the installer once with
//! `grub-reboot`, so that a failed install falls back to Ubuntu.

use std::path::Path;

use anyhow::Context as _;

use xitc_common::poll::SystemClock;

use crate::disk::partition_name;
use crate::handover::hand_over;
use crate::paths::INITRD_BOOT_DROP_IN;
use crate::preflight;
use crate::render::fstab::{FSTAB_BEFORE, FSTAB_OPTIONAL};
use crate::render::{self, INSTALLER_ENTRY, SHRINK_MARGIN_SECTORS};
use crate::waits;
use crate::work::Work;

/// Room on partition 2 beyond `xsinst/` itself.
const RAMDISK_SLACK: u64 = 64 << 20;

/// Where partition 2 is mounted while `xsinst/` is copied onto it.
const RAMDISK_MOUNT: &str = "/mnt/xitc-ramdisk";

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
    work.node = Some(preflight::check(
        work.system,
        work.config,
        &[],
        preflight::Stage::SetupInstaller,
    )?);
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
    let part2 = partition_name(&node.disk, 2);
    let xsinst = &work.files.xsinst;
    let needed = work
        .system
        .list_files(xsinst)?
        .iter()
        .map(|(_, length)| length)
        .sum::<u64>()
        + RAMDISK_SLACK;
    let table = &node.layout.table;
    if table.partition(2).is_none() {
        let root = table
            .partition(1)
            .context("the partition table has no partition 1")?;
        let start = (root.start + root.size).div_ceil(2048) * 2048;
        let sectors = needed.div_ceil(512).div_ceil(2048) * 2048;
        // The whole table written back with partition 2 added, numbered 2
        // on any label ([`crate::disk::PartitionTable`] says why).
        let dump = table.with_partition(&format!("/dev/{part2}"), start, sectors);
        work.system
            .run_with_input("sfdisk", &["-q", "--no-reread", &disk_device], &dump)?;
    }
    if !work.system.exists(format!("/sys/class/block/{part2}")) {
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

/// Where partition 1 is bind-mounted to reach its own `/boot` directory,
/// which a separate `/boot` mount hides.
const ROOT_BENEATH: &str = "/mnt/xitc-root";

/// A separate `/boot` on a partition the installer deletes: its kernels,
/// initrds and their companions are copied into partition 1's own `/boot`
/// (beneath the mount), where dom0's Ubuntu entry and Ubuntu itself, once the
/// fstab step has dropped the mount, find them.
pub fn copy_kernels(work: &mut Work<'_>) -> anyhow::Result<()> {
    let Some(number) = work.node()?.layout.boot_partition else {
        return Ok(());
    };
    work.system.create_dir_all(ROOT_BENEATH)?;
    if work
        .system
        .run("mountpoint", &["-q", ROOT_BENEATH])
        .is_err()
    {
        work.system.run("mount", &["--bind", "/", ROOT_BENEATH])?;
    }
    let beneath = Path::new(ROOT_BENEATH).join("boot");
    let copied = work.system.create_dir_all(&beneath).and_then(|()| {
        let mut count = 0;
        for (name, _) in work.system.list_files("/boot")? {
            let Some(text) = name.to_str() else { continue };
            if ["vmlinuz-", "initrd.img-", "config-", "System.map-"]
                .iter()
                .any(|prefix| text.starts_with(prefix))
            {
                work.system
                    .copy_file(Path::new("/boot").join(&name), beneath.join(&name))?;
                count += 1;
            }
        }
        Ok(count)
    });
    let unmounted = work.system.run("umount", &[ROOT_BENEATH]);
    let count = copied?;
    unmounted?;
    work.log.line(&format!(
        "/boot is on partition {number}, which the installer deletes: {count} kernel files \
         copied to partition 1's own /boot"
    ));
    Ok(())
}

/// Makes the fstab lines of partitions the installer deletes harmless
/// ([`render::fstab::make_optional`]; the original is kept in
/// [`FSTAB_BEFORE`]): Ubuntu's boots after the install must neither wait for
/// them nor mount a partition XenServer made in their place.
pub fn fstab(work: &mut Work<'_>) -> anyhow::Result<()> {
    let doomed = work.node()?.layout.doomed.clone();
    if doomed.is_empty() {
        return Ok(());
    }
    let text = work
        .system
        .read_to_string("/etc/fstab")
        .context("reading /etc/fstab")?;
    if !work.system.exists(FSTAB_BEFORE) {
        work.system
            .write_atomic(FSTAB_BEFORE, text.as_bytes(), 0o644)?;
    }
    let changed = render::fstab::make_optional(&text, &doomed);
    work.system
        .write_atomic("/etc/fstab", changed.as_bytes(), 0o644)?;
    let points: Vec<&str> = doomed
        .iter()
        .map(|entry| entry.mount_point.as_str())
        .collect();
    work.log.line(&format!(
        "fstab: {} made optional ({FSTAB_OPTIONAL}; named by device: commented out): the \
         installer deletes their partitions; dom0 comments them out after the install; the \
         original is {FSTAB_BEFORE}",
        points.join(", ")
    ));
    Ok(())
}

/// Gives GRUB back its initrd-less first boot, where START turned it off
/// for the shrink.
pub fn restore_initrd_boot(work: &mut Work<'_>) -> anyhow::Result<()> {
    if !work.system.exists(INITRD_BOOT_DROP_IN) {
        return Ok(());
    }
    work.system.remove_file(INITRD_BOOT_DROP_IN)?;
    work.system.run("update-grub", &[]).map(drop)
}

pub fn boot_installer_once(work: &mut Work<'_>) -> anyhow::Result<()> {
    work.system.run("grub-reboot", &[INSTALLER_ENTRY]).map(drop)
}
