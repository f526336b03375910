//! The node's disk layout and what the conversion does about it, read in
//! START's preflight and again in SETUP_INSTALLER (README "Supported images"
//! has the table for users).
//!
//! Why it matters: the installer keeps partition 1 only (with
//! `preserve-first-partition`; every partition numbered 2 or higher is
//! deleted, and a DOS label becomes GPT) and creates its own partitions after
//! partition 1's end. So on today's Ubuntu cloud images (GPT: BIOS boot 14,
//! ESP 15 on `/boot/efi`, on 24.04 `/boot` on 16, the root on 1 and last):
//!
//! - partition 1 must be the last partition on the disk: the shrink frees
//!   room behind it, where the installer's files go (partition 2) and
//!   XenServer's partitions later;
//! - partition 2 must be free: xitc-convert creates it, numbered 2, for the
//!   installer's `make-ramdisk=`;
//! - a separate `/boot` on the disk is deleted: its kernels and initrds are
//!   copied onto partition 1 (under `/boot` of partition 1 itself, beneath
//!   the mount), where dom0's Ubuntu entry and Ubuntu's boots after the
//!   install find them;
//! - fstab lines that mount deleted partitions (`/boot`, `/boot/efi`, swap)
//!   would stop Ubuntu's next boot in emergency mode, or mount a partition
//!   XenServer created: before the install they become optional (`nofail`),
//!   or, where they name a device, commented out;
//! - `GRUB_FORCE_PARTUUID` (minimized images, replaced kernels) boots without
//!   the initrd first, where the shrink runs: turned off for the shrink boot
//!   and restored after.

use crate::disk::{
    FstabEntry, Identity, LSBLK_COLUMNS, PartitionTable, installer_disk_name, parse_dump,
    parse_fstab, parse_lsblk, partition_name, partition_of, resolve_spec,
};
use crate::system::System;

/// Where Ubuntu keeps its GRUB defaults.
pub const DEFAULT_GRUB: &str = "/etc/default/grub";
pub const DEFAULT_GRUB_DIR: &str = "/etc/default/grub.d";

/// The node's disk, as the conversion plans for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: PartitionTable,
    /// The whole disk's size.
    pub disk_bytes: u64,
    /// The disk as the installer's dom0 names it (`sda`, `vda`, `nvme0n1`).
    pub installer_disk: String,
    /// Why that name (for `--check`).
    pub installer_disk_reason: String,
    /// A separate `/boot` on this partition of the disk.
    pub boot_partition: Option<u32>,
    /// fstab entries of partitions the installer deletes.
    pub doomed: Vec<FstabEntry>,
    /// GRUB boots without the initrd first (`GRUB_FORCE_PARTUUID` set).
    pub initrdless_boot: bool,
}

/// What [`read`] needs to know beyond the live system.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The disk that holds the root on partition 1 (`vda`).
    pub disk: &'a str,
    /// `--installer-disk`, if given.
    pub installer_disk: Option<&'a str>,
    /// Whether partition 2 may exist: SETUP_INSTALLER made it on an earlier
    /// try; START refuses one.
    pub partition_2_is_ours: bool,
}

impl Layout {
    /// One line for `--check`, `--dry-run` and the log.
    pub fn describe(&self) -> String {
        let count = self.table.partitions.len();
        let mut parts = vec![format!(
            "{}, {count} partition{}, the root on 1",
            self.table.label.name(),
            if count == 1 { "" } else { "s" }
        )];
        if let Some(number) = self.boot_partition {
            parts.push(format!(
                "/boot on partition {number}: kernels copied to partition 1"
            ));
        }
        if !self.doomed.is_empty() {
            let points: Vec<&str> = self
                .doomed
                .iter()
                .map(|entry| entry.mount_point.as_str())
                .collect();
            parts.push(format!(
                "fstab lines for {} made optional before the install (the installer deletes \
                 their partitions)",
                points.join(", ")
            ));
        }
        if self.initrdless_boot {
            parts.push(
                "GRUB_FORCE_PARTUUID: initrd-less boot off for the shrink boot, restored after"
                    .to_owned(),
            );
        }
        parts.push(format!(
            "installer disk {} ({})",
            self.installer_disk, self.installer_disk_reason
        ));
        parts.join("; ")
    }
}

