//! The commands: convert (run the current state, holding the lock), and the
//! read-only `--check`, `--status` and `--dry-run`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{Config, Mode};
use crate::disk::Label;
use crate::installer::{self, NodeDisk};
use xitc_common::phase::{Event, Phase};

use crate::log::{Log, TOOL};
use crate::paths::Files;
use crate::plan;
use crate::platform::Boot;
use crate::preflight;
use crate::runner;
use crate::state::{self, State};
use crate::system::System;

/// Runs the current state's steps, unless it belongs to the other OS or
/// another run holds the lock.
pub fn convert(
    system: &System,
    files: &Files,
    config: &Config,
    state: State,
) -> anyhow::Result<()> {
    runner::check_os(system, files, state)?;
    let _lock = lock(system, &files.lock)?;
    runner::run_state(system, files, config, state)
}

/// Holds `<install dir>/xitc-convert.lock` while a run works, so the boot hook
/// and a manual run never work at once. The kernel drops the lock when the
/// process ends, however it ends.
pub fn lock(system: &System, path: &Path) -> anyhow::Result<std::fs::File> {
    let file = system.open_for_lock(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another {TOOL} is running (it holds {}); see --status",
            path.display()
        )),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The directory of this executable, where 2014 kept state and log too.
pub fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program's own path")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("this program's path has no directory")
}

