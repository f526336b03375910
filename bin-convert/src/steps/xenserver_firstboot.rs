//! XENSERVER_FIRSTBOOT's own steps; the steps it shares with every later dom0
//! boot are in [`crate::shared`]. Once, now that the install has happened,
//! Ubuntu's fstab loses the lines of the partitions the installer deleted, and
//! dom0's boot loader gets an entry that boots Ubuntu (the bounce): Ubuntu's
//! newest kernel and initrd copied to dom0's `/boot`, Ubuntu's root and kernel
//! arguments as START recorded them.

use anyhow::Context as _;

use crate::bootloader::{self, BootLoader, UbuntuEntry};
use crate::paths::UBUNTU_MOUNT;
use crate::render;
use crate::system::System;
use crate::work::Work;

/// Comments out, in Ubuntu's fstab (seen from dom0 at [`UBUNTU_MOUNT`]), the
/// lines SETUP_INSTALLER made optional ([`render::fstab`]): this runs in
/// dom0, so the installer has deleted their partitions, and the bounce would
/// otherwise wait for each missing device.
pub fn ubuntu_fstab(work: &mut Work<'_>) -> anyhow::Result<()> {
    let path = format!("{UBUNTU_MOUNT}/etc/fstab");
    let text = match work.system.read_to_string(&path) {
        Ok(text) => text,
        // No fstab: SETUP_INSTALLER made no line optional either.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("reading Ubuntu's fstab, {path}"));
        }
    };
    let (changed, retired) = render::fstab::retire(&text);
    if retired.is_empty() {
        return Ok(());
    }
    work.system.write_atomic(&path, changed.as_bytes(), 0o644)?;
    work.log.line(&format!(
        "Ubuntu's fstab: {} commented out: the installer deleted their partitions",
        retired.join(", ")
    ));
    Ok(())
}

/// Copies Ubuntu's newest kernel and initrd into dom0's /boot and adds the
/// Ubuntu entry (root by UUID) to dom0's boot loader, once.
pub fn ubuntu_boot_entry(work: &mut Work<'_>) -> anyhow::Result<()> {
    let (system, files) = (work.system, work.files);
    let ubuntu_boot = format!("{UBUNTU_MOUNT}/boot");
    let kernel = newest(system, &ubuntu_boot, "vmlinuz-")?;
    let version = kernel.trim_start_matches("vmlinuz-").to_owned();
    let initrd = format!("initrd.img-{version}");
    system.copy_file(format!("{ubuntu_boot}/{kernel}"), "/boot/vmlinuz-ubuntu")?;
    system.copy_file(format!("{ubuntu_boot}/{initrd}"), "/boot/initrd-ubuntu")?;
    let recorded = bootloader::UbuntuBoot::load(system, &files.ubuntu_boot)?;
    let loader = bootloader::detect(system, "/")?;
    let files_uuid = match loader {
        BootLoader::Grub(_) => Some(file_system_uuid(system, "/boot")?),
        BootLoader::Extlinux(_) => None,
    };
    loader.add_ubuntu(
        system,
        &UbuntuEntry {
            kernel: "/boot/vmlinuz-ubuntu".to_owned(),
            initrd: "/boot/initrd-ubuntu".to_owned(),
            ubuntu: bootloader::UbuntuBoot {
                // Re-checked: the file could have been edited since.
                args: bootloader::kept_kernel_args(&recorded.args).0.join(" "),
                ..recorded
            },
            files_uuid,
        },
    )
}

/// The newest file in `dir` whose name starts with `prefix`, by
/// [`version_order`].
fn newest(system: &System, dir: &str, prefix: &str) -> anyhow::Result<String> {
    system
        .list_files(dir)?
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .max_by(|a, b| version_order(a, b))
        .with_context(|| format!("no {prefix}* in {dir}"))
}