/// Reads the layout of `expect.disk`; every problem in the list, each a
/// one-line reason that names what to change.
pub fn read(system: &System, expect: Expect<'_>) -> Result<Layout, Vec<String>> {
    let mut problems = Vec::new();
    let disk = expect.disk;
    let table = match system
        .run("sfdisk", &["--dump", &format!("/dev/{disk}")])
        .map_err(|error| format!("cannot read the partition table of /dev/{disk}: {error:#}"))
        .and_then(|dump| {
            parse_dump(&dump).ok_or_else(|| {
                format!(
                    "/dev/{disk} has a partition table sfdisk --dump does not show as DOS or GPT"
                )
            })
        }) {
        Ok(table) => table,
        Err(problem) => return Err(vec![problem]),
    };
    check_room(&table, expect, &mut problems);

    // What the plan is made of is read or refused, never guessed: a /boot
    // or an fstab line not seen here would be left for the installer to
    // delete under it (the bounce then stops in emergency mode).
    let mounts = match system.read_to_string("/proc/self/mounts") {
        Ok(mounts) => mounts,
        Err(error) => return Err(vec![format!("cannot read /proc/self/mounts: {error}")]),
    };
    let boot_partition = match mounted_on(&mounts, "/boot") {
        None => None,
        Some(device) => {
            let name = device.strip_prefix("/dev/").unwrap_or(&device);
            match partition_of(system, name) {
                Some((boot_disk, number)) if boot_disk == disk && number != 1 => Some(number),
                Some((boot_disk, _)) if boot_disk != disk => {
                    problems.push(format!(
                        "/boot is on {device}, another disk than the root's ({disk}): \
                         xitc-convert needs /boot on the root's disk or on the root itself"
                    ));
                    None
                }
                Some(_) => None,
                None => {
                    problems.push(format!(
                        "/boot is on {device}, which is not a partition of a disk"
                    ));
                    None
                }
            }
        }
    };

    let identities = identities_of(system, disk, &table).unwrap_or_else(|problem| {
        problems.push(problem);
        Vec::new()
    });
    // No fstab is no line to keep from failing; one that cannot be read is
    // refused.
    let fstab = match system.read_if_exists("/etc/fstab") {
        Ok(fstab) => fstab.unwrap_or_default(),
        Err(error) => {
            problems.push(format!("{error:#}"));
            String::new()
        }
    };
    let doomed = doomed_entries(system, disk, &parse_fstab(&fstab), &identities);

    let (installer_disk, installer_disk_reason) = if let Some(name) = expect.installer_disk {
        (name.to_owned(), "--installer-disk".to_owned())
    } else {
        let name = installer_disk_name(disk);
        let reason = if name == disk {
            format!("the node's /dev/{disk}")
        } else {
            format!("the node's /dev/{disk}, emulated hardware to the installer")
        };
        (name, reason)
    };

    let disk_bytes = disk_bytes(system, disk).unwrap_or_else(|problem| {
        problems.push(problem);
        0
    });

    let initrdless_boot = initrdless_boot(system).unwrap_or_else(|problem| {
        problems.push(problem);
        false
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Layout {
        table,
        disk_bytes,
        installer_disk,
        installer_disk_reason,
        boot_partition,
        doomed,
        initrdless_boot,
    })
}

/// The size of `disk` in bytes, from sysfs.
fn disk_bytes(system: &System, disk: &str) -> Result<u64, String> {
    let size_file = format!("/sys/class/block/{disk}/size");
    let sectors = system
        .read_to_string(&size_file)
        .map_err(|error| format!("cannot read the size of /dev/{disk} ({size_file}): {error}"))?;
    sectors
        .trim()
        .parse::<u64>()
        .map(|sectors| sectors * 512)
        .map_err(|_| format!("{size_file} holds no sector count: {sectors:?}"))
}

/// The identities (UUID, PARTUUID, LABEL) of `disk` and its partitions, by
/// lsblk; refused, naming lsblk and what went wrong, when it fails or leaves
/// out a partition the table has (fstab's lines could then not be matched).
fn identities_of(
    system: &System,
    disk: &str,
    table: &PartitionTable,
) -> Result<Vec<Identity>, String> {
    let device = format!("/dev/{disk}");
    let command = format!("lsblk -rno {LSBLK_COLUMNS} {device}");
    // The error names the command, its exit status and what it said.
    let output = system
        .run("lsblk", &["-rno", LSBLK_COLUMNS, &device])
        .map_err(|error| format!("{error:#}"))?;
    let identities = parse_lsblk(&output);
    let missing: Vec<String> = table
        .partitions
        .iter()
        .map(|partition| partition_name(disk, partition.number))
        .filter(|name| !identities.iter().any(|identity| identity.name == *name))
        .collect();
    if missing.is_empty() {
        Ok(identities)
    } else {
        Err(format!(
            "{command} did not list {} of the partition table: fstab's lines cannot be \
             matched to partitions",
            missing.join(", ")
        ))
    }
}

/// Partition 1 last on the disk, partition 2 free (or ours).
fn check_room(table: &PartitionTable, expect: Expect<'_>, problems: &mut Vec<String>) {
    let disk = expect.disk;
    let Some(root) = table.partition(1) else {
        problems.push(format!("/dev/{disk}'s partition table has no partition 1"));
        return;
    };
    if !expect.partition_2_is_ours && table.partition(2).is_some() {
        problems.push(format!(
            "/dev/{disk} has a partition 2: xitc-convert puts the installer's files on a new \
             partition 2 (the installer deletes every partition but 1)"
        ));
    }
    for behind in table
        .partitions
        .iter()
        .filter(|partition| partition.start > root.start)
        .filter(|partition| !(expect.partition_2_is_ours && partition.number == 2))
    {
        problems.push(format!(
            "partition {} lies behind partition 1 on /dev/{disk}: the shrink frees room behind \
             partition 1, for the installer's files and XenServer",
            behind.number
        ));
    }
}

/// The device mounted on `mount_point` (the last mount there).
fn mounted_on(mounts: &str, mount_point: &str) -> Option<String> {
    mounts.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let device = fields.next()?;
        (fields.next()? == mount_point).then(|| device.to_owned())
    })
}

