//! The only SSH code of the workspace (libssh2 through the `ssh2` crate): connect
//! with a time limit, check the host key, log in with a key file or the agent, run
//! a command, upload a file. Used by `xitc-wait-until-done` and `test-rs`.
//!
//! Every call has one overall deadline, not only a limit per libssh2 call: a
//! remote command that trickles a byte a second, or hangs once its session is
//! open, would otherwise run forever, since each single read finishes in time.
//! So commands are read in non-blocking mode, stdout and stderr side by side
//! (a command that fills one while we wait on the other cannot stall), with a
//! `poll` on the socket for the time that is left ([`Connection::exec`]). What a
//! command prints is kept up to [`MAX_OUTPUT`] per stream; more is a failure,
//! not memory without bound.
//!
//! Every failure is a [`Failure`] of a [`FailureKind`], so callers can tell "port
//! closed" (the node is rebooting) from "handshake or login failed" (sshd is up,
//! keys not there yet) from "host key mismatch" (stop) from "local setup problem"
//! (stop, the user's mistake).

mod failure;
mod host_keys;
mod keys;
mod target;

use std::fmt;
use std::io::{self, Read, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use ssh2::{BlockDirections, Channel, Session};

use crate::poll::{Deadline, format_duration};

pub use crate::shell::shell_quote;
pub use failure::{Failure, FailureKind};
pub use host_keys::{HostKeyPolicy, fingerprint};
pub use keys::{
    Credential, PASSPHRASE_ENV, check_key_file, generate_ed25519, public_key_of_openssh,
    random_password,
};
pub use target::{DEFAULT_PORT, DEFAULT_USER, Target};

// libssh2 error codes the classification needs (libssh2.h).
const LIBSSH2_ERROR_FILE: i32 = -16;
const LIBSSH2_ERROR_AUTHENTICATION_FAILED: i32 = -18;
const LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;
const LIBSSH2_ERROR_AGENT_PROTOCOL: i32 = -42;

/// The most a remote command may print on each of stdout and stderr. The tools
/// run short checks whose output is a line or two; a command printing more is
/// broken (or hostile), and its output is not worth memory without bound.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// The result of a command run over SSH. Output that is not UTF-8 is decoded
/// lossily: it comes from another machine, and a stray byte must not turn a
/// command's result into a failed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// An authenticated session to one target.
pub struct Connection {
    session: Session,
    /// The session's socket (a second handle to it), to `poll` while libssh2
    /// is in non-blocking mode.
    socket: TcpStream,
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
    let deadline = Deadline::new(Instant::now(), Some(limit));
    let timed_out = |kind| {
        Failure::new(
            kind,
            format!(
                "{target} did not log us in within {}",
                format_duration(limit)
            ),
        )
    };
    let tcp = tcp_connect(target, limit)?;
    let socket = tcp
        .try_clone()
        .map_err(|error| Failure::new(FailureKind::Setup, format!("socket: {error}")))?;
    let mut session = Session::new().map_err(|error| Failure::ssh(FailureKind::Setup, &error))?;
    session.set_timeout(time_left(deadline).ok_or_else(|| timed_out(FailureKind::Handshake))?);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|error| Failure::ssh(FailureKind::Handshake, &error))?;
    let fingerprint = host_keys::check(&session, target, policy)?;
    session.set_timeout(time_left(deadline).ok_or_else(|| timed_out(FailureKind::Handshake))?);
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
        socket,
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

/// The time left before `deadline`; `None` once it passed.
fn left(deadline: Deadline) -> Option<Duration> {
    deadline
        .remaining(Instant::now())
        .filter(|left| !left.is_zero())
}

/// [`left`] as a libssh2 timeout.
fn time_left(deadline: Deadline) -> Option<u32> {
    left(deadline).map(millis)
}

/// One stream of a running command: what it printed so far, and whether it
/// ended.
struct Collected {
    name: &'static str,
    bytes: Vec<u8>,
    ended: bool,
}

impl Collected {
    fn new(name: &'static str) -> Self {
        Collected {
            name,
            bytes: Vec::new(),
            ended: false,
        }
    }

    /// Reads what is there without waiting; `Ok(true)` when something came.
    fn read_from(&mut self, stream: &mut impl Read, chunk: &mut [u8]) -> io::Result<bool> {
        if self.ended {
            return Ok(false);
        }
        match stream.read(chunk) {
            Ok(0) => {
                self.ended = true;
                Ok(true)
            }
            Ok(count) => {
                self.bytes.extend_from_slice(&chunk[..count]);
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl Connection {
    /// Runs `command` (a shell command line: quote paths with [`shell_quote`]) and
    /// collects its exit status and output, all within `limit`: a command still
    /// running (or printing) when it is up is a [`FailureKind::Session`] failure,
    /// one that prints more than [`MAX_OUTPUT`] on a stream a
    /// [`FailureKind::CommandFailed`] one.
    pub fn exec(&self, command: &str, limit: Duration) -> Result<Output, Failure> {
        let deadline = Deadline::new(Instant::now(), Some(limit));
        let timed_out = || {
            Failure::new(
                FailureKind::Session,
                format!(
                    "`{command}` did not finish within {}",
                    format_duration(limit)
                ),
            )
        };
        let broken = |error: &ssh2::Error| Failure::ssh(FailureKind::Session, error);
        self.session
            .set_timeout(time_left(deadline).ok_or_else(timed_out)?);
        let mut channel = self.session.channel_session().map_err(|e| broken(&e))?;
        channel.exec(command).map_err(|e| broken(&e))?;

        self.session.set_blocking(false);
        let collected = self.collect(&mut channel, deadline, command, timed_out);
        self.session.set_blocking(true);
        let outcome = collected.and_then(|(stdout, stderr)| {
            self.session
                .set_timeout(time_left(deadline).ok_or_else(timed_out)?);
            channel.wait_close().map_err(|e| broken(&e))?;
            let status = channel.exit_status().map_err(|e| broken(&e))?;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        });
        if outcome.is_err() {
            // Closing the channel (on drop) talks to the server once more; a
            // server that no longer answers must not hold us past the deadline.
            self.session.set_timeout(millis(Duration::from_secs(1)));
        }
        outcome
    }

    /// Reads stdout and stderr of a running command until both end, waiting on
    /// the socket in between, never past `deadline`.
    fn collect(
        &self,
        channel: &mut Channel,
        deadline: Deadline,
        command: &str,
        timed_out: impl Fn() -> Failure,
    ) -> Result<(String, String), Failure> {
        let mut stdout = Collected::new("stdout");
        let mut stderr = Collected::new("stderr");
        let mut chunk = vec![0; 32 * 1024];
        let session_error =
            |error: io::Error| Failure::new(FailureKind::Session, error.to_string());
        while !(stdout.ended && stderr.ended) {
            let mut progressed = stdout
                .read_from(channel, &mut chunk)
                .map_err(session_error)?;
            progressed |= stderr
                .read_from(&mut channel.stderr(), &mut chunk)
                .map_err(session_error)?;
            for stream in [&stdout, &stderr] {
                if stream.bytes.len() > MAX_OUTPUT {
                    return Err(Failure::new(
                        FailureKind::CommandFailed,
                        format!(
                            "`{command}` printed more than {} KiB on {}",
                            MAX_OUTPUT / 1024,
                            stream.name
                        ),
                    ));
                }
            }
            if !progressed && !self.wait_for_socket(deadline) {
                return Err(timed_out());
            }
        }
        Ok((stdout.text(), stderr.text()))
    }

    /// Waits until the socket is ready the way libssh2 asked for, at most until
    /// `deadline`; `false` once the deadline has passed.
    fn wait_for_socket(&self, deadline: Deadline) -> bool {
        let Some(left) = left(deadline) else {
            return false;
        };
        let flags = match self.session.block_directions() {
            BlockDirections::Outbound => PollFlags::OUT,
            BlockDirections::Both => PollFlags::IN | PollFlags::OUT,
            // Inbound, or libssh2 waits for nothing in particular: data from
            // the server is what moves a running command along.
            BlockDirections::Inbound | BlockDirections::None => PollFlags::IN,
        };
        let mut fds = [PollFd::new(&self.socket, flags)];
        let timeout = Timespec::try_from(left).ok();
        // An interrupted or failed poll only means one more round of reads.
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        true
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
        let deadline = Deadline::new(Instant::now(), Some(limit));
        // Each step gets the time that is left, so the whole upload ends in time.
        let in_time = || {
            let left = time_left(deadline).ok_or_else(|| {
                Failure::new(
                    FailureKind::Session,
                    format!(
                        "uploading to {remote_path} did not finish within {}",
                        format_duration(limit)
                    ),
                )
            })?;
            self.session.set_timeout(left);
            Ok::<_, Failure>(())
        };
        let broken = |error: &ssh2::Error| Failure::ssh(FailureKind::Session, error);
        let size = u64::try_from(contents.len()).unwrap_or(u64::MAX);
        in_time()?;
        let mut channel = self
            .session
            .scp_send(Path::new(remote_path), mode, size, None)
            .map_err(|e| broken(&e))?;
        for piece in contents.chunks(64 * 1024) {
            in_time()?;
            channel
                .write_all(piece)
                .map_err(|error| Failure::new(FailureKind::Session, error.to_string()))?;
        }
        in_time()?;
        channel.send_eof().map_err(|e| broken(&e))?;
        channel.wait_eof().map_err(|e| broken(&e))?;
        in_time()?;
        channel.close().map_err(|e| broken(&e))?;
        channel.wait_close().map_err(|e| broken(&e))
    }
}
