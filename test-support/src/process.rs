//! Child processes that die with their owner.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, as the kernel hands them out.
///
/// The port is free when this returns; a server started on it a moment later can
/// still lose a race, so starters retry on a bind failure.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// A server process owned by a test: killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
}

impl ServerProcess {
    /// Spawns `command`, which the kernel will also kill if the spawning thread
    /// dies without dropping us (a test process killed by a signal or timeout).
    pub fn spawn(name: &str, command: &mut Command) -> io::Result<Self> {
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (prctl, getppid, _exit).
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                let parent = libc::getppid();
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        Ok(ServerProcess {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until something accepts connections on `port` while this process is
    /// alive. `Err` says why not: it exited (with its status) or `limit` passed.
    pub fn wait_for_port(&mut self, port: u16, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("{} exited with {status}", self.name));
            }
            let address = (Ipv4Addr::LOCALHOST, port).into();
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                // Something listens; make sure it is ours and not a port thief.
                return match self.exited() {
                    Some(status) => Err(format!("{} exited with {status}", self.name)),
                    None => Ok(()),
                };
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{} did not listen on 127.0.0.1:{port} within {limit:?}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process and the processes it started, and reaps it (idempotent).
    ///
    /// The children matter for sshd: each connection has its own sshd process (in
    /// a session of its own), and a stopped server must drop its connections as a
    /// rebooting machine does.
    pub fn stop(&mut self) {
        if self.exited().is_none() {
            // Our child is not reaped yet, so no PID below can have been reused by
            // something that is not its child.
            for child in children_of(self.child.id()) {
                if let Ok(pid) = i32::try_from(child) {
                    // SAFETY: kill(2) on a PID; no memory is involved.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to `limit` until process `pid` is dead; true when it is.
///
/// A zombie counts as dead: an orphan is reaped by whatever PID 1 the machine has,
/// and in a container that may be never.
pub fn wait_until_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while is_alive(pid) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The PIDs whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // "PID (COMM) STATE PPID …"; COMM may itself contain ") ".
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE …"; COMM may itself contain ") ".
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}