/// The fstab entries whose device is a partition numbered 2 or higher of
/// `disk` (by UUID, PARTUUID, LABEL or device name).
fn doomed_entries(
    system: &System,
    disk: &str,
    fstab: &[FstabEntry],
    identities: &[Identity],
) -> Vec<FstabEntry> {
    fstab
        .iter()
        .filter(|entry| {
            resolve_spec(&entry.spec, identities)
                .and_then(|identity| partition_of(system, &identity.name))
                .is_some_and(|(on, number)| on == disk && number >= 2)
        })
        .cloned()
        .collect()
}

/// Whether `GRUB_FORCE_PARTUUID` ends up non-empty: /etc/default/grub, then
/// /etc/default/grub.d/*.cfg in name order, as update-grub sources them. A
/// file or the directory missing is no setting; one that cannot be read is an
/// error (a minimized image's initrd-less boot would skip the shrink).
pub fn initrdless_boot(system: &System) -> Result<bool, String> {
    let mut files = vec![DEFAULT_GRUB.to_owned()];
    let listed = if system.exists(DEFAULT_GRUB_DIR) {
        system
            .list_files(DEFAULT_GRUB_DIR)
            .map_err(|error| format!("{error:#}"))?
    } else {
        Vec::new()
    };
    let mut drop_ins: Vec<String> = listed
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        // update-grub's own glob, `*.cfg`, is case-sensitive too.
        .filter(|name| {
            #[allow(clippy::case_sensitive_file_extension_comparisons)]
            name.ends_with(".cfg")
        })
        .collect();
    drop_ins.sort();
    files.extend(
        drop_ins
            .into_iter()
            .map(|name| format!("{DEFAULT_GRUB_DIR}/{name}")),
    );
    let mut value = String::new();
    for file in files {
        let text = system
            .read_if_exists(&file)
            .map_err(|error| format!("{error:#}"))?
            .unwrap_or_default();
        for line in text.lines() {
            if let Some(assigned) = line.trim().strip_prefix("GRUB_FORCE_PARTUUID=") {
                assigned
                    .trim()
                    .trim_matches(['"', '\''])
                    .clone_into(&mut value);
            }
        }
    }
    Ok(!value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dump: &str) -> PartitionTable {
        parse_dump(dump).unwrap()
    }

    const JAMMY: &str = "label: gpt\nlabel-id: 6F5B\ndevice: /dev/vda\nunit: sectors\n\n\
        /dev/vda1 : start=227328, size=104630239, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n\
        /dev/vda14 : start=2048, size=8192, type=21686148-6449-6E6F-744E-656564454649\n\
        /dev/vda15 : start=10240, size=217088, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n";

    fn expect(ours: bool) -> Expect<'static> {
        Expect {
            disk: "vda",
            installer_disk: None,
            partition_2_is_ours: ours,
        }
    }

    #[test]
    fn partition_1_last_and_partition_2_free() {
        let mut problems = Vec::new();
        check_room(&table(JAMMY), expect(false), &mut problems);
        assert_eq!(problems, Vec::<String>::new());

        let with_ramdisk = table(JAMMY).with_partition("/dev/vda2", 104_857_600, 131_072);
        check_room(&table(&with_ramdisk), expect(true), &mut problems);
        assert_eq!(
            problems,
            Vec::<String>::new(),
            "SETUP_INSTALLER's own partition 2"
        );
        check_room(&table(&with_ramdisk), expect(false), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("has a partition 2"), "{problems:?}");
        assert!(problems[1].contains("partition 2 lies behind partition 1"));

        let root_first = "label: dos\n\n/dev/sda1 : start=2048, size=1000, type=83\n\
                          /dev/sda3 : start=4096, size=1000, type=82\n";
        let mut problems = Vec::new();
        check_room(&table(root_first), expect(false), &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("partition 3 lies behind partition 1"));
    }

    #[test]
    fn the_initrdless_boot_is_found_as_update_grub_sources_it() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let grub_d = dir.path().join("etc/default/grub.d");
        std::fs::create_dir_all(&grub_d).unwrap();
        std::fs::write(dir.path().join("etc/default/grub"), "GRUB_TIMEOUT=0\n").unwrap();
        assert!(!initrdless_boot(&system).unwrap());
        std::fs::write(
            grub_d.join("40-force-partuuid.cfg"),
            "GRUB_FORCE_PARTUUID=7a5e1f3c-01\n",
        )
        .unwrap();
        assert!(initrdless_boot(&system).unwrap());
        std::fs::write(grub_d.join("99-xitc-convert.cfg"), "GRUB_FORCE_PARTUUID=\n").unwrap();
        assert!(
            !initrdless_boot(&system).unwrap(),
            "a later empty value turns it off"
        );
        std::fs::write(
            grub_d.join("40-force-partuuid.cfg.disabled"),
            "GRUB_FORCE_PARTUUID=x\n",
        )
        .unwrap();
        assert!(!initrdless_boot(&system).unwrap(), "only *.cfg are sourced");
    }

    #[test]
    fn mounts_and_descriptions() {
        let mounts = "/dev/vda1 / ext4 rw 0 0\n/dev/vda16 /boot ext4 rw 0 0\n\
                      /dev/vda15 /boot/efi vfat rw 0 0\n";
        assert_eq!(mounted_on(mounts, "/boot").as_deref(), Some("/dev/vda16"));
        assert_eq!(mounted_on(mounts, "/srv"), None);
        let layout = Layout {
            table: table(JAMMY),
            disk_bytes: 50 << 30,
            installer_disk: "vda".into(),
            installer_disk_reason: "the node's /dev/vda".into(),
            boot_partition: Some(16),
            doomed: vec![
                FstabEntry {
                    spec: "LABEL=BOOT".into(),
                    mount_point: "/boot".into(),
                },
                FstabEntry {
                    spec: "LABEL=UEFI".into(),
                    mount_point: "/boot/efi".into(),
                },
            ],
            initrdless_boot: true,
        };
        assert_eq!(
            layout.describe(),
            "GPT, 3 partitions, the root on 1; /boot on partition 16: kernels copied to \
             partition 1; fstab lines for /boot, /boot/efi made optional before the install \
             (the installer deletes their partitions); GRUB_FORCE_PARTUUID: initrd-less boot \
             off for the shrink boot, restored after; installer disk vda (the node's /dev/vda)"
        );
    }
}
