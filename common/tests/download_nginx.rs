//! common::download against a real nginx (Range support included).

use std::time::{Duration, Instant};

use xitc_common::download::{Download, fetch, fetch_all, part_path};
use xitc_common::exit::{Kind, kind_of};
use xitc_common::poll::Deadline;
use xitc_test_support::Nginx;

fn deadline(seconds: u64) -> Deadline {
    Deadline::new(Instant::now(), Some(Duration::from_secs(seconds)))
}

fn content(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| u8::try_from((i * 7 + usize::from(seed)) % 253).unwrap())
        .collect()
}

fn sha256_of(bytes: &[u8]) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

struct Setup {
    nginx: Nginx,
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
}

fn setup(name: &str, length: usize) -> Setup {
    let nginx = Nginx::start();
    let bytes = content(length, 5);
    std::fs::write(nginx.root().join(name), &bytes).unwrap();
    Setup {
        nginx,
        dir: tempfile::tempdir().unwrap(),
        bytes,
    }
}

impl Setup {
    fn download(&self, name: &str, sha256: Option<String>) -> Download {
        Download {
            url: self.nginx.url(name),
            destination: self.dir.path().join(name),
            sha256,
        }
    }
}

#[test]
fn a_file_arrives_whole_with_its_checksum_and_progress() {
    let setup = setup("x.iso", 3 << 20);
    let sum = sha256_of(&setup.bytes);
    let download = setup.download("x.iso", Some(sum.clone()));
    let mut reports = Vec::new();
    let got = fetch(&download, &deadline(60), &mut |done, total| {
        reports.push((done, total));
    })
    .unwrap();
    assert_eq!(got, sum);
    assert_eq!(std::fs::read(&download.destination).unwrap(), setup.bytes);
    assert!(!part_path(&download.destination).exists());
    assert_eq!(reports.last(), Some(&(3 << 20, Some(3 << 20))));
    // Again: the verified file is kept and nothing is requested.
    let requests = setup.nginx.access_log().lines().count();
    assert_eq!(
        fetch(&download, &deadline(60), &mut |_, _| {}).unwrap(),
        sum
    );
    assert_eq!(setup.nginx.access_log().lines().count(), requests);
}

#[test]
fn an_interrupted_transfer_is_resumed_with_a_range_request() {
    let setup = setup("y.xva", 2 << 20);
    let download = setup.download("y.xva", Some(sha256_of(&setup.bytes)));
    std::fs::write(part_path(&download.destination), &setup.bytes[..1 << 20]).unwrap();
    fetch(&download, &deadline(60), &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&download.destination).unwrap(), setup.bytes);
    let log = setup.nginx.access_log();
    assert!(
        log.contains(&format!(
            "\"GET /y.xva HTTP/1.1\" 206 {} \"bytes={}-\"",
            1 << 20,
            1 << 20
        )),
        "{log}"
    );
}

#[test]
fn a_wrong_checksum_removes_the_file_and_names_both_sums() {
    let setup = setup("z.iso", 100_000);
    let wrong = "0".repeat(64);
    let download = setup.download("z.iso", Some(wrong.clone()));
    let error = fetch(&download, &deadline(60), &mut |_, _| {}).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains(&wrong) && message.contains(&sha256_of(&setup.bytes)),
        "{message}"
    );
    assert_eq!(kind_of(&error), Kind::Failed);
    assert!(!download.destination.exists() && !part_path(&download.destination).exists());
}

#[test]
fn a_corrupt_part_is_caught_by_the_checksum_and_a_rerun_starts_over() {
    let setup = setup("c.iso", 300_000);
    let download = setup.download("c.iso", Some(sha256_of(&setup.bytes)));
    std::fs::write(part_path(&download.destination), vec![0xff; 1000]).unwrap();
    assert!(fetch(&download, &deadline(60), &mut |_, _| {}).is_err());
    fetch(&download, &deadline(60), &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&download.destination).unwrap(), setup.bytes);
}

