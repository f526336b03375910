//! Running a state: its steps in order, a log line for each, then (only when
//! all succeeded) the next state recorded and, where the cycle says so, a
//! reboot. A failing step ends the run with the state unchanged, so the next
//! run (the next boot) does the state again; every step is idempotent for that.
//! ARCHITECTURE.md shows the cycle.

use xitc_common::exit;
use xitc_common::phase::{Event, Phase};

use crate::config::Config;
use crate::log::Log;
use crate::paths::Files;
use crate::plan;
use crate::settings;
use crate::shared::appliance;
use crate::state::{self, State};
use crate::steps::start;
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
    let log = Log::new(system, &files.log);
    log.line(&message);
    log.phase(&Phase::new(&state.to_string(), None, Event::Failed).with_detail(&message));
    Err(anyhow::anyhow!(message))
}

/// In dom0 with state UBUNTU, a dom0 state has finished and recorded UBUNTU,
/// and Ubuntu has not run since: [`recover_in_dom0`] says what happens.
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
        installer: None,
        limits,
    };
    check_os(system, files, state)?;
    if finishes_in_dom0(system, state) {
        return recover_in_dom0(&mut work);
    }
    work.log.line(&format!("state {state}: starting"));
    work.log
        .phase(&Phase::new(&state.to_string(), None, Event::Begin));
    for step in plan::steps(state, config) {
        if let Err(error) = run_step(&mut work, state, step) {
            if state == State::Start && exit::kind_of(&error) == exit::Kind::Usage {
                start::forget_refused(&work);
            }
            return Err(error);
        }
    }
    let (next, reboots) = plan::next(state, config);
    state::write(system, &files.state, next)?;
    work.log
        .line(&format!("state {state}: done; next state {next}"));
    work.log.phase(
        &Phase::new(&state.to_string(), None, Event::Done).with_detail(&format!(
            "next state {next}{}",
            if reboots { ", reboot" } else { "" }
        )),
    );
    for step in plan::after_recording(state, config) {
        run_step(&mut work, state, step)?;
    }
    if reboots {
        work.log.line("rebooting");
        system.run("reboot", &[])?;
    }
    Ok(())
}

/// dom0 in state UBUNTU: the last dom0 state finished, and Ubuntu has not run
/// since. Three cases, each logged with its reason:
/// - the appliance runs: that state's run was cut short after it recorded
///   UBUNTU, before its closing steps (the stamp); they run again;
/// - it does not, and dom0 has the network settings Ubuntu saved before: dom0
///   booted again without Ubuntu in between (the boot-loader switch failed, or
///   someone booted dom0 by hand). XENSERVER's steps run with those settings,
///   which starts the appliance, touches the stamp and makes Ubuntu the next
///   boot again; the state stays UBUNTU;
/// - no usable settings: nothing to start the appliance with, so the node
///   boots Ubuntu to capture them (the bounce), as the state says.
fn recover_in_dom0(work: &mut Work<'_>) -> anyhow::Result<()> {
    let closing = plan::after_recording(State::Xenserver, work.config);
    // xe answers only once xapi is up (this may be the boot's first run).
    run_step(work, State::Xenserver, &plan::WAIT_XAPI)?;
    if appliance::is_running(work)? {
        work.log.line(
            "state UBUNTU in dom0 with the appliance running: the last dom0 state was cut \
             short after it finished; doing its closing steps again",
        );
        for step in closing {
            run_step(work, State::Xenserver, step)?;
        }
        return Ok(());
    }
    match settings::read_in_dom0(work.system) {
        Ok(_) => {
            work.log.line(
                "state UBUNTU in dom0, the appliance not running: dom0 booted again without \
                 Ubuntu in between (the boot-loader switch failed, or dom0 was booted by \
                 hand); starting the appliance with the network settings saved before \
                 (XENSERVER's steps); the state stays UBUNTU",
            );
            for step in plan::steps(State::Xenserver, work.config)
                .iter()
                .chain(closing)
            {
                run_step(work, State::Xenserver, step)?;
            }
            Ok(())
        }
        Err(error) => {
            work.log.line(&format!(
                "state UBUNTU in dom0, the appliance not running, and no network settings \
                 to start it with ({error:#}): booting Ubuntu to capture them"
            ));
            for step in &plan::BOUNCE_AGAIN {
                run_step(work, State::Ubuntu, step)?;
            }
            work.log.line("rebooting");
            work.system.run("reboot", &[]).map(drop)
        }
    }
}

/// Runs one step, with its log lines and its phase lines (begin, then ok or
/// FAILED with the reason).
fn run_step(work: &mut Work<'_>, state: State, step: &Step) -> anyhow::Result<()> {
    let phase = |event| Phase::new(&state.to_string(), Some(step.name), event);
    work.log.line(&format!("state {state}: {}", step.name));
    work.log.phase(&phase(Event::Begin));
    (step.action)(work)
        .map(|()| work.log.phase(&phase(Event::Ok)))
        .map_err(|error| {
            work.log
                .line(&format!("state {state}: {} failed: {error:#}", step.name));
            work.log
                .phase(&phase(Event::Failed).with_detail(&format!("{error:#}")));
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
