//! A real OpenSSH server for tests: unprivileged port, loopback only, its own
//! config, host key, client key and authorized_keys in a temp dir.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::INSTALL_HINT;
use crate::process::{ServerProcess, free_port};

/// Key algorithms the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl KeyType {
    fn ssh_keygen_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Ecdsa => "ecdsa",
            KeyType::Rsa => "rsa",
        }
    }
}

/// Generates a key pair at `path` and `path.pub` with `ssh-keygen`, in OpenSSH
/// format, or in the older PEM format when `pem` is set. An empty `passphrase`
/// leaves the key unencrypted. (Test keys only: the passphrase is on ssh-keygen's
/// command line.)
pub fn generate_key(path: &Path, key_type: KeyType, passphrase: &str, pem: bool) {
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-t", key_type.ssh_keygen_name(), "-N", passphrase])
        .args(["-C", "xitc-test"])
        .arg("-f")
        .arg(path);
    if key_type == KeyType::Rsa {
        command.args(["-b", "2048"]);
    }
    if pem {
        command.args(["-m", "PEM"]);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run ssh-keygen ({error}): apt-get install openssh-client; {INSTALL_HINT}"
            )
        });
    assert!(
        output.status.success(),
        "ssh-keygen failed for {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running (or stopped, between [`Sshd::stop`] and [`Sshd::restart`]) sshd,
/// listening on 127.0.0.1 and, where the machine has IPv6, on [::1].
///
/// Like every server here it dies with the thread that started it (see
/// [`crate::ServerProcess::spawn`]): start and restart it from the test's own
/// thread, not from a helper thread that ends early.
#[derive(Debug)]
pub struct Sshd {
    dir: TempDir,
    port: u16,
    user: String,
    extra_config: String,
    process: Option<ServerProcess>,
}

impl Sshd {
    /// Starts sshd on a free loopback port, accepting [`Sshd::client_key`] for the
    /// current user.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// [`Sshd::start`] with `extra_config` lines ahead of the standard ones
    /// (sshd takes the first value of a keyword, so these win): e.g. another
    /// `AuthorizedKeysFile`, or a `ForceCommand` that plays a remote system.
    pub fn start_with(extra_config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("xitc-sshd-")
            .tempdir()
            .expect("creating a temp dir for sshd");
        let sshd = Sshd {
            port: 0,
            user: current_user(),
            extra_config: extra_config.to_owned(),
            process: None,
            dir,
        };
        generate_key(&sshd.host_key(), KeyType::Ed25519, "", false);
        generate_key(&sshd.client_key(), KeyType::Ed25519, "", false);
        fs::copy(
            sshd.client_key().with_extension("pub"),
            sshd.authorized_keys(),
        )
        .expect("writing authorized_keys");
        sshd.start_on_a_free_port()
    }

    fn start_on_a_free_port(mut self) -> Self {
        let mut failures = String::new();
        for _ in 0..5 {
            self.port = free_port();
            match self.spawn() {
                Ok(()) => return self,
                // Most likely another test took the port between free_port and bind.
                Err(why) => writeln!(failures, "{why}").unwrap(),
            }
        }
        panic!("sshd did not start:\n{failures}log:\n{}", self.log());
    }

    fn spawn(&mut self) -> Result<(), String> {
        ensure_privilege_separation_dir();
        fs::write(self.dir.path().join("sshd_config"), self.config()).expect("writing sshd_config");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening sshd.log");
        let mut command = Command::new(sshd_binary());
        command
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut process = ServerProcess::spawn("sshd", &mut command).map_err(|error| {
            format!(
                "cannot run {} ({error}): {INSTALL_HINT}",
                sshd_binary().display()
            )
        })?;
        process.wait_for_port(self.port, Duration::from_secs(10))?;
        self.process = Some(process);
        Ok(())
    }

    fn config(&self) -> String {
        let dir = self.dir.path().display();
        format!(
            "{extra}\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             ListenAddress [::1]\n\
             HostKey {dir}/ssh_host_ed25519_key\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n",
            port = self.port,
            extra = self.extra_config,
        )
    }

    /// Stops the server (connections already open are cut too); the port, keys and
    /// config stay for [`Sshd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(why) = self.spawn() {
            panic!(
                "sshd did not restart on port {}: {why}\nlog:\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// Replaces the host key; a running server keeps the old one until
    /// [`Sshd::restart`].
    pub fn new_host_key(&self) {
        let key = self.host_key();
        for path in [key.clone(), key.with_extension("pub")] {
            fs::remove_file(&path).expect("removing the old host key");
        }
        generate_key(&key, KeyType::Ed25519, "", false);
    }

    /// Adds a public key (the text of a `.pub` file) to authorized_keys.
    pub fn authorize(&self, public_key: &str) {
        let mut keys = fs::read_to_string(self.authorized_keys()).unwrap_or_default();
        keys.push_str(public_key.trim_end());
        keys.push('\n');
        fs::write(self.authorized_keys(), keys).expect("writing authorized_keys");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The user the client key logs in as: whoever runs the tests.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The private key authorised to log in (unencrypted Ed25519).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// The server's current host public key, as in a `.pub` file.
    pub fn host_public_key(&self) -> String {
        fs::read_to_string(self.host_key().with_extension("pub")).expect("reading host key")
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// What sshd logged so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn host_key(&self) -> PathBuf {
        self.dir.path().join("ssh_host_ed25519_key")
    }

    fn authorized_keys(&self) -> PathBuf {
        self.dir.path().join("authorized_keys")
    }
}

/// sshd must be started by absolute path (it re-executes itself).
fn sshd_binary() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("sshd"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("sshd not found: apt-get install openssh-server; {INSTALL_HINT}"))
}

/// Debian's sshd, started as root, refuses to run without its privilege-separation
/// directory, which the package creates only through systemd-tmpfiles at boot, so
/// a machine without systemd lacks it. Creating the empty directory is what the
/// package would have done; as non-root sshd does not need it.
fn ensure_privilege_separation_dir() {
    let dir = Path::new("/run/sshd");
    if is_root() && !dir.is_dir() {
        fs::create_dir_all(dir).expect("creating /run/sshd");
    }
}

fn is_root() -> bool {
    id(&["-u"]) == "0"
}

/// The user running the tests (the one [`Sshd`] logs in).
pub fn current_user() -> String {
    id(&["-un"])
}

fn id(args: &[&str]) -> String {
    let output = Command::new("id")
        .args(args)
        .output()
        .expect("running id(1)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
