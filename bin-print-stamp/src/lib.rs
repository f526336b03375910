//! `xitc-print-stamp-path`: prints where the "conversion done" stamp lives, so that
//! scripts never spell the path themselves:
//!
//! ```sh
//! ssh root@"$IP" test -e "$(xitc-print-stamp-path)"
//! ```
//!
//! A drop-in for the 2014 `print-stamp-path` script: the path and `\n` on stdout,
//! nothing else. The path itself, and the `XITC_STAMP_PATH` override, live in
//! `xitc_common::stamp`.

use std::ffi::OsString;
use std::io::Write;

use anyhow::Context as _;
use clap::Parser;
use xitc_common::exit::EXIT_STATUS_HELP;
use xitc_common::stamp;

/// The name errors are reported under.
pub const TOOL: &str = "xitc-print-stamp-path";

/// Print the path of the stamp file that marks a finished conversion.
///
/// Prints /var/run/xenserver.ready, or the value of XITC_STAMP_PATH when that is
/// set (it must then be a non-empty absolute path).
#[derive(Debug, Parser)]
#[command(name = TOOL, version, after_help = EXIT_STATUS_HELP)]
struct Cli {}

/// Parses `args` (program name first) and writes the stamp path to `out`.
pub fn run<I, T>(args: I, out: &mut impl Write) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)?;
    let path = stamp::stamp_path()?;
    writeln!(out, "{path}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// The command line as clap defines it: what `--help` prints, and what the
/// man page and shell completions are generated from (`xtask`), so the three
/// never disagree.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_arguments_are_rejected() {
        let mut out = Vec::new();
        let error = run(["xitc-print-stamp-path", "extra"], &mut out).unwrap_err();
        assert!(error.downcast_ref::<clap::Error>().is_some());
        assert!(out.is_empty());
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
