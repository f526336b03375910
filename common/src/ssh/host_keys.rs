//! Host-key policy (README "xitc-wait-until-done": `--known-hosts`,
//! `--host-key-policy`).
//!
//! A node changes its host key legitimately while it converts itself (Ubuntu, then
//! dom0, then the appliance answer on the same address), so by default any key is
//! accepted, as the 2014 scripts did, and a change is reported. Users who want pins
//! give an OpenSSH known_hosts file: `accept-new` records unknown hosts and refuses
//! changed keys, `strict` refuses both. Matching uses libssh2's own known_hosts
//! code, which understands hashed entries and `[host]:port`; new entries are
//! appended as one line, never by rewriting the user's file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, Session};

use super::failure::{Failure, FailureKind};
use super::target::Target;

/// What to do with the server's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Accept any key; report when it differs from the one seen before in this run.
    AcceptAny,
    /// Accept keys in the file; add unknown hosts to it; refuse changed keys.
    AcceptNew(PathBuf),
    /// Accept only keys in the file.
    Strict(PathBuf),
}

/// `SHA256:…` as OpenSSH prints fingerprints.
pub fn fingerprint(key_blob: &[u8]) -> String {
    let digest = openssl::sha::sha256(key_blob);
    let encoded = openssl::base64::encode_block(&digest);
    format!("SHA256:{}", encoded.trim_end_matches('='))
}

fn key_type_name(kind: HostKeyType) -> Option<&'static str> {
    match kind {
        HostKeyType::Rsa => Some("ssh-rsa"),
        HostKeyType::Dss => Some("ssh-dss"),
        HostKeyType::Ecdsa256 => Some("ecdsa-sha2-nistp256"),
        HostKeyType::Ecdsa384 => Some("ecdsa-sha2-nistp384"),
        HostKeyType::Ecdsa521 => Some("ecdsa-sha2-nistp521"),
        HostKeyType::Ed25519 => Some("ssh-ed25519"),
        HostKeyType::Unknown => None,
    }
}

/// Checks the session's host key against `policy`; returns its fingerprint.
pub(super) fn check(
    session: &Session,
    target: &Target,
    policy: &HostKeyPolicy,
) -> Result<String, Failure> {
    let (blob, kind) = session
        .host_key()
        .ok_or_else(|| Failure::new(FailureKind::Handshake, "the server sent no host key"))?;
    let found = fingerprint(blob);
    let (file, add_unknown) = match policy {
        HostKeyPolicy::AcceptAny => return Ok(found),
        HostKeyPolicy::AcceptNew(file) => (file, true),
        HostKeyPolicy::Strict(file) => (file, false),
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(Failure::new(
                FailureKind::Setup,
                format!("cannot read known_hosts {}: {error}", file.display()),
            ));
        }
    };
    let mut known = session
        .known_hosts()
        .map_err(|error| Failure::ssh(FailureKind::Setup, &error))?;
    let mut pinned = Vec::new();
    for line in text.lines() {
        // One entry at a time, so that the entries for this host (hashed or not)
        // are known and their fingerprints can be shown on a mismatch.
        let Ok(mut single) = session.known_hosts() else {
            continue;
        };
        if single.read_str(line, KnownHostFileKind::OpenSSH).is_err() {
            continue;
        }
        let _ = known.read_str(line, KnownHostFileKind::OpenSSH);
        if matches!(
            single.check_port(&target.host, target.port, blob),
            CheckResult::Match | CheckResult::Mismatch
        ) && let Some(pinned_key) = line_key_fingerprint(line)
        {
            pinned.push(pinned_key);
        }
    }
    match known.check_port(&target.host, target.port, blob) {
        CheckResult::Match => Ok(found),
        CheckResult::NotFound if add_unknown => {
            append(file, target, kind, blob)?;
            Ok(found)
        }
        CheckResult::NotFound => Err(Failure::new(
            FailureKind::HostKeyUnknown,
            format!(
                "host key {found} of {} is not in {} (--host-key-policy strict)",
                target.known_hosts_name(),
                file.display()
            ),
        )),
        CheckResult::Mismatch => Err(Failure::new(
            FailureKind::HostKeyMismatch,
            format!(
                "host key of {} changed: {} pins {}, the server sent {found}",
                target.known_hosts_name(),
                file.display(),
                pinned.join(", ")
            ),
        )),
        CheckResult::Failure => Err(Failure::new(
            FailureKind::Setup,
            format!("cannot check the host key against {}", file.display()),
        )),
    }
}

/// The fingerprint of the key on a known_hosts line (`[@marker] hosts type key`).
fn line_key_fingerprint(line: &str) -> Option<String> {
    let mut fields = line
        .split_whitespace()
        .skip_while(|field| field.starts_with('@'));
    let _hosts = fields.next()?;
    let _type = fields.next()?;
    let blob = openssl::base64::decode_block(fields.next()?).ok()?;
    Some(fingerprint(&blob))
}

fn append(file: &Path, target: &Target, kind: HostKeyType, blob: &[u8]) -> Result<(), Failure> {
    let type_name = key_type_name(kind).ok_or_else(|| {
        Failure::new(
            FailureKind::Setup,
            "the server's host key is of an unknown type",
        )
    })?;
    let line = format!(
        "{} {type_name} {}\n",
        target.known_hosts_name(),
        openssl::base64::encode_block(blob)
    );
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut handle| {
            // A file that does not end in a newline would glue our entry to its last.
            let needs_newline = std::fs::read(file)
                .is_ok_and(|bytes| bytes.last().is_some_and(|last| *last != b'\n'));
            if needs_newline {
                handle.write_all(b"\n")?;
            }
            handle.write_all(line.as_bytes())
        });
    result.map_err(|error| {
        Failure::new(
            FailureKind::Setup,
            format!("cannot add the host key to {}: {error}", file.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_look_like_openssh() {
        let blob = openssl::base64::decode_block(
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        )
        .unwrap();
        let printed = fingerprint(&blob);
        assert!(printed.starts_with("SHA256:"));
        assert!(!printed.ends_with('='));
        assert_eq!(printed.len(), "SHA256:".len() + 43);
    }

    #[test]
    fn known_hosts_lines_yield_their_key() {
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        let expected = fingerprint(&openssl::base64::decode_block(key).unwrap());
        for line in [
            format!("[127.0.0.1]:2222 ssh-ed25519 {key}"),
            format!("|1|c2FsdA==|aGFzaA== ssh-ed25519 {key} comment"),
            format!("@cert-authority *.example ssh-ed25519 {key}"),
        ] {
            assert_eq!(
                line_key_fingerprint(&line).as_deref(),
                Some(expected.as_str())
            );
        }
        assert_eq!(line_key_fingerprint("# comment"), None);
    }
}
