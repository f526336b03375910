//! Reading installer ISOs made by xorriso in the installer's layout (XCP-ng 8.3
//! and XenServer 6.2 style), in userspace.

use std::path::{Path, PathBuf};

use bin_convert::installer::identify;
use bin_convert::installer::{Dialect, Generation};
use bin_convert::iso::Iso;

fn content(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| u8::try_from((i * 13 + usize::from(seed)) % 241).unwrap())
        .collect()
}

/// Writes `files` under a temp dir and makes a Rock Ridge ISO of it.
fn make_iso(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for (path, bytes) in files {
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let iso = dir.path().join("installer.iso");
    xitc_test_support::mkisofs(&["-R"], &iso, &tree);
    (dir, iso)
}

fn installer_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("install.img", content(700_000, 1)),
        ("boot/xen.gz", content(50_000, 2)),
        ("boot/vmlinuz", content(120_000, 3)),
    ]
}

fn copied(iso: &mut Iso, path: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    iso.copy(path, &mut bytes).unwrap();
    bytes
}

#[test]
fn an_xcp_ng_iso_is_identified_and_its_files_copied() {
    let mut files = installer_files();
    files.push((
        ".treeinfo",
        b"[general]\nfamily = XCP-ng\nversion = 8.3.0\n".to_vec(),
    ));
    files.push(("repodata/repomd.xml", b"<repomd/>".to_vec()));
    let (_dir, path) = make_iso(&files);
    let mut iso = Iso::open(&path).unwrap();
    let installer = identify(&mut iso).unwrap();
    assert_eq!(
        (installer.product.as_str(), installer.version.as_str()),
        ("XCP-ng", "8.3.0")
    );
    assert_eq!(installer.generation, Generation::XenServer8);
    assert_eq!(installer.generation.dialect(), Dialect::XenServer7);
    for (name, bytes) in installer_files() {
        assert_eq!(copied(&mut iso, name), bytes, "{name}");
    }
}

#[test]
fn a_xenserver_6_iso_is_identified_by_its_repository_file() {
    let mut files = installer_files();
    files.push((
        "packages.main/XS-REPOSITORY",
        // What 6.2's ISO says: the platform (XCP 1.8.0), not "XenServer 6".
        br#"<repository originator="xs" name="main" product="XCP" version="1.8.0" build="70446c"/>"#.to_vec(),
    ));
    let (_dir, path) = make_iso(&files);
    let mut iso = Iso::open(&path).unwrap();
    let installer = identify(&mut iso).unwrap();
    assert_eq!(installer.generation, Generation::XenServer6);
    assert_eq!(installer.generation.dialect(), Dialect::XenServer6);
    assert_eq!(installer.version, "6.x (platform XCP 1.8.0)");
}

#[test]
fn directories_over_many_sectors_are_read_whole() {
    let mut files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("many/file-with-a-long-name-{i:04}.rpm"),
                vec![u8::try_from(i % 256).unwrap()],
            )
        })
        .collect();
    files.push(("many/zz-last".to_owned(), b"last".to_vec()));
    let borrowed: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.clone()))
        .collect();
    let (_dir, path) = make_iso(&borrowed);
    let mut iso = Iso::open(&path).unwrap();
    let many = iso.find("many").unwrap().unwrap();
    assert!(many.length > 2048, "the directory should span sectors");
    assert_eq!(iso.list(&many).unwrap().len(), 301);
    assert_eq!(copied(&mut iso, "many/zz-last"), b"last");
    assert_eq!(
        copied(&mut iso, "many/file-with-a-long-name-0299.rpm"),
        [43]
    ); // 299 % 256
}

#[test]
fn missing_files_and_bad_images_are_errors_not_panics() {
    let (dir, path) = make_iso(&installer_files());
    let mut iso = Iso::open(&path).unwrap();
    let error = iso.copy("boot/missing.gz", &mut Vec::new()).unwrap_err();
    assert!(
        error.to_string().contains("the ISO has no boot/missing.gz"),
        "{error}"
    );
    assert!(
        identify(&mut iso)
            .unwrap_err()
            .to_string()
            .contains("no XenServer or XCP-ng installer")
    );
    assert!(iso.copy("boot", &mut Vec::new()).is_err());

    let not_iso = dir.path().join("not.iso");
    std::fs::write(&not_iso, vec![0u8; 100_000]).unwrap();
    assert!(
        Iso::open(&not_iso)
            .unwrap_err()
            .to_string()
            .contains("not an ISO 9660 image")
    );
    assert!(Iso::open(Path::new("/nonexistent.iso")).is_err());

    // Cut the image in the middle of install.img.
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.iso");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut iso = Iso::open(&truncated).unwrap();
    let error = iso.copy("install.img", &mut Vec::new()).unwrap_err();
    assert!(
        error.to_string().contains("runs past the end of the ISO"),
        "{error}"
    );
    let tiny = dir.path().join("tiny.iso");
    std::fs::write(&tiny, &bytes[..30_000]).unwrap();
    assert!(
        Iso::open(&tiny)
            .unwrap_err()
            .to_string()
            .contains("too short")
    );
}