#[test]
fn missing_files_fail_at_once_and_server_errors_until_the_deadline() {
    let setup = setup("present", 10);
    let missing = setup.download("absent.iso", None);
    let error = fetch(&missing, &deadline(600), &mut |_, _| {}).unwrap_err();
    assert!(
        format!("{error:#}").contains("absent.iso: HTTP 404"),
        "{error:#}"
    );
    let tries = setup.nginx.access_log().matches("/absent.iso").count();
    assert_eq!(tries, 1, "404 must not be retried");

    let broken = setup.download("status/503", None);
    let error = fetch(&broken, &deadline(2), &mut |_, _| {}).unwrap_err();
    assert_eq!(kind_of(&error), Kind::Timeout);
    assert!(format!("{error:#}").contains("HTTP 503"), "{error:#}");
    let retries = setup.nginx.access_log().matches("/status/503").count();
    assert!(retries >= 2, "503 must be retried, got {retries} requests");
}

#[test]
fn downloads_run_in_parallel_and_file_urls_work() {
    let setup = setup("a.bin", 1 << 20);
    let second = content(500_000, 9);
    std::fs::write(setup.nginx.root().join("b.bin"), &second).unwrap();
    let local = setup.dir.path().join("local-source");
    std::fs::write(&local, b"local bytes").unwrap();
    let downloads = [
        setup.download("a.bin", Some(sha256_of(&setup.bytes))),
        setup.download("b.bin", None),
        Download {
            url: format!("file://{}", local.display()),
            destination: setup.dir.path().join("copied"),
            sha256: Some(sha256_of(b"local bytes")),
        },
    ];
    let lines = std::sync::Mutex::new(Vec::new());
    let steps = xitc_common::download::TenPercent::default();
    let sums = fetch_all(&downloads, &deadline(60), &|index, done, total| {
        if let Some(line) = steps.line(index, &downloads[index].url, done, total) {
            lines.lock().unwrap().push(line);
        }
    })
    .unwrap();
    let lines = lines.into_inner().unwrap();
    let a_url = setup.nginx.url("a.bin");
    assert!(
        lines.contains(&format!("{a_url}: 100% of {} bytes", 1 << 20)),
        "{lines:?}"
    );
    assert!(lines.iter().filter(|line| line.starts_with(&a_url)).count() <= 11);
    assert_eq!(
        xitc_common::download::content_length(&setup.nginx.url("b.bin")),
        Some(500_000)
    );
    assert_eq!(
        xitc_common::download::content_length(&setup.nginx.url("none")),
        None
    );
    assert_eq!(sums[1], sha256_of(&second));
    assert_eq!(
        std::fs::read(setup.dir.path().join("copied")).unwrap(),
        b"local bytes"
    );
    assert_eq!(
        std::fs::read(setup.dir.path().join("b.bin")).unwrap(),
        second
    );
}

/// A small file system, mounted from an image for the test (root, as CI has).
struct SmallFs {
    _dir: tempfile::TempDir,
    mount: std::path::PathBuf,
}

impl SmallFs {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program)
                .args(args)
                .status()
                .unwrap();
            assert!(
                status.success(),
                "{program} failed (the test needs root, as CI has)"
            );
        };
        run(
            "truncate",
            &["-s".as_ref(), size.as_ref(), image.as_os_str()],
        );
        run("mkfs.ext4", &["-q".as_ref(), image.as_os_str()]);
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mount.as_os_str(),
            ],
        );
        SmallFs { _dir: dir, mount }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
    }
}

#[test]
fn a_full_disk_is_an_error_and_leaves_nothing_that_looks_complete() {
    let setup = setup("huge.xva", 20 << 20);
    let small = SmallFs::new("8M");
    let download = Download {
        url: setup.nginx.url("huge.xva"),
        destination: small.mount.join("huge.xva"),
        sha256: None,
    };
    let error = fetch(&download, &deadline(60), &mut |_, _| {}).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("No space left on device"), "{message}");
    assert!(!download.destination.exists(), "a partial file in place");
}
