//! UBUNTU's steps: every boot of Ubuntu after the install (dom0's boot loader
//! starts it; README "Snapshots" says why). Ubuntu captures the network the
//! cloud gave this boot, hands it and the user's keys to dom0, keeps its own
//! GRUB packages off dom0's boot sector, and makes XenServer the next boot.

use std::path::PathBuf;

use anyhow::Context as _;
use xitc_common::poll::SystemClock;

use crate::bootloader;
use crate::disk::{Identity, LSBLK_COLUMNS, parse_lsblk};
use crate::handover::hand_over;
use crate::network;
use crate::paths::DOM0_MOUNT;
use crate::waits;
use crate::work::Work;

/// Mounts dom0's root file system at [`DOM0_MOUNT`], found by its label
/// (XenServer labels it `root-…`), not by a device name; and where dom0 was
/// installed by UEFI, its ESP (vfat, labelled `BOOT-…`: host-installer's
/// `bootfs_label`) at `boot/efi` under it, where dom0 mounts it and its GRUB
/// configuration lives ([`bootloader::detect`]).
pub fn mount_dom0(work: &mut Work<'_>) -> anyhow::Result<()> {
    let identities = parse_lsblk(&work.system.run("lsblk", &["-rno", LSBLK_COLUMNS])?);
    let find = |wanted: &dyn Fn(&Identity) -> bool| {
        identities
            .iter()
            .find(|identity| wanted(identity))
            .map(|identity| format!("/dev/{}", identity.name))
    };
    if work.system.run("mountpoint", &["-q", DOM0_MOUNT]).is_err() {
        let root = find(&|identity| identity.label.starts_with("root-"))
            .context("no file system labelled root-… (dom0's root) was found")?;
        work.system.create_dir_all(DOM0_MOUNT)?;
        work.system.run("mount", &[&root, DOM0_MOUNT])?;
    }
    let Some(esp) =
        find(&|identity| identity.fs_type == "vfat" && identity.label.starts_with("BOOT-"))
    else {
        return Ok(());
    };
    let esp_mount = format!("{DOM0_MOUNT}/boot/efi");
    if work.system.run("mountpoint", &["-q", &esp_mount]).is_ok() {
        return Ok(());
    }
    work.system.create_dir_all(&esp_mount)?;
    work.system.run("mount", &[&esp, &esp_mount]).map(drop)
}

/// Waits until there is a default route and the appliance's host name
/// resolves (the cloud's network is up), [`crate::work::Limits::network`] at
/// most. Nothing is pinged.
pub fn wait_network(work: &mut Work<'_>) -> anyhow::Result<()> {
    waits::network_up(
        work.system,
        &SystemClock,
        work.limits.wait(work.limits.network),
        &work.config.appliance_url,
    )
}

/// The network settings the cloud gave this boot, and the user's
/// authorized_keys, into dom0 (for the XENSERVER state to apply).
pub fn save_settings(work: &mut Work<'_>) -> anyhow::Result<()> {
    let network = network::network(work.system).map_err(|why| anyhow::anyhow!(why))?;
    let root = PathBuf::from(format!("{DOM0_MOUNT}/root"));
    work.system.create_dir_all(root.join(".ssh"))?;
    hand_over(
        work.system,
        &work.log,
        &network,
        &root,
        &root.join(".ssh/authorized_keys"),
    )
}

/// What keeps Ubuntu's GRUB packages off the boot sector (debconf): no
/// `grub-install` to any device when grub-pc is upgraded, and no boot entry
/// pushed to the front of the firmware's boot order when grub-efi is.
pub const KEEP_OFF_THE_BOOT_SECTOR: &str = "\
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
grub-efi-amd64 grub2/update_nvram boolean false
";

/// Booted by dom0's boot loader: the boot sector is dom0's now. An
/// upgrade of Ubuntu's grub-pc would otherwise `grub-install` Ubuntu's GRUB
/// over it, and from then on every boot would start Ubuntu, whose UBUNTU state
/// would make XenServer next in a boot loader nothing runs: a node that never
/// reaches XenServer again. Done here, not before the install: if the install
/// fails, Ubuntu's GRUB stays in the boot sector and must keep being updated
/// with its modules.
pub fn keep_off_the_boot_sector(work: &mut Work<'_>) -> anyhow::Result<()> {
    work.system
        .run_with_input("debconf-set-selections", &[], KEEP_OFF_THE_BOOT_SECTOR)
        .map(drop)
}

/// dom0's boot loader, on its mounted root, boots XenServer next.
pub fn boot_xenserver_next(work: &mut Work<'_>) -> anyhow::Result<()> {
    bootloader::detect(work.system, DOM0_MOUNT)?.set_default(work.system, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::with_test_work;

    #[test]
    fn dom0_boots_xenserver_next_after_ubuntu() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let entry = bootloader::UbuntuEntry {
            kernel: "/boot/vmlinuz-ubuntu".to_owned(),
            initrd: "/boot/initrd-ubuntu".to_owned(),
            ubuntu: bootloader::UbuntuBoot {
                root_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".to_owned(),
                args: String::new(),
            },
            files_uuid: Some("5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b".to_owned()),
        };
        let grub =
            "set default=0\nset timeout=5\nmenuentry 'XCP-ng' {\n\tmultiboot2 /boot/xen.gz\n}\n";
        let ubuntu_next =
            bootloader::grub_default(&bootloader::grub_add(grub, &entry).unwrap(), true).unwrap();
        assert!(ubuntu_next.contains("set default=\"Ubuntu (xitc-convert)\"\n"));
        let config = root.join("mnt/dom0/boot/grub/grub.cfg");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, ubuntu_next).unwrap();
        let system = crate::system::System::new(Some(root.to_path_buf()));
        with_test_work(&system, |work| boot_xenserver_next(work).unwrap());
        let back = std::fs::read_to_string(config).unwrap();
        assert!(back.contains("set default=0\n"), "{back}");
    }
}
