//! Large downloads (the installer ISO, the appliance XVA) for xitc-convert:
//! streamed to disk in bounded memory, resumed with HTTP Range after an
//! interruption, retried by the workspace's one policy ([`crate::retry`],
//! [`crate::retry::DOWNLOAD`]) inside a deadline, SHA-256 checked while
//! they stream (a resumed part is hashed once, then the rest as it arrives), and renamed into place only when complete and verified.
//!
//! This and [`crate::cloud`] are the workspace's only HTTP: API calls there,
//! file transfers here, both over ureq (this feature does not pull in the cloud
//! API's YAML and JSON dependencies, so the static node binary stays small).
//!
//! A transfer writes `DEST.part`; a later run (after a crash or reboot) asks for
//! the rest with `Range: bytes=N-` and hashes the part it already has. A server
//! that ignores the range (200) restarts it from zero. A finished file whose sum
//! does not match is deleted, so nothing half-written stays looking complete.
//! `file://` URLs are copied the same way (tests, rehearsals, pre-seeded nodes).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::hex;
use crate::poll::{Clock, Deadline, SystemClock};
use crate::retry::{self, Attempt};

const BUFFER: usize = 256 * 1024;

/// One file to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub url: String,
    pub destination: PathBuf,
    /// Expected SHA-256, lower-case hex; `None` accepts any content.
    pub sha256: Option<String>,
}

/// How the transfer reports progress: bytes so far and the total when known.
pub type Progress<'a> = dyn FnMut(u64, Option<u64>) + Send + 'a;

/// What went wrong with one attempt.
enum Failure {
    /// Worth another attempt (network trouble, 5xx).
    Transient(String),
    Permanent(anyhow::Error),
}

impl Failure {
    /// As the retry policy takes it.
    fn into_attempt(self) -> anyhow::Result<Attempt<String>> {
        match self {
            Failure::Transient(why) => Ok(Attempt::transient(why)),
            Failure::Permanent(error) => Err(error),
        }
    }
}

/// Fetches `download` (unless a verified copy is already in place) within
/// `deadline`; returns the file's SHA-256 (lower-case hex).
pub fn fetch(
    download: &Download,
    deadline: &Deadline,
    progress: &mut Progress<'_>,
) -> anyhow::Result<String> {
    fetch_on(&SystemClock, retry::DOWNLOAD, download, deadline, progress)
}

/// [`fetch`] on `clock`, with `policy` (tests).
fn fetch_on(
    clock: &impl Clock,
    policy: retry::Policy,
    download: &Download,
    deadline: &Deadline,
    progress: &mut Progress<'_>,
) -> anyhow::Result<String> {
    let destination = &download.destination;
    if destination.is_file() {
        let sum = hash_file(destination)?.1;
        match &download.sha256 {
            Some(expected) if *expected != sum => {
                fs::remove_file(destination)
                    .with_context(|| format!("removing {}", destination.display()))?;
            }
            _ => return Ok(sum),
        }
    }
    let part = part_path(destination);
    let what = format!("downloading {}", download.url);
    let sum = retry::retry(
        clock,
        deadline,
        policy,
        &what,
        None,
        |deadline| match attempt(clock, download, &part, deadline, progress) {
            Ok(sum) => Ok(Attempt::Done(sum)),
            Err(failure) => failure.into_attempt(),
        },
    )?;
    if let Some(expected) = &download.sha256
        && *expected != sum
    {
        let _ = fs::remove_file(&part);
        anyhow::bail!(
            "downloading {}: SHA-256 mismatch: expected {expected}, got {sum}; the file was removed",
            download.url
        );
    }
    File::open(&part)
        .and_then(|file| file.sync_all())
        .and_then(|()| fs::rename(&part, destination))
        .with_context(|| format!("moving {} into place", destination.display()))?;
    Ok(sum)
}

