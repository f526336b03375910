//! The user's credential: a private key file, or the ssh-agent.
//!
//! A key file is read and, when encrypted, decrypted here, before any connection:
//! a missing file, a file that is no key, or a wrong passphrase is the user's
//! mistake and must end the run at once (exit 2), not look like a server that
//! refuses us. libssh2 itself only reads the key after a handshake. OpenSSH-format
//! keys are checked with the `ssh-key` crate, PEM ones (PKCS#1, SEC1, PKCS#8,
//! encrypted or not) with OpenSSL, which libssh2 links anyway.

use std::path::{Path, PathBuf};

use crate::exit::{self, Classify as _};
use crate::secret::Secret;

/// The environment variable holding an encrypted key's passphrase.
pub const PASSPHRASE_ENV: &str = "XITC_KEY_PASSPHRASE";

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A private key file, already checked readable and decryptable.
    KeyFile {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
    /// The ssh-agent at `SSH_AUTH_SOCK`.
    Agent,
}

impl Credential {
    /// The credential for the tools' PRIVKEY argument: `-` means the agent, else a
    /// key file checked now. `passphrase` is `XITC_KEY_PASSPHRASE`,
    /// `agent_socket` is `SSH_AUTH_SOCK`.
    pub fn from_argument(
        argument: &Path,
        passphrase: Option<Secret>,
        agent_socket: Option<&Path>,
    ) -> anyhow::Result<Self> {
        if argument == Path::new("-") {
            return match agent_socket {
                Some(socket) if socket.exists() => Ok(Credential::Agent),
                Some(socket) => Err(exit::usage(format!(
                    "PRIVKEY is '-' (use the ssh-agent) but SSH_AUTH_SOCK {} does not exist",
                    socket.display()
                ))),
                None => Err(exit::usage(
                    "PRIVKEY is '-' (use the ssh-agent) but SSH_AUTH_SOCK is not set",
                )),
            };
        }
        check_key_file(argument, passphrase.as_ref())?;
        Ok(Credential::KeyFile {
            path: argument.to_path_buf(),
            passphrase,
        })
    }
}

/// Reads `path` and proves it is a usable private key (decrypting it with
/// `passphrase` when it is encrypted). All failures are usage errors naming it.
pub fn check_key_file(path: &Path, passphrase: Option<&Secret>) -> anyhow::Result<()> {
    let shown = path.display();
    let text = std::fs::read(path).or_usage(|| format!("cannot read key file {shown}"))?;
    let text = String::from_utf8(text).map_err(|_| {
        exit::usage(format!(
            "key file {shown} is not a text (PEM or OpenSSH) key"
        ))
    })?;
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = ssh_key::PrivateKey::from_openssh(&text)
            .or_usage(|| format!("key file {shown} is not a valid OpenSSH private key"))?;
        if key.is_encrypted() {
            let passphrase = passphrase.ok_or_else(|| {
                exit::usage(format!(
                    "key file {shown} is encrypted: set {PASSPHRASE_ENV}"
                ))
            })?;
            key.decrypt(passphrase.expose()).map_err(|_| {
                exit::usage(format!(
                    "wrong passphrase for key file {shown} ({PASSPHRASE_ENV})"
                ))
            })?;
        }
        return Ok(());
    }
    if text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----") {
        let encrypted = text.contains("ENCRYPTED");
        let parsed = match (encrypted, passphrase) {
            (true, None) => {
                return Err(exit::usage(format!(
                    "key file {shown} is encrypted: set {PASSPHRASE_ENV}"
                )));
            }
            (true, Some(passphrase)) => openssl::pkey::PKey::private_key_from_pem_passphrase(
                text.as_bytes(),
                passphrase.expose().as_bytes(),
            )
            .map_err(|_| {
                exit::usage(format!(
                    "wrong passphrase for key file {shown} ({PASSPHRASE_ENV})"
                ))
            }),
            (false, _) => openssl::pkey::PKey::private_key_from_pem(text.as_bytes())
                .or_usage(|| format!("key file {shown} is not a valid PEM private key")),
        };
        return parsed.map(drop);
    }
    Err(exit::usage(format!(
        "key file {shown} is not a private key (expected OpenSSH or PEM format)"
    )))
}
