//! An ssh-agent of the test's own, on a socket in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::INSTALL_HINT;
use crate::process::ServerProcess;

/// A running ssh-agent; killed on drop.
#[derive(Debug)]
pub struct SshAgent {
    dir: TempDir,
    _process: ServerProcess,
}

impl SshAgent {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("xitc-agent-")
            .tempdir()
            .expect("creating a temp dir for ssh-agent");
        let socket = dir.path().join("agent.sock");
        let mut command = Command::new("ssh-agent");
        command
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = ServerProcess::spawn("ssh-agent", &mut command).unwrap_or_else(|error| {
            panic!("cannot run ssh-agent ({error}): apt-get install openssh-client; {INSTALL_HINT}")
        });
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ssh-agent made no socket at {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SshAgent {
            dir,
            _process: process,
        }
    }

    /// The value for `SSH_AUTH_SOCK`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Adds an unencrypted private key with `ssh-add`.
    pub fn add(&self, key: &Path) {
        let output = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", self.socket())
            .stdin(Stdio::null())
            .output()
            .expect("running ssh-add");
        assert!(
            output.status.success(),
            "ssh-add {} failed: {}",
            key.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
