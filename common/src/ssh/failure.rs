//! How an SSH attempt failed, in the terms callers act on. A leaf: the
//! session code and the host-key checks both make these, and neither is
//! imported by it.

use std::fmt;

/// What went wrong, in the terms callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No TCP connection: refused, unreachable, name not resolvable, timed out.
    Unreachable,
    /// TCP connected, but the SSH handshake failed or timed out (no banner, reset).
    Handshake,
    /// The server refused our key (or the agent had none it accepts).
    AuthRejected,
    /// The host key is not the pinned one.
    HostKeyMismatch,
    /// `strict` policy and the host is not in known_hosts.
    HostKeyUnknown,
    /// The session broke or timed out while running a command.
    Session,
    /// The command ran and exited non-zero (`Connection::run`).
    CommandFailed,
    /// A local problem: key unusable by libssh2, known_hosts unreadable, …
    Setup,
}

/// An SSH failure with its kind and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub(super) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    pub(super) fn ssh(kind: FailureKind, error: &ssh2::Error) -> Self {
        Failure::new(kind, error.message().to_owned())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
