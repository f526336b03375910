//! Running a state: its steps in order, a log line for each, then (only when
//! all succeeded) the next state recorded and, where the cycle says so, a
//! reboot. A failing step ends the run with the state unchanged, so the next
//! run (the next boot) does the state again; every step is idempotent for that.

use std::path::Path;
use std::time::Duration;

use xitc_common::exit;

use crate::Files;
use crate::config::Config;
use crate::plan;
use crate::preflight::Node;
use crate::state::{self, State};
use crate::system::System;

/// The log: `<install dir>/xitc-convert.log` (0600) and stdout (journald). The
/// password never reaches it: a run holds only its hash.
#[derive(Debug)]
pub struct Log<'a> {
    system: &'a System,
    path: &'a Path,
}

impl<'a> Log<'a> {
    pub fn new(system: &'a System, path: &'a Path) -> Self {
        Log { system, path }
    }

    pub fn line(&self, text: &str) {
        let stamp = timestamp();
        let line = format!("{stamp} xitc-convert: {text}\n");
        print!("{line}");
        // A log that cannot be written must not stop the conversion.
        let _ = self.system.append(self.path, &line);
    }
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    // Seconds since the epoch: sortable, and no time-zone library on the node.
    format!("[{now}]")
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

/// What the steps of a run share.
#[derive(Debug)]
pub struct Work<'a> {
    pub system: &'a System,
    pub files: &'a Files,
    pub config: &'a Config,
    pub log: Log<'a>,
    /// Filled by the preflight step.
    pub node: Option<Node>,
    pub limits: Limits,
}

/// Which OS this run is in: dom0 has `/etc/xensource-inventory`.
pub fn running_on(system: &System) -> &'static str {
    if system.exists("/etc/xensource-inventory") {
        "dom0"
    } else {
        "Ubuntu"
    }
}

/// Refuses a state that belongs to the other OS. The case that matters: the
/// node booted Ubuntu in a dom0 state because the install failed (GRUB fell
/// back to Ubuntu). Rebooting again would loop; the node stays usable over SSH
/// and the log and `--status` say what happened.
pub fn check_os(system: &System, files: &Files, state: State) -> anyhow::Result<()> {
    let here = running_on(system);
    if state.runs_on() == here || finishes_in_dom0(system, state) {
        return Ok(());
    }
    let message = if here == "Ubuntu" {
        format!(
            "state {state} runs in dom0, but this is Ubuntu: the XenServer install did not \
             happen (see the installer's messages on the console); not rebooting"
        )
    } else {
        format!("state {state} runs in Ubuntu, but this is dom0; not rebooting")
    };
    Log::new(system, &files.log).line(&message);
    Err(anyhow::anyhow!(message))
}

/// In dom0 with state UBUNTU, a dom0 state has finished and recorded UBUNTU,
/// but its closing steps (the stamp) may not have run: the run was cut short
/// there, or dom0 booted again without Ubuntu in between. They run again.
fn finishes_in_dom0(system: &System, state: State) -> bool {
    state == State::Ubuntu && running_on(system) == "dom0"
}

impl Work<'_> {
    /// The node as the state's first step read it.
    pub fn node(&self) -> anyhow::Result<&Node> {
        self.node
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the node was not read yet (preflight or inspect step)"))
    }
}

/// The step that flushes everything to disk before a reboot.
pub fn sync(work: &mut Work<'_>) -> anyhow::Result<()> {
    work.system.run("sync", &[]).map(drop)
}

/// Runs `state`'s steps; records the next state and reboots when the cycle says.
pub fn run_state(
    system: &System,
    files: &Files,
    config: &Config,
    state: State,
) -> anyhow::Result<()> {
    run_state_with(system, files, config, state, Limits::default())
}

/// [`run_state`] with other [`Limits`].
pub fn run_state_with(
    system: &System,
    files: &Files,
    config: &Config,
    state: State,
    limits: Limits,
) -> anyhow::Result<()> {
    let mut work = Work {
        system,
        files,
        config,
        log: Log::new(system, &files.log),
        node: None,
        limits,
    };
    check_os(system, files, state)?;
    if finishes_in_dom0(system, state) {
        work.log.line(
            "state UBUNTU in dom0: the last dom0 state finished; doing its closing steps again",
        );
        for step in plan::after_recording(State::Xenserver) {
            run_step(&mut work, State::Xenserver, step)?;
        }
        return Ok(());
    }
    work.log.line(&format!("state {state}: starting"));
    for step in plan::steps(state) {
        run_step(&mut work, state, step)?;
    }
    let (next, reboots) = state.next();
    state::write(system, &files.state, next)?;
    work.log
        .line(&format!("state {state}: done; next state {next}"));
    for step in plan::after_recording(state) {
        run_step(&mut work, state, step)?;
    }
    if reboots {
        work.log.line("rebooting");
        system.run("reboot", &[])?;
    }
    Ok(())
}

fn run_step(work: &mut Work<'_>, state: State, step: &plan::Step) -> anyhow::Result<()> {
    work.log.line(&format!("state {state}: {}", step.name));
    (step.action)(work).map_err(|error| {
        work.log
            .line(&format!("state {state}: {} failed: {error:#}", step.name));
        // xitc-convert has no --timeout: a wait of a step that runs out is the
        // step failing (exit 1); exit 124 means "your --timeout ran out".
        let error = if exit::kind_of(&error) == exit::Kind::Timeout {
            anyhow::anyhow!("{error:#}")
        } else {
            error
        };
        error.context(format!("state {state}, step {}", step.name))
    })
}
