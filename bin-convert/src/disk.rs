//! The root file system and its disk, read from the live system:
//! `/proc/self/mounts`, `/sys/class/block`, `df`, the partition table as
//! `sfdisk --dump` prints it, the file systems' identities (`lsblk`), fstab,
//! and the version of sfdisk, the partitioning tool the shrink and the
//! ramdisk partition use.

use std::fmt::Write as _;

use crate::system::System;

/// A partition table's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Dos,
    Gpt,
}

impl Label {
    /// sfdisk's partition type for a Linux file system on this label.
    pub fn linux_type(self) -> &'static str {
        match self {
            Label::Dos => "83",
            Label::Gpt => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Label::Dos => "DOS",
            Label::Gpt => "GPT",
        }
    }
}

/// One partition in a partition table: its number and place (sectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePartition {
    pub number: u32,
    pub start: u64,
    pub size: u64,
}

/// A disk's partition table as `sfdisk --dump` prints it (util-linux 2.26
/// and later), kept as text too: a partition is added by writing the dump
/// back whole with one line more, so everything else sfdisk printed (the
/// label id, partition UUIDs and names, which boot loaders and fstab may name)
/// stays as it was. `sfdisk --append` would not do: on GPT it takes the number
/// after the highest (16 on Ubuntu 22.04's images), and `-N` with a number
/// not yet defined takes the next free one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub label: Label,
    pub partitions: Vec<TablePartition>,
    pub dump: String,
}

impl PartitionTable {
    pub fn partition(&self, number: u32) -> Option<TablePartition> {
        self.partitions
            .iter()
            .copied()
            .find(|partition| partition.number == number)
    }

    /// The dump with partition `number` added (`device` as the dump names
    /// it, e.g. `/dev/vda2`), a Linux file system of `size` sectors at `start`.
    pub fn with_partition(&self, device: &str, start: u64, size: u64) -> String {
        let mut dump = self.dump.trim_end().to_owned();
        let _ = write!(
            dump,
            "\n{device} : start={start}, size={size}, type={}\n",
            self.label.linux_type()
        );
        dump
    }
}

/// Parses `sfdisk --dump DISK`; `None` for a table it does not know.
pub fn parse_dump(dump: &str) -> Option<PartitionTable> {
    let mut label = None;
    let mut partitions = Vec::new();
    for line in dump.lines() {
        if let Some(value) = line.strip_prefix("label:") {
            label = Some(match value.trim() {
                "dos" => Label::Dos,
                "gpt" => Label::Gpt,
                _ => return None,
            });
        } else if let Some((device, fields)) = line.split_once(" : ") {
            let device = device.trim_end();
            let digits = device.len() - device.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let field = |key: &str| -> Option<u64> {
                fields.split(',').find_map(|field| {
                    let (name, value) = field.split_once('=')?;
                    (name.trim() == key).then(|| value.trim().parse().ok())?
                })
            };
            partitions.push(TablePartition {
                number: device[device.len() - digits..].parse().ok()?,
                start: field("start")?,
                size: field("size")?,
            });
        }
    }
    Some(PartitionTable {
        label: label?,
        partitions,
        dump: dump.to_owned(),
    })
}

/// `xvda` + 2 → `xvda2`; `nvme0n1` + 2 → `nvme0n1p2`.
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// The installer's name for the node's disk: the same on virtio (`vda`),
/// NVMe (`nvme0n1`) and SCSI/SATA (`sda`) disks; a Xen cloud's `xvda` is
/// emulated hardware to the installer's own dom0, which names it `sda` (as the
/// 2014 scripts assumed).
pub fn installer_disk_name(disk: &str) -> String {
    match disk.strip_prefix("xvd").or_else(|| disk.strip_prefix("hd")) {
        Some(letter) => format!("sd{letter}"),
        None => disk.to_owned(),
    }
}

/// The columns every `lsblk -rno` of xitc-convert asks for, in this order;
/// [`parse_lsblk`] reads them.
pub const LSBLK_COLUMNS: &str = "NAME,UUID,PARTUUID,LABEL,FSTYPE";

