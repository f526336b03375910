//! One run of the test: its context (the arguments, the names, the cloud
//! client, the sibling tools, the key), what it has created so far, and the
//! deadlines of its waits. `flow` adds the steps to [`Run`], `cleanup` the
//! deletion of what it created; neither imports the other.

use std::cell::{OnceCell, RefCell};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xitc_common::cloud::CloudClient;
use xitc_common::poll::Deadline;
use xitc_common::secret::Secret;
use xitc_common::ssh::{self, Credential, HostKeyPolicy, Target};

use crate::cli::Cli;
use crate::names::Names;
use crate::steps::Steps;
use crate::timeline::Arrival;

/// A run's context.
pub struct Run<'a> {
    pub(crate) cli: &'a Cli,
    pub(crate) names: &'a Names,
    pub(crate) client: CloudClient,
    pub(crate) steps: Steps,
    pub(crate) created: RefCell<Created>,
    pub(crate) get_ip: PathBuf,
    pub(crate) wait_done: PathBuf,
    pub(crate) convert: PathBuf,
    pub(crate) key_path: PathBuf,
    pub(crate) credential: OnceCell<Credential>,
    pub(crate) password: Secret,
    pub(crate) given_public_key: Option<String>,
    pub(crate) stamp: String,
    /// The console lines the waits printed, as they arrived (`timeline`).
    pub(crate) console: RefCell<Vec<Arrival>>,
    /// The servers booted, in order, for the artifacts.
    pub(crate) nodes: RefCell<Vec<Node>>,
    pub(crate) _key_dir: tempfile::TempDir,
}

/// A server the run booted: its name, id, and where SSH reaches it (once
/// known).
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub id: String,
    pub target: Option<Target>,
}

/// What this run created, for cleanup.
#[derive(Debug, Default)]
pub struct Created {
    pub keypair: Option<String>,
    pub test_server: Option<String>,
    pub image: Option<String>,
    pub snapshot_server: Option<String>,
}

impl Run<'_> {
    pub(crate) fn credential(&self) -> anyhow::Result<&Credential> {
        self.credential
            .get()
            .ok_or_else(|| anyhow::anyhow!("no SSH key yet (the keypair step did not run)"))
    }

    /// An SSH session to a node, any host key accepted (the node changes its
    /// keys as it converts itself).
    pub(crate) fn connect(&self, target: &Target) -> anyhow::Result<ssh::Connection> {
        ssh::connect(
            target,
            self.credential()?,
            &HostKeyPolicy::AcceptAny,
            Duration::from_secs(30),
        )
        .map_err(anyhow::Error::new)
        .with_context(|| format!("connecting to {target}"))
    }
}

/// The time one API call (with its retries) may take.
pub fn api_deadline() -> Deadline {
    deadline(Duration::from_secs(600))
}

pub fn deadline(limit: Duration) -> Deadline {
    Deadline::new(Instant::now(), (!limit.is_zero()).then_some(limit))
}
