//! `test-rs STAGING_VM_URL VM_POSTFIX`: the 2014 end-to-end test against a real
//! OpenStack / Rackspace cloud, in Rust.
//!
//! It does what a user does: generate a keypair, boot
//! `Jxitct<postfix>`, get its address with `xitc-get-ip-address-of-instance`,
//! upload and start `xitc-convert`, wait with `xitc-wait-until-done`, remove the
//! stamp, snapshot the node as `Jxitci<postfix>`, boot `Jxitcs<postfix>` from the
//! snapshot, wait again, and check that the appliance's `domzero` user reaches
//! dom0. The sibling tools are run as programs, found next to test-rs's own
//! executable first and then in PATH, so the test exercises them as users run
//! them. Cloud calls go through `xitc_common::cloud`, SSH through
//! `xitc_common::ssh`.
//!
//! Everything it creates is deleted again in reverse order — on success, on
//! failure and on Ctrl-C — unless `--keep`; leftovers of an earlier run with the
//! same postfix are deleted first, as in 2014. Each step is printed with its
//! duration, and a summary table ends the run.
//!
//! Decisions written down here:
//! - The XenServer password reaches the node in a 0600 file uploaded over SCP and
//!   is handed to xitc-convert with `--password-file`, never on a command line.
//!   Without `--password`/`XENSERVER_PASSWORD` a random one is made per run.
//! - `--ssh-address` sends every SSH connection to one address instead of the
//!   node's own IP (port-forwards, bastions, the local rehearsal).
//! - `--dom0-check-command` replaces the command run on the snapshot node for the
//!   dom0 check (the 2014 one by default).
//! - `--mode direct` converts without an appliance (xitc-convert's direct
//!   mode: xapi at the node's address), so it takes VM_POSTFIX alone; its
//!   final check asks the host's own xapi (`xe host-list`) on the snapshot
//!   node, after the same waits for the stamp. `--network` is passed on.
//! - The waits' console lines are stamped as they arrive (the node's clock is
//!   not trusted, nor always set) and make the timeline; the artifacts
//!   (`--artifacts DIR`, or a temp dir when a run fails) are collected before
//!   cleanup, while the servers exist, and never change the run's outcome.
//!
//! Its modules import downwards only (ARCHITECTURE.md "Layers of test-rs";
//! `tests/layers.rs` keeps it so): `flow` (the steps of a run) over `cleanup`
//! (deleting what it made) and `artifacts` (keeping what CI needs) over `run`
//! (a run's context and what it created) over `cli`, `steps` and `programs`,
//! over `names`, `say` (the one output path) and `timeline`.

mod artifacts;
mod cleanup;
mod cli;
mod flow;
mod names;
mod programs;
mod run;
mod say;
mod steps;
mod timeline;

use std::ffi::OsString;

use clap::Parser;
use xitc_common::output::Output;

pub use cli::{Cli, DEFAULT_DOM0_CHECK, DEFAULT_IMAGE, DEFAULT_XAPI_CHECK, Mode, Network};
pub use names::Names;
pub use say::TOOL;

/// The command line as clap defines it: what `--help` prints, and what the
/// man page and shell completions are generated from (`xtask`), so the three
/// never disagree.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Parses `args` (program name first) and runs the test.
pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    cli::check_arguments(&cli)?;
    let names = Names::new(cli.postfix())?;
    let tested = flow::run(&cli, &names);
    let printed = say::take_output().map_or(Ok(()), Output::finish);
    tested.and(printed)
}
