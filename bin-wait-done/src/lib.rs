//! `xitc-wait-until-done [USER@]HOST PRIVKEY`: waits until the conversion's stamp
//! file exists on the node, watching it over SSH.
//!
//! A drop-in for the 2014 `wait-until-done.sh`: the same banner and progress marks
//! on stdout (`X` port closed, `.` logged in but no stamp yet, then `Found!`), one
//! mark per line under CI (`BUILD_NUMBER` or `CI` set), inline otherwise. Added:
//! the `!` mark (port open, but the SSH handshake or login failed: sshd starting,
//! keys not installed yet), `--timeout` (exit 124), clear errors for a bad key
//! (exit 2 before any connection), host-key pinning, and one SSH session kept
//! across polls instead of a new `ssh` process every time (the node reboots
//! several times, so a dropped session is simply opened again).
//!
//! Notes (auth rejected for the first time, host key changed) go to stderr.
//!
//! `--console SERVER` follows the server's console log too (`console.rs`):
//! progress on stderr, and a failure there ends the wait at once. Without it
//! the tool is the drop-in it was.

mod console;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use xitc_common::cloud::{CloudClient, CloudConfig, Timeouts};
use xitc_common::exit::{self, EXIT_STATUS_HELP};
use xitc_common::output::Output;
use xitc_common::poll::{Clock as _, Schedule, SystemClock, parse_duration, poll_until};
use xitc_common::secret::Secret;
use xitc_common::ssh::{
    self, Connection, Credential, FailureKind, HostKeyPolicy, PASSPHRASE_ENV, Target,
};
use xitc_common::stamp;

/// The name errors are reported under.
pub const TOOL: &str = "xitc-wait-until-done";

const AFTER_HELP: &str = "\
Marks, one per poll:
  X  failed to connect to the SSH port
  !  the port is open, but the SSH handshake or login failed
  .  logged in, the stamp file does not exist yet

Environment:
  BUILD_NUMBER, CI     when either is set, one mark per line
  XITC_KEY_PASSPHRASE  the passphrase of an encrypted PRIVKEY
  SSH_AUTH_SOCK        the ssh-agent, used when PRIVKEY is -
  XITC_STAMP_PATH      the stamp path when --stamp is not given
  OS_CLOUD, OS_AUTH_URL, OS_*  with --console: the cloud, as for
                       xitc-get-ip-address-of-instance";

/// Wait until a node's conversion stamp file exists, checking over SSH.
///
/// Logs in as USER (default root) with PRIVKEY and runs `test -e STAMP` every
/// --interval until it succeeds, printing a mark per attempt. Host keys change
/// while a node converts itself, so any key is accepted by default (a change is
/// reported on stderr); --known-hosts pins them.
#[derive(Debug, Parser)]
#[command(name = TOOL, version, args_override_self = true, after_help = format!("{AFTER_HELP}\n\n{EXIT_STATUS_HELP}"))]
struct Cli {
    /// The node: [USER@]HOST[:PORT] (IPv6 in brackets when a port follows).
    #[arg(value_name = "[USER@]HOST")]
    target: String,

    /// Private key file (OpenSSH or PEM; RSA, ECDSA, Ed25519), or - for the ssh-agent.
    #[arg(value_name = "PRIVKEY")]
    key: PathBuf,

    /// Time between polls (seconds, or with a unit: 500ms, 1m).
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    interval: Duration,

    /// Give up after this long (exit 124); 0 waits forever.
    #[arg(long, default_value = "7200", value_parser = parse_duration)]
    timeout: Duration,

    /// Time limit for each connection attempt (TCP, handshake, login) and check.
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    connect_timeout: Duration,

    /// SSH port, when the target names none (1 to 65535).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,

    /// The stamp file to wait for [default: xitc-print-stamp-path's].
    #[arg(long, value_name = "PATH")]
    stamp: Option<String>,

    /// OpenSSH known_hosts file to check host keys against.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,

    /// With --known-hosts: accept-new records unknown hosts and refuses changed
    /// keys; strict refuses both.
    #[arg(long, value_enum, requires = "known_hosts")]
    host_key_policy: Option<PolicyChoice>,

    /// Also follow SERVER's console log (a name or an id; the cloud as for
    /// xitc-get-ip-address-of-instance: clouds.yaml or OS_*): the node's
    /// phase lines as progress on stderr, and a failure there (a FAILED phase,
    /// the installer's failure, a panic, emergency mode) ends the wait at once
    /// (exit 1) instead of at --timeout.
    #[arg(long, value_name = "SERVER")]
    console: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyChoice {
    AcceptNew,
    Strict,
}

/// What the tool reads from its environment, gathered once (and given by tests).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `BUILD_NUMBER` or `CI` is set: one mark per line.
    pub one_mark_per_line: bool,
    pub passphrase: Option<Secret>,
    pub agent_socket: Option<PathBuf>,
    /// The cloud's settings (`OS_*`, clouds.yaml), for `--console`.
    pub cloud: xitc_common::cloud::Env,
}