/// The identities of file systems and partitions, from `lsblk -rno`
/// [`LSBLK_COLUMNS`] (`-r`: one line per device, one space between columns,
/// an empty column empty; lsblk writes every byte that is not safe there,
/// space, tab, backslash and other control or non-printing bytes, as `\xHH`,
/// which [`unescape_hex`] undoes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uuid: String,
    pub partuuid: String,
    pub label: String,
    pub fs_type: String,
}

/// The devices lsblk lists; a line without a name is no device and is left
/// out (lsblk prints none such).
pub fn parse_lsblk(output: &str) -> Vec<Identity> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ').map(unescape_hex);
            let name = fields.next().filter(|name| !name.is_empty())?;
            let mut next = || fields.next().unwrap_or_default();
            Some(Identity {
                name,
                uuid: next(),
                partuuid: next(),
                label: next(),
                fs_type: next(),
            })
        })
        .collect()
}

/// Undoes lsblk's `\xHH` escapes (util-linux `mbs_safe_encode`, which `-r`
/// and `-P` output use) byte by byte, so a label's UTF-8 written as escapes
/// comes back whole; a backslash not followed by `x` and two hex digits
/// stays as it is.
pub fn unescape_hex(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && bytes.get(index + 1) == Some(&b'x')
            && let Some(byte) = bytes
                .get(index + 2..index + 4)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Undoes fstab(5)'s octal escapes: `\040` (space), `\011` (tab), `\012`
/// (newline) and `\134` (backslash) are the ones util-linux writes and
/// reads (its `unmangle`, which takes any `\NNN` of three octal digits); a
/// backslash not followed by three octal digits stays as it is.
pub fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|digits| {
            digits.iter().all(|digit| (b'0'..=b'7').contains(digit)) && digits[0] <= b'3'
        });
        match octal {
            Some(digits) if bytes[index] == b'\\' => {
                out.push(
                    digits
                        .iter()
                        .fold(0u8, |value, digit| value * 8 + (digit - b'0')),
                );
                index += 4;
            }
            _ => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of fstab that mounts something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: String,
    pub mount_point: String,
}

pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let mut fields = line.split_whitespace();
            Some(FstabEntry {
                spec: unescape_octal(fields.next()?),
                mount_point: unescape_octal(fields.next()?),
            })
        })
        .collect()
}

