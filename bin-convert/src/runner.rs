//! Running a state: its steps in order, a log line for each, then (only when
//! all succeeded) the next state recorded and, where the cycle says so, a
//! reboot. A failing step ends the run with the state unchanged, so the next
//! run (the next boot) does the state again; every step is idempotent for that.
//! ARCHITECTURE.md shows the cycle.

use xitc_common::exit;

use crate::config::Config;
use crate::log::Log;
use crate::paths::Files;
use crate::plan;
use crate::state::{self, State};
use crate::system::System;
use crate::work::{Limits, Step, Work};

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

fn run_step(work: &mut Work<'_>, state: State, step: &Step) -> anyhow::Result<()> {
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