impl Environment {
    pub fn from_process() -> Self {
        let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        Environment {
            one_mark_per_line: set("BUILD_NUMBER") || set("CI"),
            passphrase: std::env::var(PASSPHRASE_ENV).ok().map(Secret::new),
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|value| !value.is_empty())
                .map(PathBuf::from),
            cloud: xitc_common::cloud::Env::from_process(),
        }
    }
}

/// Parses `args` (program name first) and waits; the banner and marks go to
/// `out`, notes to `notes`.
pub fn run<I, T>(
    args: I,
    env: &Environment,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    for (flag, value) in [
        ("--interval", cli.interval),
        ("--connect-timeout", cli.connect_timeout),
    ] {
        if value.is_zero() {
            return Err(exit::usage(format!("{flag} must be more than 0")));
        }
    }
    let target = Target::parse(&cli.target, cli.port)?;
    let stamp = match &cli.stamp {
        Some(path) => stamp::stamp_path_from(Some(path.into())).map_err(|_| {
            exit::usage(format!(
                "--stamp must be a non-empty absolute path without control characters, got {path:?}"
            ))
        })?,
        None => stamp::stamp_path()?,
    };
    let policy = match (&cli.known_hosts, cli.host_key_policy) {
        (None, _) => HostKeyPolicy::AcceptAny,
        (Some(file), Some(PolicyChoice::Strict)) => HostKeyPolicy::Strict(file.clone()),
        (Some(file), _) => HostKeyPolicy::AcceptNew(file.clone()),
    };
    let credential = Credential::from_argument(
        &cli.key,
        env.passphrase.clone(),
        env.agent_socket.as_deref(),
    )?;

    // The cloud's settings are checked before the wait starts (exit 2).
    let mut console = console_watch(cli.console.as_deref(), env, notes)?;

    // As ssh warns (and refuses): a private key others can read.
    if cli.key != std::path::Path::new("-")
        && let Some(warning) = xitc_common::files::readable_by_others_warning(&cli.key, "key file")
    {
        let _ = writeln!(notes, "{TOOL}: warning: {warning}");
    }

    // The wait is this tool's work: a reader that goes away, or a full disk
    // under stdout, ends the output, not the wait; only the stamp found is 0.
    let mut out = Output::new(out);
    out.write(&format!(
        "Waiting for stamp file [{stamp}]\n    ADDRESS : {host}\n    USERNAME: {user}\n\n \
         X - failed to connect to port {port}\n \
         ! - port {port} open, but the SSH handshake or login failed\n \
         . - stamp file did not exist\n",
        host = target.host,
        user = target.user,
        port = target.port,
    ));

    let mut watcher = Watcher {
        target: &target,
        credential: &credential,
        policy: &policy,
        command: format!("test -e {}", ssh::shell_quote(&stamp)),
        connect_timeout: cli.connect_timeout,
        connection: None,
        last_fingerprint: None,
        noted_rejection: false,
    };
    let mut marks = Marks {
        one_per_line: env.one_mark_per_line,
        pending_newline: false,
    };
    let schedule = Schedule::new(cli.timeout, cli.interval);
    let waited = poll_until(&SystemClock, schedule, |deadline| {
        let limit = deadline.cap(SystemClock.now(), cli.connect_timeout);
        let mark = match watcher.observe(limit, notes)? {
            Observation::Found => {
                // What the console said since the last poll: the node's last
                // phases before the stamp.
                if let Some(console) = &mut console {
                    console.catch_up(deadline, notes);
                }
                return Ok(Some(()));
            }
            Observation::Absent => '.',
            Observation::PortClosed => 'X',
            Observation::LoginFailed => '!',
        };
        marks.print(&mut out, mark);
        if let Some(console) = &mut console
            && let Err(failure) = console.poll(deadline, notes)
        {
            marks.finish_line(&mut out);
            return Err(failure);
        }
        Ok(None)
    });
    if let Err(error) = waited {
        marks.finish_line(&mut out);
        if exit::kind_of(&error) == exit::Kind::Timeout
            && let Some(console) = &console
        {
            console.tell_last_lines(notes);
        }
        return Err(error.context(format!("waiting for stamp file {stamp} on {target}")));
    }
    out.line("Found!");
    out.finish()
}

/// `--console SERVER`'s watch, its cloud settings loaded (their warnings
/// said on `notes`); none without the option.
fn console_watch(
    server: Option<&str>,
    env: &Environment,
    notes: &mut impl Write,
) -> anyhow::Result<Option<console::ConsoleWatch>> {
    let Some(server) = server else {
        return Ok(None);
    };
    if server.trim().is_empty() {
        return Err(exit::usage("--console needs a server's name or id"));
    }
    let config = CloudConfig::load(&env.cloud)?;
    for warning in &config.warnings {
        let _ = writeln!(notes, "{TOOL}: warning: {warning}");
    }
    let client = CloudClient::new(config, Timeouts::default()).with_notes(TOOL);
    Ok(Some(console::ConsoleWatch::new(client, server)))
}