/// Fetches several downloads at once, one thread each; the first error wins.
/// `progress(index, done, total)` hears from every transfer.
pub fn fetch_all(
    downloads: &[Download],
    deadline: &Deadline,
    progress: &(dyn Fn(usize, u64, Option<u64>) + Sync),
) -> anyhow::Result<Vec<String>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = downloads
            .iter()
            .enumerate()
            .map(|(index, download)| {
                scope.spawn(move || {
                    fetch(download, deadline, &mut |done, total| {
                        progress(index, done, total);
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a download thread panicked")))
            })
            .collect()
    })
}

/// Turns progress reports into one line every 10 % (for logs, not terminals).
#[derive(Debug, Default)]
pub struct TenPercent {
    last: std::sync::Mutex<std::collections::BTreeMap<usize, u64>>,
}

impl TenPercent {
    /// The line to print for this report, if it reaches a new tenth.
    pub fn line(&self, index: usize, name: &str, done: u64, total: Option<u64>) -> Option<String> {
        let total = total.filter(|total| *total > 0)?;
        let tenth = done.min(total) * 10 / total;
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.get(&index) == Some(&tenth) {
            return None;
        }
        last.insert(index, tenth);
        Some(format!("{name}: {}% of {total} bytes", tenth * 10))
    }
}

/// The size of what `url` serves (a HEAD request, or the file for `file://`),
/// when the server says.
pub fn content_length(url: &str) -> Option<u64> {
    if let Some(path) = url.strip_prefix("file://") {
        return fs::metadata(path).ok().map(|meta| meta.len());
    }
    let agent = crate::resolve::agent(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let response = agent.head(url).call().ok()?;
    response
        .headers()
        .get("Content-Length")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `DEST.part`.
pub fn part_path(destination: &Path) -> PathBuf {
    let mut name = destination.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    destination.with_file_name(name)
}

/// Length and SHA-256 of a file.
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut reader = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; BUFFER];
    let mut length = 0;
    loop {
        let read = reader
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        length += read as u64;
    }
    Ok((length, hex::lower(&hasher.finalize())))
}

/// One transfer attempt into `part`, continuing what is there; the SHA-256 of
/// the whole part when it is complete (hashed as it streams, so the file is
/// not read a second time).
fn attempt(
    clock: &impl Clock,
    download: &Download,
    part: &Path,
    deadline: &Deadline,
    progress: &mut Progress<'_>,
) -> Result<String, Failure> {
    let permanent = |error: anyhow::Error| Failure::Permanent(error);
    let have = fs::metadata(part).map_or(0, |meta| meta.len());
    if let Some(path) = download.url.strip_prefix("file://") {
        copy_local(Path::new(path), part, progress).map_err(permanent)?;
        return hash_file(part).map(|(_, sum)| sum).map_err(permanent);
    }
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build();
    let agent = crate::resolve::agent(config);
    let mut request = agent.get(&download.url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    if deadline.is_expired(clock.now()) {
        return Err(Failure::Transient("no time left".into()));
    }
    let mut response = match request.call() {
        Ok(response) => response,
        // A host name that does not exist is final, as for the API
        // ([`crate::resolve`]); a lookup that may work later is `Io`.
        Err(
            error @ (ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed),
        ) => {
            return Err(Failure::Transient(error.to_string()));
        }
        Err(error) => {
            return Err(permanent(anyhow::anyhow!(
                "downloading {}: {error}",
                download.url
            )));
        }
    };
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get("Content-Length")
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let append = match status {
        206 => true,
        200 => false,
        // The part already holds everything.
        416 if have > 0 => return hash_file(part).map(|(_, sum)| sum).map_err(permanent),
        408 | 429 | 500 | 502 | 503 | 504 => {
            return Err(Failure::Transient(format!("HTTP {status}")));
        }
        _ => {
            return Err(permanent(anyhow::anyhow!(
                "downloading {}: HTTP {status}",
                download.url
            )));
        }
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .with_context(|| format!("opening {}", part.display()))
        .map_err(permanent)?;
    let start = if append { have } else { 0 };
    file.set_len(start)
        .and_then(|()| file.seek(SeekFrom::Start(start)).map(drop))
        .with_context(|| format!("preparing {}", part.display()))
        .map_err(permanent)?;
    let total = length.map(|length| length + start);
    let mut hasher = Sha256::new();
    if start > 0 {
        hash_prefix(part, start, &mut hasher).map_err(permanent)?;
    }
    let mut body = response.body_mut().as_reader();
    let mut buffer = vec![0; BUFFER];
    let mut done = start;
    loop {
        let read = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) => return Err(Failure::Transient(format!("the transfer broke: {error}"))),
        };
        file.write_all(&buffer[..read])
            .with_context(|| format!("writing {}", part.display()))
            .map_err(permanent)?;
        hasher.update(&buffer[..read]);
        done += read as u64;
        progress(done, total);
    }
    if total.is_some_and(|total| done < total) {
        return Err(Failure::Transient(format!(
            "the transfer ended early at {done} bytes"
        )));
    }
    Ok(hex::lower(&hasher.finalize()))
}

/// Feeds the first `length` bytes of `path` to `hasher` (a resumed part).
fn hash_prefix(path: &Path, length: u64, hasher: &mut Sha256) -> anyhow::Result<()> {
    let mut reader = File::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .take(length);
    let mut buffer = vec![0; BUFFER];
    loop {
        let read = reader
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..read]);
    }
}

