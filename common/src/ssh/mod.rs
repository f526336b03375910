//! The only SSH code of the workspace (libssh2 through the `ssh2` crate): connect
//! with a time limit, check the host key, log in with a key file or the agent, run
//! a command, upload a file. Used by `xitc-wait-until-done` and `test-rs`.
//!
//! Every failure is a [`Failure`] of a [`FailureKind`], so callers can tell "port
//! closed" (the node is rebooting) from "handshake or login failed" (sshd is up,
//! keys not there yet) from "host key mismatch" (stop) from "local setup problem"
//! (stop, the user's mistake).

mod host_keys;
mod keys;
mod target;

use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::time::Duration;

use ssh2::Session;

pub use crate::shell::shell_quote;
pub use host_keys::{HostKeyPolicy, fingerprint};
pub use keys::{
    Credential, PASSPHRASE_ENV, check_key_file, generate_ed25519, public_key_of_openssh,
    random_password,
};
pub use target::{DEFAULT_PORT, DEFAULT_USER, Target};

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
    /// The command ran and exited non-zero ([`Connection::run`]).
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
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    fn ssh(kind: FailureKind, error: &ssh2::Error) -> Self {
        Failure::new(kind, error.message().to_owned())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

// libssh2 error codes the classification needs (libssh2.h).
const LIBSSH2_ERROR_FILE: i32 = -16;
const LIBSSH2_ERROR_AUTHENTICATION_FAILED: i32 = -18;
const LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;
const LIBSSH2_ERROR_AGENT_PROTOCOL: i32 = -42;

/// The result of a command run over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// An authenticated session to one target.
pub struct Connection {
    session: Session,
    /// The host key's fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Connects to `target` within `limit` (TCP connect, handshake and login each
/// bounded by it), checks the host key by `policy` and authenticates.
pub fn connect(
    target: &Target,
    credential: &Credential,
    policy: &HostKeyPolicy,
    limit: Duration,
) -> Result<Connection, Failure> {
    let limit = limit.max(Duration::from_millis(1));
    let tcp = tcp_connect(target, limit)?;
    let mut session = Session::new().map_err(|error| Failure::ssh(FailureKind::Setup, &error))?;
    session.set_timeout(millis(limit));
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|error| Failure::ssh(FailureKind::Handshake, &error))?;
    let fingerprint = host_keys::check(&session, target, policy)?;
    let authenticated = match credential {
        Credential::KeyFile { path, passphrase } => session.userauth_pubkey_file(
            &target.user,
            None,
            path,
            passphrase.as_ref().map(crate::secret::Secret::expose),
        ),
        Credential::Agent => session.userauth_agent(&target.user),
    };
    if let Err(error) = authenticated {
        return Err(classify_auth_error(&error, target));
    }
    if !session.authenticated() {
        return Err(Failure::new(
            FailureKind::AuthRejected,
            format!("{target} did not accept the key"),
        ));
    }
    Ok(Connection {
        session,
        fingerprint,
    })
}

fn classify_auth_error(error: &ssh2::Error, target: &Target) -> Failure {
    let code = match error.code() {
        ssh2::ErrorCode::Session(code) => code,
        ssh2::ErrorCode::SFTP(_) => 0,
    };
    match code {
        LIBSSH2_ERROR_FILE => Failure::new(
            FailureKind::Setup,
            format!("libssh2 cannot use the key: {}", error.message()),
        ),
        LIBSSH2_ERROR_AUTHENTICATION_FAILED | LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED => Failure::new(
            FailureKind::AuthRejected,
            format!("{target} did not accept the key: {}", error.message()),
        ),
        LIBSSH2_ERROR_AGENT_PROTOCOL => Failure::new(
            FailureKind::AuthRejected,
            format!(
                "the ssh-agent has no key that {target} accepts: {}",
                error.message()
            ),
        ),
        // Anything else during login is the connection failing (reset, timeout).
        _ => Failure::ssh(FailureKind::Handshake, error),
    }
}

fn tcp_connect(target: &Target, limit: Duration) -> Result<TcpStream, Failure> {
    let addresses: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|error| {
            Failure::new(
                FailureKind::Unreachable,
                format!("cannot resolve {}: {error}", target.host),
            )
        })?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, limit) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(Failure::new(
        FailureKind::Unreachable,
        match last_error {
            Some(error) => format!("cannot connect to port {}: {error}", target.port),
            None => format!("{} resolves to no address", target.host),
        },
    ))
}

/// `u32` milliseconds for libssh2 (0 would mean "no timeout").
fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}

impl Connection {
    /// Runs `command` (a shell command line: quote paths with [`shell_quote`]) and
    /// collects its exit status and output, all within `limit`.
    pub fn exec(&self, command: &str, limit: Duration) -> Result<Output, Failure> {
        self.session.set_timeout(millis(limit));
        let broken = |error: &ssh2::Error| Failure::ssh(FailureKind::Session, error);
        let mut channel = self.session.channel_session().map_err(|e| broken(&e))?;
        channel.exec(command).map_err(|e| broken(&e))?;
        let mut stdout = String::new();
        channel
            .read_to_string(&mut stdout)
            .map_err(|error| Failure::new(FailureKind::Session, error.to_string()))?;
        let mut stderr = String::new();
        channel
            .stderr()
            .read_to_string(&mut stderr)
            .map_err(|error| Failure::new(FailureKind::Session, error.to_string()))?;
        channel.wait_close().map_err(|e| broken(&e))?;
        let status = channel.exit_status().map_err(|e| broken(&e))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// [`Connection::exec`], where a non-zero exit is a [`FailureKind::CommandFailed`]
    /// naming the command, its status and the last line of its stderr.
    pub fn run(&self, command: &str, limit: Duration) -> Result<Output, Failure> {
        let output = self.exec(command, limit)?;
        if output.status == 0 {
            return Ok(output);
        }
        let last_line = output
            .stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty());
        Err(Failure::new(
            FailureKind::CommandFailed,
            format!(
                "`{command}` exited with {}{}",
                output.status,
                last_line
                    .map(|line| format!(": {}", line.trim()))
                    .unwrap_or_default()
            ),
        ))
    }

    /// Copies the local file to `remote_path` with `mode`, over SCP, within `limit`.
    pub fn upload(
        &self,
        local: &Path,
        remote_path: &str,
        mode: i32,
        limit: Duration,
    ) -> Result<(), Failure> {
        let setup = |message: String| Failure::new(FailureKind::Setup, message);
        let contents = std::fs::read(local)
            .map_err(|error| setup(format!("cannot read {}: {error}", local.display())))?;
        self.session.set_timeout(millis(limit));
        let broken = |error: &ssh2::Error| Failure::ssh(FailureKind::Session, error);
        let size = u64::try_from(contents.len()).unwrap_or(u64::MAX);
        let mut channel = self
            .session
            .scp_send(Path::new(remote_path), mode, size, None)
            .map_err(|e| broken(&e))?;
        channel
            .write_all(&contents)
            .map_err(|error| Failure::new(FailureKind::Session, error.to_string()))?;
        channel.send_eof().map_err(|e| broken(&e))?;
        channel.wait_eof().map_err(|e| broken(&e))?;
        channel.close().map_err(|e| broken(&e))?;
        channel.wait_close().map_err(|e| broken(&e))
    }
}