/// Progress marks on stdout: inline, or one per line under CI.
struct Marks {
    one_per_line: bool,
    pending_newline: bool,
}

impl Marks {
    fn print(&mut self, out: &mut Output<impl Write>, mark: char) {
        if self.one_per_line {
            out.line(&mark.to_string());
        } else {
            self.pending_newline = true;
            out.write(&mark.to_string());
        }
    }

    /// Ends a line of inline marks, so an error message starts on its own line.
    fn finish_line(&mut self, out: &mut Output<impl Write>) {
        if std::mem::take(&mut self.pending_newline) {
            out.line("");
        }
    }
}

enum Observation {
    Found,
    Absent,
    PortClosed,
    LoginFailed,
}

/// One SSH view of the node, kept between polls.
struct Watcher<'a> {
    target: &'a Target,
    credential: &'a Credential,
    policy: &'a HostKeyPolicy,
    command: String,
    connect_timeout: Duration,
    connection: Option<Connection>,
    last_fingerprint: Option<String>,
    noted_rejection: bool,
}

impl Watcher<'_> {
    fn observe(&mut self, limit: Duration, notes: &mut impl Write) -> anyhow::Result<Observation> {
        // A session from an earlier poll is used while it works; a node that
        // rebooted has dropped it, and then a new one is opened below.
        if let Some(connection) = &self.connection {
            if let Ok(output) = connection.exec(&self.command, limit) {
                return Ok(stamp_result(output.status));
            }
            self.connection = None;
        }
        let connection = match ssh::connect(self.target, self.credential, self.policy, limit) {
            Ok(connection) => connection,
            Err(failure) => return self.failed(&failure, notes),
        };
        if let Some(previous) = &self.last_fingerprint
            && *previous != connection.fingerprint
        {
            let _ = writeln!(
                notes,
                "{TOOL}: note: the host key of {} changed from {previous} to {} \
                 (accepted: nodes change keys while they convert; --known-hosts pins them)",
                self.target.known_hosts_name(),
                connection.fingerprint
            );
        }
        self.last_fingerprint = Some(connection.fingerprint.clone());
        match connection.exec(&self.command, limit.min(self.connect_timeout)) {
            Ok(output) => {
                self.connection = Some(connection);
                Ok(stamp_result(output.status))
            }
            Err(_) => Ok(Observation::LoginFailed),
        }
    }

    fn failed(
        &mut self,
        failure: &ssh::Failure,
        notes: &mut impl Write,
    ) -> anyhow::Result<Observation> {
        match failure.kind {
            FailureKind::Unreachable => Ok(Observation::PortClosed),
            FailureKind::Handshake | FailureKind::Session | FailureKind::CommandFailed => {
                Ok(Observation::LoginFailed)
            }
            FailureKind::AuthRejected => {
                if !std::mem::replace(&mut self.noted_rejection, true) {
                    let _ = writeln!(
                        notes,
                        "{TOOL}: note: {failure}; waiting (the key may be installed later \
                         in the conversion)"
                    );
                }
                Ok(Observation::LoginFailed)
            }
            FailureKind::HostKeyMismatch | FailureKind::HostKeyUnknown => {
                Err(anyhow::Error::new(failure.clone()))
            }
            FailureKind::Setup => Err(exit::usage(failure.to_string())),
        }
    }
}

/// `test -e` exits 0 when the file exists; anything else means "not yet".
fn stamp_result(status: i32) -> Observation {
    if status == 0 {
        Observation::Found
    } else {
        Observation::Absent
    }
}

/// The command line as clap defines it: what `--help` prints, and what the
/// man page and shell completions are generated from (`xtask`), so the three
/// never disagree.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_inline_or_one_per_line() {
        let mut bytes = Vec::new();
        let mut out = Output::new(&mut bytes);
        let mut inline = Marks {
            one_per_line: false,
            pending_newline: false,
        };
        inline.print(&mut out, 'X');
        inline.print(&mut out, '.');
        inline.finish_line(&mut out);
        inline.finish_line(&mut out);
        out.finish().unwrap();
        assert_eq!(bytes, b"X.\n");

        let mut bytes = Vec::new();
        let mut out = Output::new(&mut bytes);
        let mut per_line = Marks {
            one_per_line: true,
            pending_newline: false,
        };
        per_line.print(&mut out, '!');
        per_line.finish_line(&mut out);
        out.finish().unwrap();
        assert_eq!(bytes, b"!\n");
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
