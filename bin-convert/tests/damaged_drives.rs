//! A damaged config drive is an error, never a panic or a hang: the drive
//! is the cloud's, read in START's preflight and on every dom0 boot, where
//! a hang would keep the node from ever being ready without a word.
//!
//! Real images (vfat by mtools, iso9660 by xorriso), damaged two ways:
//! - by hand, the damage that made the `fatfs` crate read for ever before
//!   `config_drive::DriveReader` bounded its reads: a directory whose
//!   cluster chain loops back to itself, with no end-of-directory entry;
//! - by seeded random bytes in the structures a reader walks (vfat's boot
//!   sector, FATs, root directory and first clusters; ISO 9660's volume
//!   descriptor and directory sectors). Each damaged drive is read on its
//!   own thread and must give an answer, `Ok` or `Err`, within a minute.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use bin_convert::config_drive;
use bin_convert::system::System;

mod world;
use world::{DriveFormat, config_drive_image, static_network_data};

/// Far above the longest legitimate read (a few ms), far below a test's
/// patience: a read that has not answered by then is taken for a hang.
const HANG: Duration = Duration::from_secs(60);

/// Damaged drives read per format: each run sees the same ones.
const DAMAGED_DRIVES: u64 = 1500;

/// A sandbox whose /dev/sr0 is a real config drive of `format`.
fn drive(format: DriveFormat) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let image = root.path().join("dev/sr0");
    let network_data = static_network_data("fa:16:3e:00:00:01", "203.0.113.5", "203.0.113.1");
    config_drive_image(&image, format, "config-2", Some(&network_data));
    (root, image)
}

/// `read_network_data` of the sandbox's /dev/sr0 on a thread of its own:
/// `Ok(Ok(_))` or `Ok(Err(message))`; `Err` when it panicked or hung.
fn read_drive(root: &Path) -> Result<Result<(), String>, String> {
    let system = System::new(Some(root.to_path_buf()));
    let (answer, answered) = mpsc::channel();
    std::thread::spawn(move || {
        let read = std::panic::catch_unwind(|| {
            config_drive::read_network_data(&system, "/dev/sr0")
                .map(|_| ())
                .map_err(|error| format!("{error:#}"))
        });
        let _ = answer.send(read);
    });
    match answered.recv_timeout(HANG) {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(_)) => Err("panicked".into()),
        Err(_) => Err(format!("gave no answer in {HANG:?}")),
    }
}

fn le16(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// Where mtools put a FAT12 drive's structures (from its boot sector).
struct FatLayout {
    fats: Vec<Range<usize>>,
    root_directory: Range<usize>,
    data: usize,
    cluster: usize,
}

fn fat_layout(image: &[u8]) -> FatLayout {
    assert_eq!(&image[54..62], b"FAT12   ", "mformat made a FAT12 drive");
    let sector = le16(image, 11);
    let cluster = usize::from(image[13]) * sector;
    let reserved = le16(image, 14) * sector;
    let fat_count = usize::from(image[16]);
    let fat_size = le16(image, 22) * sector;
    let root_directory = reserved + fat_count * fat_size;
    let data = root_directory + le16(image, 17) * 32;
    FatLayout {
        fats: (0..fat_count)
            .map(|n| reserved + n * fat_size..reserved + (n + 1) * fat_size)
            .collect(),
        root_directory: root_directory..data,
        data,
        cluster,
    }
}

#[test]
fn a_directory_whose_cluster_chain_loops_is_an_error_not_a_hang() {
    let (root, image) = drive(DriveFormat::Vfat);
    let mut bytes = std::fs::read(&image).unwrap();
    let layout = fat_layout(&bytes);
    let entry = bytes[layout.root_directory.clone()]
        .chunks(32)
        // openstack/ is the root's one directory (attribute 0x10; long-name
        // entries are 0x0F); its short name is mtools' choice (OPENST~1).
        .position(|entry| entry[0] != 0 && entry[0] != 0xE5 && entry[11] == 0x10)
        .expect("the root directory lists openstack");
    let first_cluster = le16(&bytes, layout.root_directory.start + entry * 32 + 26);
    // Every entry of openstack/ deleted (no end-of-directory mark)…
    let start = layout.data + (first_cluster - 2) * layout.cluster;
    for entry in bytes[start..start + layout.cluster].chunks_mut(32) {
        entry[0] = 0xE5;
    }
    // …and its FAT12 entry pointing back at the cluster itself, in every FAT.
    for fat in &layout.fats {
        let at = fat.start + first_cluster * 3 / 2;
        let value = u16::try_from(first_cluster).unwrap();
        let packed = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let packed = if first_cluster.is_multiple_of(2) {
            (packed & 0xF000) | value
        } else {
            (packed & 0x000F) | (value << 4)
        };
        bytes[at..at + 2].copy_from_slice(&packed.to_le_bytes());
    }
    std::fs::write(&image, &bytes).unwrap();
    let error = read_drive(root.path())
        .unwrap()
        .expect_err("a looping directory read as a drive");
    assert!(
        error.contains("the file system is damaged (a cluster chain loops)"),
        "{error}"
    );
}

/// Reads `DAMAGED_DRIVES` copies of `format`'s drive, each with 1–8 bytes in
/// `regions` (of the image as made) set at random; every read must answer.
fn damaged_drives_answer(format: DriveFormat, regions: impl Fn(&[u8]) -> Vec<Range<usize>>) {
    let (root, image) = drive(format);
    let pristine = std::fs::read(&image).unwrap();
    let regions = regions(&pristine);
    assert_eq!(read_drive(root.path()), Ok(Ok(())), "the undamaged drive");
    let mut errors = 0;
    for seed in 0..DAMAGED_DRIVES {
        let mut random = fastrand::Rng::with_seed(seed);
        let mut bytes = pristine.clone();
        for _ in 0..random.usize(1..=8) {
            let region = &regions[random.usize(..regions.len())];
            bytes[random.usize(region.clone())] = random.u8(..);
        }
        std::fs::write(&image, &bytes).unwrap();
        match read_drive(root.path()) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => errors += 1,
            Err(failure) => {
                let kept = std::env::temp_dir().join(format!("xitc-damaged-drive-{seed}.img"));
                std::fs::write(&kept, &bytes).unwrap();
                panic!(
                    "{format:?} drive, seed {seed} (kept at {}): {failure}",
                    kept.display()
                );
            }
        }
    }
    // The damage reached what the reader reads: not every drive still read.
    assert!(errors > 0, "no damaged {format:?} drive was refused");
}

#[test]
fn damaged_vfat_drives_are_errors_never_panics_or_hangs() {
    damaged_drives_answer(DriveFormat::Vfat, |image| {
        let layout = fat_layout(image);
        let mut regions = vec![0..64, 510..512, layout.root_directory.clone()];
        regions.extend(layout.fats.iter().map(|fat| fat.start..fat.start + 64));
        // openstack/, latest/ and network_data.json's first clusters.
        regions.push(layout.data..layout.data + 4 * layout.cluster);
        regions
    });
}

#[test]
fn damaged_iso9660_drives_are_errors_never_panics_or_hangs() {
    const SECTOR: usize = 2048;
    damaged_drives_answer(DriveFormat::Iso9660, |image| {
        // The primary volume descriptor's fields up to the root record, then
        // the descriptors, path tables and directories xorriso writes next.
        let end = image.len().min(40 * SECTOR);
        vec![16 * SECTOR..16 * SECTOR + 190, 17 * SECTOR..end]
    });
}