pub fn dry_run(
    system: &System,
    state: State,
    config: &Config,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (next, reboots) = plan::next(state, config);
    let what = match config.mode {
        Mode::Appliance => format!(
            "appliance {:?} from {}",
            config.appliance_label, config.appliance_url
        ),
        Mode::Direct => "direct mode (xapi at the cloud's address, no appliance)".to_owned(),
    };
    let mut text = format!(
        "{TOOL} --dry-run: state {state} (runs on {}), {what}, network source {}; would run:\n",
        state.runs_on(),
        config.network.name()
    );
    // The states that change the disk plan for its layout: show the plan.
    let layout_stage = match state {
        State::Start => Some(preflight::Stage::Start),
        State::SetupInstaller => Some(preflight::Stage::SetupInstaller),
        _ => None,
    };
    if let Some(stage) = layout_stage {
        match preflight::layout_of(system, config, stage) {
            Ok(layout) => {
                let _ = writeln!(text, "layout: {}", layout.describe());
            }
            Err(why) => {
                let _ = writeln!(text, "layout: not read here ({why})");
            }
        }
    }
    for (number, step) in plan::steps(state, config).iter().enumerate() {
        let _ = writeln!(text, "  {}. {}: {}", number + 1, step.name, step.does);
    }
    let _ = writeln!(
        text,
        "then: state {next}{}",
        if reboots { ", reboot" } else { "" }
    );
    let after = plan::after_recording(state, config);
    for (number, step) in after.iter().enumerate() {
        let _ = writeln!(text, "  {}. {}: {}", number + 1, step.name, step.does);
    }
    text.push_str("nothing was changed\n");
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

pub fn check(
    system: &System,
    files: &Files,
    config: &Config,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let downloads = preflight::downloads(config, files);
    let node = preflight::check(system, config, &downloads, preflight::Stage::Start)?;
    let network = &node.network;
    let nameservers: Vec<String> = network
        .nameservers
        .iter()
        .map(ToString::to_string)
        .collect();
    let text = format!(
        "preflight: the node can be converted\n  root: {} ({}), partition 1 of {}\n  \
         layout: {}\n  installers: {}\n  \
         space on /: {} bytes used, {} bytes free\n  network: {} {}/{} via {}, MAC {}, \
         name servers {}\n  mode: {}\n  network source: {} ({})\n  boot: {}\n  \
         virtualization: {}{}\nnothing was changed\n",
        node.root_device,
        node.fs_type,
        node.disk,
        node.layout.describe(),
        installer::who_can_install(NodeDisk {
            installer_name: &node.layout.installer_disk,
            dos_label: node.layout.table.label == Label::Dos,
            bytes: node.layout.disk_bytes,
            uefi: node.boot == Boot::Uefi,
        }),
        node.used_bytes,
        node.available_bytes,
        network.interface,
        network.address,
        network.prefix,
        network.gateway,
        network.mac,
        nameservers.join(", "),
        config.mode.name(),
        node.network_source.name(),
        node.network_reason,
        node.boot.describe(),
        node.virtualization.describe(),
        preflight::direct_mode_warning(config, &node)
            .map(|warning| format!("\n  warning: {warning}"))
            .unwrap_or_default(),
    );
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// How much of the log's end `--status` reads for its last line.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// How much of the log's end `--status` reads for the phase history: a
/// whole conversion's log is a few hundred KiB at most.
const PHASE_HISTORY_BYTES: u64 = 4 * 1024 * 1024;

/// The phase history `--status` shows: each state's begin and end, each
/// step's end with the time it took (its begin is not repeated), and a step
/// that began and has not ended (running, or cut short by a crash or a
/// reboot).
fn phase_history(phases: &[(u64, Phase)]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut began: Option<(u64, &Phase)> = None;
    for (seconds, phase) in phases {
        let took = |since: Option<(u64, &Phase)>| {
            since
                .filter(|(_, begun)| begun.name() == phase.name())
                .map(|(start, _)| format!(" after {}s", seconds.saturating_sub(start)))
                .unwrap_or_default()
        };
        let detail = phase
            .detail
            .as_deref()
            .map(|detail| format!(": {detail}"))
            .unwrap_or_default();
        match (phase.event, &phase.step) {
            (Event::Begin, Some(_)) => {
                if let Some((_, open)) = began.take() {
                    lines.push(format!("{} began and did not end", open.name()));
                }
                began = Some((*seconds, phase));
            }
            (Event::Ok | Event::Failed, Some(_)) => {
                lines.push(format!(
                    "{} {}{}{detail}",
                    phase.name(),
                    phase.event.word(),
                    took(began.take())
                ));
            }
            _ => {
                if let Some((_, open)) = began.take() {
                    lines.push(format!("{} began and did not end", open.name()));
                }
                lines.push(format!("{} {}{detail}", phase.name(), phase.event.word()));
            }
        }
    }
    if let Some((_, open)) = began {
        lines.push(format!(
            "{} began and has not ended (running, or cut short)",
            open.name()
        ));
    }
    lines
}

pub fn status(system: &System, files: &Files, out: &mut impl Write) -> anyhow::Result<()> {
    let (state, recorded) = state::read(system, &files.state)?;
    let mut text = format!(
        "state: {state} (runs on {}){}\nstate file: {}\n",
        state.runs_on(),
        if recorded { "" } else { " - no state file yet" },
        files.state.display()
    );
    match Config::load(system, &files.config)? {
        Some(config) => {
            let _ = writeln!(text, "config: {}", files.config.display());
            text.push_str(&config.describe());
        }
        None => text.push_str("config: none saved yet (the first run saves it)\n"),
    }
    let _ = write!(
        text,
        "install dir: {}\nlog: {}\n",
        files.install_dir.display(),
        files.log.display()
    );
    // The log's end, read lossily: a crash or a full disk can cut its last
    // line mid-character, and --status is what a user runs then.
    if let Some(tail) = system.read_tail(&files.log, LOG_TAIL_BYTES)? {
        let tail = String::from_utf8_lossy(&tail);
        if let Some(last) = tail.lines().last() {
            let _ = writeln!(
                text,
                "last log line: {}",
                xitc_common::exit::escape_control(last)
            );
        }
    }
    if let Some(log) = system.read_tail(&files.log, PHASE_HISTORY_BYTES)? {
        let history = phase_history(&Log::phases(&String::from_utf8_lossy(&log)));
        if !history.is_empty() {
            text.push_str("phases (from the log; the same lines the consoles show):\n");
            for line in history {
                let _ = writeln!(text, "  {line}");
            }
        }
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_history_says_what_ran_how_long_and_where_it_stopped() {
        let log = "[100] xitc-convert: state START: starting\n\
                   [100] xitc-convert: xitc-phase: START - begin\n\
                   [100] xitc-convert: xitc-phase: START preflight begin\n\
                   [101] xitc-convert: xitc-phase: START preflight ok\n\
                   [101] xitc-convert: xitc-phase: START download begin\n\
                   [196] xitc-convert: xitc-phase: START download ok\n\
                   [197] xitc-convert: xitc-phase: START - done: next state SETUP_INSTALLER, reboot\n\
                   [300] xitc-convert: xitc-phase: SETUP_INSTALLER - begin\n\
                   [300] xitc-convert: xitc-phase: SETUP_INSTALLER wait-route begin\n\
                   [600] xitc-convert: xitc-phase: SETUP_INSTALLER wait-route FAILED: no default route\n\
                   [700] xitc-convert: xitc-phase: SETUP_INSTALLER - begin\n\
                   [700] xitc-convert: xitc-phase: SETUP_INSTALLER wait-route begin\n";
        assert_eq!(
            phase_history(&Log::phases(log)),
            [
                "START begin",
                "START preflight ok after 1s",
                "START download ok after 95s",
                "START done: next state SETUP_INSTALLER, reboot",
                "SETUP_INSTALLER begin",
                "SETUP_INSTALLER wait-route FAILED after 300s: no default route",
                "SETUP_INSTALLER begin",
                "SETUP_INSTALLER wait-route began and has not ended (running, or cut short)",
            ]
        );
    }

    #[test]
    fn only_one_run_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let first = lock(&system, Path::new("/x.lock")).unwrap();
        let error = lock(&system, Path::new("/x.lock")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("another xitc-convert is running"),
            "{error}"
        );
        drop(first);
        lock(&system, Path::new("/x.lock")).unwrap();
    }
}
