//! Running a state: its steps in order, a log line for each, then (only when
//! all succeeded) the next state recorded and, where the cycle says so, a
//! reboot. A failing step ends the run with the state unchanged, so the next
//! run (the next boot) does the state again; every step is idempotent for that.

use std::path::Path;

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

/// What the steps of a run share.
#[derive(Debug)]
pub struct Work<'a> {
    pub system: &'a System,
    pub files: &'a Files,
    pub config: &'a Config,
    pub log: Log<'a>,
    /// Filled by the preflight step.
    pub node: Option<Node>,
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
    if state.runs_on() == here {
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
    let mut work = Work {
        system,
        files,
        config,
        log: Log::new(system, &files.log),
        node: None,
    };
    check_os(system, files, state)?;
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
        error.context(format!("state {state}, step {}", step.name))
    })
}
