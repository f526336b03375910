//! `xitc-test-support`: the real servers xitc's tests talk to, started
//! on free loopback ports in temp dirs and stopped by PID.
//!
//! A small dev-only crate rather than a feature of `xitc-common`: it has no reason
//! to be compiled into the tools, and keeping it apart keeps `xitc-common`'s
//! dependency list (what ships to the node) short. Tests add it as a
//! dev-dependency.
//!
//! - [`Sshd`]: an OpenSSH `sshd` (Debian `openssh-server`) with its own config, host
//!   key, client key and authorized_keys; stop, restart and re-key it mid-test.
//! - [`Mimic`]: Rackspace's Identity + Nova emulator. [`Mimic::shared`] is one
//!   instance per test process (mimic takes seconds to start; tests isolate
//!   themselves by using their own user/tenant names); [`Mimic::start`] a private
//!   one.
//! - [`Keystone`]: OpenStack's real Identity service; [`Keystone::shared`] one
//!   per test process, [`Keystone::start`] a private one (a short token expiry).
//! - [`Nginx`]: nginx serving a directory, with Range support, for downloads.
//! - [`SshAgent`]: an ssh-agent on a socket of its own.
//! - [`FakeHttp`]: a scripted HTTP server, only for what mimic cannot do on demand.
//! - [`mkisofs`]: ISO images by the real xorriso.
//! - [`free_port`], [`generate_key`].
//! - [`tool!`]: the command under test, for every test crate.
//!
//! Every server process is killed and reaped when its owner is dropped, also when
//! the test panics, and, as a backstop for a test process that is killed outright,
//! it gets `PR_SET_PDEATHSIG` so the kernel kills it with its parent.
//!
//! Failures to start are panics with a message naming the install command: this is
//! test code, and a test that cannot get its server must fail, never skip.

// Panicking is this crate's error handling (see above); a `# Panics` section on
// every function would say so again each time.
#![allow(clippy::missing_panics_doc)]

mod agent;
mod appliance;
mod assertions;
mod command;
mod fake_http;
mod iso;
mod keystone;
pub mod layers;
mod mimic;
mod nginx;
mod process;
mod sshd;

pub use agent::SshAgent;
pub use appliance::{appliance_xva, write_appliance_xva};
pub use assertions::{assert_one_line_error, documented_exit_codes, documented_exit_status};
pub use command::{command_under_test, stdout_of};
pub use fake_http::{FakeHttp, Reply, Request};
pub use iso::mkisofs;
pub use keystone::{Answer, Keystone, REGION as KEYSTONE_REGION};
pub use mimic::Mimic;
pub use nginx::Nginx;
pub use process::{ServerProcess, free_port, wait_until_gone};
pub use sshd::{KeyType, Sshd, current_user, generate_key};

/// The HTTP client test-support uses to talk to the servers it starts: every
/// status is an answer (callers check it), a minute at most per request.
pub(crate) fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// The workspace root (where `.venv` and `scripts/` live).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives inside the workspace")
        .to_path_buf()
}

/// The command that installs every test dependency; named in failure messages.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps (or the README test command)";

// For `tool!`, which expands in the test crate that calls it.
#[doc(hidden)]
pub use assert_cmd;