/// The block device an fstab spec names (`vda15`), among `identities`.
pub fn resolve_spec<'a>(spec: &str, identities: &'a [Identity]) -> Option<&'a Identity> {
    let (key, value) = spec.split_once('=').unwrap_or(("", spec));
    let value = value.trim_matches('"');
    identities.iter().find(|identity| match key {
        "UUID" => identity.uuid.eq_ignore_ascii_case(value),
        "PARTUUID" => identity.partuuid.eq_ignore_ascii_case(value),
        "LABEL" => identity.label == value,
        "" => value.strip_prefix("/dev/") == Some(identity.name.as_str()),
        _ => false,
    })
}

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
    fn partition_names() {
        assert_eq!(partition_name("xvda", 2), "xvda2");
        assert_eq!(partition_name("sda", 2), "sda2");
        assert_eq!(partition_name("nvme0n1", 2), "nvme0n1p2");
        assert_eq!(partition_name("mmcblk0", 2), "mmcblk0p2");
    }

    #[test]
    fn the_installer_names_the_disk_as_its_dom0_sees_it() {
        assert_eq!(installer_disk_name("vda"), "vda");
        assert_eq!(installer_disk_name("nvme0n1"), "nvme0n1");
        assert_eq!(installer_disk_name("sda"), "sda");
        assert_eq!(installer_disk_name("xvda"), "sda");
        assert_eq!(installer_disk_name("xvdb"), "sdb");
    }

    #[test]
    fn a_dump_is_read_and_written_back_with_partition_2() {
        let dump = "label: gpt\nlabel-id: 6F5B0C7E-1B43-4E4A-9B8F-1C2D3E4F5A6B\ndevice: /dev/vda\n\
                    unit: sectors\nfirst-lba: 2048\nlast-lba: 104857566\nsector-size: 512\n\n\
                    /dev/vda1 : start=     1050624, size=     8388608, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=B01E\n\
                    /dev/vda14 : start=        2048, size=        8192, type=21686148-6449-6E6F-744E-656564454649, uuid=8A4F\n\
                    /dev/vda15 : start=       10240, size=      217088, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=5954, name=\"ESP, UEFI\"\n";
        let table = parse_dump(dump).unwrap();
        assert_eq!(table.label, Label::Gpt);
        assert_eq!(
            table
                .partitions
                .iter()
                .map(|p| p.number)
                .collect::<Vec<_>>(),
            [1, 14, 15]
        );
        assert_eq!(
            table.partition(1),
            Some(TablePartition {
                number: 1,
                start: 1_050_624,
                size: 8_388_608
            })
        );
        let written = table.with_partition("/dev/vda2", 9_439_232, 131_072);
        assert!(written.starts_with(dump.trim_end()), "nothing else changes");
        assert!(written.ends_with(
            "\n/dev/vda2 : start=9439232, size=131072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
        ));
        let dos = parse_dump("label: dos\nlabel-id: 0x1b2c\n\n/dev/nvme0n1p1 : start=2048, size=4096, type=83, bootable\n").unwrap();
        assert_eq!(dos.label, Label::Dos);
        assert_eq!(dos.partition(1).unwrap().size, 4096);
        assert!(
            dos.with_partition("/dev/nvme0n1p2", 6144, 2048)
                .ends_with("type=83\n")
        );
        assert_eq!(parse_dump("label: sun\n"), None);
        assert_eq!(
            parse_dump("/dev/vda1 : start=1, size=2\n"),
            None,
            "no label"
        );
    }

    #[test]
    fn fstab_specs_resolve_to_partitions() {
        let identities = parse_lsblk(
            "vda  \nvda1 4bd1-uuid 4bd1-part cloudimg-rootfs\nvda15 B2C4 5954-part UEFI\n\
             vda16 9e1f-uuid 7a2b-part BOOT\\x20ME ext4\n",
        );
        assert_eq!(identities.len(), 4);
        assert_eq!(identities[3].label, "BOOT ME");
        assert_eq!(identities[3].fs_type, "ext4");
        assert_eq!(identities[1].fs_type, "");
        let fstab = parse_fstab(
            "# comment\nLABEL=cloudimg-rootfs / ext4 defaults 0 1\nLABEL=BOOT\\040ME /boot ext4 defaults 0 2\n\
             LABEL=UEFI /boot/efi vfat umask=0077 0 1\nUUID=9E1F-UUID /srv ext4 defaults 0 0\n\
             PARTUUID=5954-part /x vfat defaults 0 0\n/dev/vda16 /y ext4 defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n",
        );
        let names: Vec<Option<&str>> = fstab
            .iter()
            .map(|entry| resolve_spec(&entry.spec, &identities).map(|id| id.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                Some("vda1"),
                Some("vda16"),
                Some("vda15"),
                Some("vda16"),
                Some("vda15"),
                Some("vda16"),
                None
            ]
        );
    }

    #[test]
    fn every_escape_is_undone() {
        // A label with a space, a tab, a backslash and a non-ASCII letter,
        // as lsblk -r writes it and as an fstab line writes it.
        let identities = parse_lsblk("vda2 u p A\\x20b\\x09c\\x5cd\\xc3\\xa9 ext4\n");
        assert_eq!(identities[0].label, "A b\tc\\d\u{e9}");
        assert_eq!(identities[0].fs_type, "ext4");
        let fstab = parse_fstab("LABEL=A\\040b\\011c\\134d\u{e9} /mnt/a\\012b ext4 defaults 0 2\n");
        assert_eq!(fstab[0].spec, "LABEL=A b\tc\\d\u{e9}");
        assert_eq!(fstab[0].mount_point, "/mnt/a\nb");
        assert_eq!(
            resolve_spec(&fstab[0].spec, &identities).map(|id| id.name.as_str()),
            Some("vda2")
        );
        // What is not an escape stays.
        assert_eq!(unescape_hex("a\\xZZ\\x4"), "a\\xZZ\\x4");
        assert_eq!(unescape_octal("a\\9\\04\\400"), "a\\9\\04\\400");
        assert_eq!(parse_lsblk("\n"), []);
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
