//! Reading an ISO 9660 image in userspace (no loop mount: nodes and test
//! machines may not allow one): find files by path, copy them out. It reads
//! the installer ISO (which installer it is: [`crate::installer::identify`])
//! and a config drive made as iso9660 ([`crate::config_drive`]).
//!
//! Hand-written on purpose, and small: of the ISO 9660 crates, `cdfs` pulls in a
//! FUSE library, `iso9660` does not read Rock Ridge names (the installer's
//! `.treeinfo` has no plain ISO 9660 name), and `iso9660_simple` panics on
//! malformed names and stops at the first sector of a directory. This reader
//! does what the conversion needs — the primary volume descriptor, directory
//! records over any number of sectors, Rock Ridge `NM` names, single-extent
//! files — and checks every offset, so a damaged ISO is an error, never a panic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Context as _;

const SECTOR: u64 = 2048;

/// An open ISO image.
#[derive(Debug)]
pub struct Iso {
    file: File,
    root: Entry,
    size: u64,
}

/// A file or directory in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
    lba: u64,
    pub length: u64,
}

impl Iso {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        let mut descriptor = [0u8; 2048];
        read_at(&mut file, size, 16 * SECTOR, &mut descriptor)
            .with_context(|| format!("{} is too short to be an ISO image", path.display()))?;
        if descriptor[0] != 1 || &descriptor[1..6] != b"CD001" {
            anyhow::bail!(
                "{} is not an ISO 9660 image (no primary volume descriptor)",
                path.display()
            );
        }
        let root = parse_record(&descriptor[156..190])
            .with_context(|| format!("{}: the root directory record is damaged", path.display()))?;
        Ok(Iso { file, root, size })
    }

    /// The entries of a directory.
    pub fn list(&mut self, directory: &Entry) -> anyhow::Result<Vec<Entry>> {
        if !directory.is_dir {
            anyhow::bail!("{} is not a directory", directory.name);
        }
        // Installer directories are a few sectors; a huge length is damage.
        anyhow::ensure!(
            directory.length <= 16 << 20,
            "directory {} claims {} bytes: the ISO is damaged",
            directory.name,
            directory.length
        );
        let mut data = vec![0u8; usize::try_from(directory.length)?];
        read_at(&mut self.file, self.size, directory.lba * SECTOR, &mut data)
            .context("reading a directory")?;
        let mut entries = Vec::new();
        let mut offset = 0usize;
        while offset < data.len() {
            let length = usize::from(data[offset]);
            if length == 0 {
                // Records never cross a sector: the rest of this one is padding.
                offset = (offset / 2048 + 1) * 2048;
                continue;
            }
            let record = data
                .get(offset..offset + length)
                .context("a directory record runs past its directory")?;
            let entry = parse_record(record)?;
            if entry.name != "." && entry.name != ".." {
                entries.push(entry);
            }
            offset += length;
        }
        Ok(entries)
    }

    /// The entry at `path` (`boot/xen.gz`), if there is one.
    pub fn find(&mut self, path: &str) -> anyhow::Result<Option<Entry>> {
        let mut current = self.root.clone();
        for component in path.split('/').filter(|part| !part.is_empty()) {
            let next = self
                .list(&current)?
                .into_iter()
                .find(|entry| entry.name == component);
            match next {
                Some(entry) => current = entry,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// Copies the file at `path` into `out`; its length.
    pub fn copy(&mut self, path: &str, out: &mut impl Write) -> anyhow::Result<u64> {
        let entry = self
            .find(path)?
            .with_context(|| format!("the ISO has no {path}"))?;
        if entry.is_dir {
            anyhow::bail!("{path} in the ISO is a directory");
        }
        let end = entry.lba * SECTOR + entry.length;
        if end > self.size {
            anyhow::bail!("{path} runs past the end of the ISO (is it truncated?)");
        }
        self.file.seek(SeekFrom::Start(entry.lba * SECTOR))?;
        let copied = io::copy(&mut (&mut self.file).take(entry.length), out)
            .with_context(|| format!("copying {path} out of the ISO"))?;
        Ok(copied)
    }

    /// A small file's contents as text.
    pub fn read_text(&mut self, path: &str) -> anyhow::Result<Option<String>> {
        if self.find(path)?.is_none() {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        self.copy(path, &mut bytes)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

fn read_at(file: &mut File, size: u64, offset: u64, buffer: &mut [u8]) -> anyhow::Result<()> {
    if offset + buffer.len() as u64 > size {
        anyhow::bail!(
            "the image ends before byte {}",
            offset + buffer.len() as u64
        );
    }
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buffer)?;
    Ok(())
}

fn le32(bytes: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// One directory record; its Rock Ridge name when it has one.
fn parse_record(record: &[u8]) -> anyhow::Result<Entry> {
    anyhow::ensure!(record.len() >= 34, "a directory record is too short");
    let lba = le32(&record[2..6]);
    let length = le32(&record[10..14]);
    let is_dir = record[25] & 0x02 != 0;
    let name_length = usize::from(record[32]);
    let name_bytes = record
        .get(33..33 + name_length)
        .context("a directory record's name runs past it")?;
    let plain = match name_bytes {
        [0] => ".".to_owned(),
        [1] => "..".to_owned(),
        bytes => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.split(';').next().unwrap_or_default();
            text.strip_suffix('.').unwrap_or(text).to_owned()
        }
    };
    // System Use area: after the name and its padding byte (when the name length
    // is even).
    let system_use_start = 33 + name_length + usize::from(name_length % 2 == 0);
    let rock_ridge = record.get(system_use_start..).and_then(rock_ridge_name);
    Ok(Entry {
        name: rock_ridge.unwrap_or(plain),
        is_dir,
        lba,
        length,
    })
}

/// The name in the SUSP `NM` entries of a System Use area.
fn rock_ridge_name(mut area: &[u8]) -> Option<String> {
    let mut name = Vec::new();
    while area.len() >= 4 {
        let length = usize::from(area[2]);
        if length < 4 || length > area.len() {
            break;
        }
        if &area[..2] == b"NM" && length >= 5 {
            name.extend_from_slice(&area[5..length]);
        }
        area = &area[length..];
    }
    (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_records_are_errors() {
        assert!(parse_record(&[0u8; 10]).is_err());
        let mut record = [0u8; 34];
        record[32] = 200;
        assert!(parse_record(&record).is_err());
        assert_eq!(rock_ridge_name(b"NM\x03"), None);
        assert_eq!(rock_ridge_name(b"NM\x09\x01\x00name"), Some("name".into()));
    }
}