fn copy_local(source: &Path, part: &Path, progress: &mut Progress<'_>) -> anyhow::Result<()> {
    let mut input = File::open(source).with_context(|| format!("reading {}", source.display()))?;
    let total = input.metadata().ok().map(|meta| meta.len());
    let mut output = File::create(part).with_context(|| format!("creating {}", part.display()))?;
    let copied = io::copy(&mut input, &mut output)
        .with_context(|| format!("copying {} to {}", source.display(), part.display()))?;
    progress(copied, total);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_percent_steps() {
        let steps = TenPercent::default();
        let lines: Vec<String> = (0..=100u64)
            .filter_map(|done| steps.line(0, "f", done * 10, Some(1000)))
            .collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "f: 0% of 1000 bytes");
        assert_eq!(lines[10], "f: 100% of 1000 bytes");
        assert_eq!(steps.line(1, "g", 5, None), None);
    }

    #[test]
    fn a_transient_fault_is_retried_by_the_download_policy_up_to_the_deadline() {
        let (url, served) = crate::testing::scripted_server(&[crate::testing::UNAVAILABLE]);
        let dir = tempfile::tempdir().unwrap();
        let download = Download {
            url: url.clone(),
            destination: dir.path().join("x.iso"),
            sha256: None,
        };
        let clock = crate::testing::FakeClock::new();
        let deadline = Deadline::new(clock.now(), Some(Duration::from_secs(3)));
        let policy = retry::Policy {
            jitter: false,
            ..retry::DOWNLOAD
        };
        let error = fetch_on(&clock, policy, &download, &deadline, &mut |_, _| {}).unwrap_err();
        assert_eq!(crate::exit::kind_of(&error), crate::exit::Kind::Timeout);
        assert_eq!(
            error.to_string(),
            format!("downloading {url}: timed out after 2.0s (HTTP 503)")
        );
        // 0.5 s, then 1 s; the next (2 s) shortened to a last try a second
        // before the deadline.
        let secs = Duration::from_secs_f64;
        assert_eq!(clock.sleeps(), [0.5, 1.0, 0.5].map(secs));
        assert_eq!(*served.lock().unwrap(), 4);
        assert!(!download.destination.exists());
    }

    #[test]
    fn part_files_sit_beside_their_destination() {
        assert_eq!(
            part_path(Path::new("/root/x.iso")),
            Path::new("/root/x.iso.part")
        );
    }

    #[test]
    fn hashes_are_lower_case_hex() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc");
        fs::write(&file, b"abc").unwrap();
        assert_eq!(
            hash_file(&file).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            )
        );
    }
}