/// Orders kernel file names as versions, the way `sort -V` and GRUB's menu do:
/// runs of digits compare as numbers, so `vmlinuz-5.15.0-105-generic` is newer
/// than `vmlinuz-5.15.0-99-generic` (as strings it would not be).
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(text: &str) -> impl Iterator<Item = &str> {
        let mut rest = text;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some(run)
        })
    }
    let numeric = |run: &str| run.bytes().all(|b| b.is_ascii_digit());
    for pair in runs(a).zip(runs(b)) {
        let order = match pair {
            (x, y) if numeric(x) && numeric(y) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (x, y) => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    runs(a).count().cmp(&runs(b).count()).then_with(|| a.cmp(b))
}

/// The UUID of the file system that holds `path`.
fn file_system_uuid(system: &System, path: &str) -> anyhow::Result<String> {
    let uuid = system
        .run("findmnt", &["-n", "-o", "UUID", "--target", path])?
        .trim()
        .to_owned();
    anyhow::ensure!(!uuid.is_empty(), "findmnt gave no UUID for {path}");
    Ok(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::with_test_work;

    #[test]
    fn kernels_are_ordered_as_versions() {
        use std::cmp::Ordering::{Greater, Less};
        for (newer, older) in [
            ("vmlinuz-5.15.0-105-generic", "vmlinuz-5.15.0-99-generic"),
            ("vmlinuz-6.8.0-31-generic", "vmlinuz-6.8.0-30-generic"),
            ("vmlinuz-6.10.0-1-amd64", "vmlinuz-6.9.12-amd64"),
            ("vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-9-amd64"),
            ("vmlinuz-4.4.0-210-generic", "vmlinuz-4.4.0-21-generic"),
            ("vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-10"),
        ] {
            assert_eq!(version_order(newer, older), Greater, "{newer} > {older}");
            assert_eq!(version_order(older, newer), Less, "{older} < {newer}");
        }
        assert!(version_order("vmlinuz-6.1.0-010", "vmlinuz-6.1.0-10").is_ne());
    }

    const GRUB: &str =
        "set default=0\nset timeout=5\nmenuentry 'XCP-ng' {\n\tmultiboot2 /boot/xen.gz\n}\n";

    #[test]
    fn the_ubuntu_entry_is_added_once_and_the_default_flips_each_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        };
        write("mnt/ubuntu/boot/vmlinuz-6.8.0-9-generic", "old kernel");
        write("mnt/ubuntu/boot/vmlinuz-6.8.0-31-generic", "new kernel");
        write("mnt/ubuntu/boot/initrd.img-6.8.0-9-generic", "old initrd");
        write("mnt/ubuntu/boot/initrd.img-6.8.0-31-generic", "new initrd");
        write("boot/grub/grub.cfg", GRUB);
        // What START recorded, the arguments edited since by hand: re-checked.
        write(
            "opt/xenapi-in-the-cloud/xitc-convert.ubuntu-boot",
            r#"{"root_uuid": "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19",
                "args": "console=ttyS0,115200n8 net.ifnames=0 $(reboot)"}"#,
        );
        // dom0's own file system holds /boot.
        write(
            "bin/findmnt",
            "#!/bin/sh\ncase \"$*\" in\n*'--target /boot') echo 5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b ;;\nesac\n",
        );
        write("bin/sync", "#!/bin/sh\n");
        for program in ["findmnt", "sync"] {
            std::fs::set_permissions(
                root.join("bin").join(program),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        let system = System::new(Some(root.to_path_buf()))
            .with_search_path(format!("{}:/usr/bin:/bin", root.join("bin").display()));
        with_test_work(&system, |work| {
            ubuntu_boot_entry(work).unwrap();
            ubuntu_boot_entry(work).unwrap();
            crate::shared::dom0::boot_ubuntu_next(work).unwrap();
        });
        assert_eq!(
            std::fs::read_to_string(root.join("boot/vmlinuz-ubuntu")).unwrap(),
            "new kernel"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("boot/initrd-ubuntu")).unwrap(),
            "new initrd"
        );
        let grub = std::fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap();
        assert_eq!(grub.matches("menuentry 'Ubuntu (xitc-convert)'").count(), 1);
        assert!(grub.contains("set default=\"Ubuntu (xitc-convert)\"\n"));
        assert!(grub.contains(
            "\tsearch --no-floppy --fs-uuid --set root 5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b\n\t\
             linux /boot/vmlinuz-ubuntu root=UUID=0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19 ro systemd.gpt_auto=0 \
             console=ttyS0,115200n8 net.ifnames=0\n"
        ));
    }
}
