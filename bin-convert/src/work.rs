//! What a step is and what every step gets: [`Work`], the context of one run
//! (the sandboxed system, the run's files, config and log, the node as the
//! state's first step read it, and the limits of its waits).

use std::time::Duration;

use crate::config::Config;
use crate::installer::Installer;
use crate::log::Log;
use crate::paths::Files;
use crate::preflight::Node;
use crate::system::System;
use crate::waits::Wait;

/// A step's work.
pub type Action = fn(&mut Work<'_>) -> anyhow::Result<()>;

/// One step: its name, what it does (for `--dry-run`), and its work.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub name: &'static str,
    pub does: &'static str,
    pub action: Action,
}

impl Step {
    pub const fn new(name: &'static str, does: &'static str, action: Action) -> Self {
        Step { name, does, action }
    }
}

/// How long the waits of the dom0 and UBUNTU states may take, and how often
/// they look. The defaults suit real nodes; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// xapi finishing its start.
    pub xapi: Duration,
    /// A default route and name resolution in Ubuntu.
    pub network: Duration,
    /// The appliance reporting an address, accepting dom0's key, answering
    /// after its reboot.
    pub appliance: Duration,
    /// Time between two looks.
    pub interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            xapi: Duration::from_secs(20 * 60),
            network: Duration::from_secs(5 * 60),
            appliance: Duration::from_secs(15 * 60),
            interval: Duration::from_secs(2),
        }
    }
}

impl Limits {
    /// A wait of `limit`, looking every [`Limits::interval`].
    pub fn wait(&self, limit: Duration) -> Wait {
        Wait {
            limit,
            interval: self.interval,
        }
    }
}

/// What the steps of a run share.
#[derive(Debug)]
pub struct Work<'a> {
    pub system: &'a System,
    pub files: &'a Files,
    pub config: &'a Config,
    pub log: Log<'a>,
    /// Filled by the preflight step.
    pub node: Option<Node>,
    /// The installer the ISO holds; filled by START's installer-files step.
    pub installer: Option<Installer>,
    pub limits: Limits,
}

impl Work<'_> {
    /// The node as the state's first step read it.
    pub fn node(&self) -> anyhow::Result<&Node> {
        self.node
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the node was not read yet (preflight or inspect step)"))
    }

    /// The installer as START's installer-files step identified it.
    pub fn installer(&self) -> anyhow::Result<&Installer> {
        self.installer.as_ref().ok_or_else(|| {
            anyhow::anyhow!("the installer was not identified yet (installer-files step)")
        })
    }
}

/// Runs `check` with a [`Work`] on `system` for unit tests: the example
/// config ([`Config::example`]), install dir `/opt/xenapi-in-the-cloud`, the
/// default limits.
#[cfg(test)]
pub fn with_test_work(system: &System, check: impl FnOnce(&mut Work<'_>)) {
    let files = Files::new(std::path::PathBuf::from("/opt/xenapi-in-the-cloud"));
    let config = Config::example();
    let mut work = Work {
        system,
        files: &files,
        config: &config,
        log: Log::new(system, std::path::Path::new("/xitc-convert.log")),
        node: None,
        installer: None,
        limits: Limits::default(),
    };
    check(&mut work);
}
