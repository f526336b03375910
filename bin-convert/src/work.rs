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

impl Log<'_> {
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
        log: Log {
            system,
            path: &files.log,
        },
        node: None,
    };
    work.log.line(&format!("state {state}: starting"));
    for step in plan::steps(state) {
        let action = step.action.ok_or_else(|| {
            anyhow::anyhow!("state {state}: step {} is not implemented", step.name)
        })?;
        work.log.line(&format!("state {state}: {}", step.name));
        if let Err(error) = action(&mut work) {
            work.log
                .line(&format!("state {state}: {} failed: {error:#}", step.name));
            return Err(error.context(format!("state {state}, step {}", step.name)));
        }
    }
    let (next, reboots) = state.next();
    state::write(system, &files.state, next)?;
    work.log
        .line(&format!("state {state}: done; next state {next}"));
    if reboots {
        work.log.line("rebooting");
        system.run("reboot", &[])?;
    }
    Ok(())
}
