//! The command line: arguments, options and the first run's settings taken
//! from them, and [`run`], which picks the command (convert, `--check`,
//! `--status`, `--dry-run`; [`crate::commands`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use xitc_common::convert_rules;
use xitc_common::exit::{self, EXIT_STATUS_HELP};
use xitc_common::secret::Secret;

use crate::commands;
use crate::config::{self, Config, Mode, NetworkSource};
use crate::log::TOOL;
use crate::paths::Files;
use crate::state::{self, State};
use crate::system::System;

/// XCP-ng 8.3 (the 2014 XenServer 6.2 URL is dead).
pub const DEFAULT_ISO_URL: &str =
    "https://mirrors.xcp-ng.org/isos/8.3/xcp-ng-8.3.0-20260806.iso?https=1";

const PASSWORD_ENV: &str = "XENSERVER_PASSWORD";

/// Convert this Ubuntu cloud node into a XenServer / XCP-ng host (run as root).
///
/// The first run (state START) needs the password and, in the appliance mode,
/// the appliance URL and its name label, and saves them with the mode and the
/// network source (the password only as a hash); every later run, started by
/// the boot hook, reads them back and does the work of the state it finds.
#[derive(Debug, Parser)]
#[command(
    name = TOOL,
    version,
    args_override_self = true,
    override_usage = "xitc-convert [OPTIONS] [PASSWORD] APPLIANCE_URL APPLIANCE_NAME_LABEL\n       \
                      xitc-convert --mode direct [OPTIONS] [PASSWORD]\n       \
                      xitc-convert [OPTIONS]   (boot-time runs: the saved config)",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    /// [PASSWORD] APPLIANCE_URL APPLIANCE_NAME_LABEL, as in 2014 (the direct
    /// mode: [PASSWORD] only). PASSWORD is the XenServer root password
    /// (visible in `ps`: prefer XENSERVER_PASSWORD or --password-file, and
    /// leave it out here); APPLIANCE_URL the appliance VM (XVA) to import;
    /// APPLIANCE_NAME_LABEL its name label.
    #[arg(value_name = "ARGS", num_args = 0..=3)]
    arguments: Vec<String>,

    /// What the node becomes (README "Modes and network sources").
    #[arg(long, value_enum, default_value_t = Mode::Appliance)]
    mode: Mode,

    /// Where dom0 learns the cloud's network on each boot.
    #[arg(long, value_enum, default_value_t = NetworkSource::Auto)]
    network: NetworkSource,

    /// Read the password from this file (first line).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// The XenServer / XCP-ng installer ISO.
    #[arg(long, default_value = DEFAULT_ISO_URL)]
    iso_url: String,

    /// Expected SHA-256 of the ISO (hex).
    #[arg(long, value_name = "HEX")]
    iso_sha256: Option<String>,

    /// Expected SHA-256 of the appliance XVA (hex).
    #[arg(long, value_name = "HEX")]
    appliance_sha256: Option<String>,

    /// Size the Ubuntu root is shrunk to (bytes, or with K, M, G, T) [default:
    /// computed from the space in use].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    ubuntu_size: Option<u64>,

    /// The installer's name for the disk (sda, vda, nvme0n1) [default: derived
    /// from the node's disk; --check shows it].
    #[arg(long, value_name = "NAME")]
    installer_disk: Option<String>,

    /// The installer's name for the network card.
    #[arg(long, default_value = "eth0")]
    installer_nic: String,

    /// VCPUs for the appliance VM [default: as many as the host has CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    appliance_vcpus: Option<u32>,

    /// The appliance's user that dom0 logs in as over SSH (it needs sudo, and
    /// the appliance authorises dom0's key for it from xenstore).
    #[arg(long, value_name = "USER", default_value = config::DEFAULT_APPLIANCE_USER)]
    appliance_user: String,

    /// Where state, config and log live [default: this binary's directory].
    #[arg(long, value_name = "DIR")]
    install_dir: Option<PathBuf>,

    /// Confine every file and /proc, /sys, /dev lookup to DIR (tests, rehearsals).
    #[arg(long, value_name = "DIR", env = "XITC_ROOT")]
    root: Option<PathBuf>,

    /// Print the steps the current state would run; change nothing.
    #[arg(long, conflicts_with = "status")]
    dry_run: bool,

    /// Print the state, the saved config (password masked) and the log path.
    #[arg(long)]
    status: bool,

    /// Run START's preflight checks and print what they found; change nothing.
    #[arg(long, conflicts_with_all = ["status", "dry_run"])]
    check: bool,
}

/// The mode and network source asked for, or why they do not go together.
fn mode_and_network(cli: &Cli) -> anyhow::Result<(Mode, NetworkSource)> {
    convert_rules::check_mode_and_network(cli.mode.name(), cli.network.name())?;
    Ok((cli.mode, cli.network))
}

/// Parses `2G`, `512M`, `1048576`: bytes, or binary units K, M, G, T.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let multiplier: u64 = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size (e.g. 8G, 512M, 1073741824)"
            ));
        }
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 8G, 512M, 1073741824)"))?;
    match value.checked_mul(multiplier) {
        Some(0) => Err("the size must be more than 0".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{text:?} is too large")),
    }
}

/// Parses `args` (program name first) and runs.
pub fn run<I, T>(args: I, out: &mut impl Write) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    let system = System::new(cli.root.clone());
    if system.is_sandboxed() && !system.root().is_dir() {
        return Err(exit::usage(format!(
            "--root {} is not a directory",
            system.root().display()
        )));
    }
    let install_dir = match &cli.install_dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => {
            return Err(exit::usage(format!(
                "--install-dir must be absolute, got {}",
                dir.display()
            )));
        }
        None => commands::own_dir()?,
    };
    let files = Files::new(install_dir);
    if cli.status {
        return commands::status(&system, &files, out);
    }
    let (state, _) = state::read(&system, &files.state)?;
    let config = match Config::load(&system, &files.config)? {
        Some(saved) => saved,
        None => config_from_arguments(&cli, state)?,
    };
    if cli.dry_run {
        return commands::dry_run(&system, state, &config, out);
    }
    if cli.check {
        return commands::check(&system, &files, &config, out);
    }
    commands::convert(&system, &files, &config, state)
}

/// The settings of a first run, from the arguments. Every other state needs the
/// config saved by START.
fn config_from_arguments(cli: &Cli, state: State) -> anyhow::Result<Config> {
    if state != State::Start {
        return Err(exit::usage(format!(
            "state {state} needs the config that START saved, and there is none"
        )));
    }
    let (mode, network) = mode_and_network(cli)?;
    let (password, appliance_url, appliance_label) = first_run_arguments(cli, mode)?;
    convert_rules::check_url("--iso-url", &cli.iso_url)?;
    if mode == Mode::Appliance {
        convert_rules::check_url("APPLIANCE_URL", &appliance_url)?;
        convert_rules::check_label("APPLIANCE_NAME_LABEL", &appliance_label)?;
    } else if let Some(option) = [
        ("--appliance-sha256", cli.appliance_sha256.is_some()),
        ("--appliance-vcpus", cli.appliance_vcpus.is_some()),
    ]
    .into_iter()
    .find_map(|(option, given)| given.then_some(option))
    {
        return Err(exit::usage(format!(
            "{option} is for the appliance mode: the direct mode has no appliance"
        )));
    }
    for (what, sum) in [
        ("--iso-sha256", &cli.iso_sha256),
        ("--appliance-sha256", &cli.appliance_sha256),
    ] {
        if let Some(sum) = sum
            && !(sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(exit::usage(format!(
                "{what} must be 64 hex digits, got {sum:?}"
            )));
        }
    }
    for (what, name) in [
        ("--installer-disk", cli.installer_disk.as_ref()),
        ("--installer-nic", Some(&cli.installer_nic)),
    ]
    .into_iter()
    .filter_map(|(what, name)| Some((what, name?)))
    {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(exit::usage(format!(
                "{what} must be a device name like sda or eth0, got {name:?}"
            )));
        }
    }
    let user = &cli.appliance_user;
    let user_ok = user
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && user.len() <= 32;
    if !user_ok {
        return Err(exit::usage(format!(
            "--appliance-user must be a user name like domzero, got {user:?}"
        )));
    }
    Ok(Config {
        mode,
        network,
        appliance_url,
        appliance_label,
        iso_url: cli.iso_url.clone(),
        iso_sha256: cli.iso_sha256.as_ref().map(|sum| sum.to_ascii_lowercase()),
        appliance_sha256: cli
            .appliance_sha256
            .as_ref()
            .map(|sum| sum.to_ascii_lowercase()),
        ubuntu_size: cli.ubuntu_size,
        installer_disk: cli.installer_disk.clone(),
        installer_nic: cli.installer_nic.clone(),
        root_password_hash: config::hash_password(&password)?,
        appliance_vcpus: cli.appliance_vcpus,
        appliance_user: cli.appliance_user.clone(),
        stamp_path: xitc_common::stamp::stamp_path()?,
    })
}

/// PASSWORD (from the arguments, XENSERVER_PASSWORD or --password-file: one of
/// them), APPLIANCE_URL and APPLIANCE_NAME_LABEL (empty in the direct mode).
/// With the password from the environment or a file, the arguments are just
/// the URL and the label (none in the direct mode).
/// The installer reads its answerfile as ASCII (Python 2 on XS 8 / XCP-ng 8.3).
fn first_run_arguments(cli: &Cli, mode: Mode) -> anyhow::Result<(Secret, String, String)> {
    let from_env = std::env::var(PASSWORD_ENV)
        .ok()
        .filter(|value| !value.is_empty());
    let from_file = match &cli.password_file {
        Some(path) => {
            let text = xitc_common::files::read_bounded_text(
                path,
                "--password-file",
                xitc_common::files::SMALL_FILE_LIMIT,
            )?;
            Some(text.lines().next().unwrap_or_default().to_owned())
        }
        None => None,
    };
    let mut arguments = cli.arguments.clone();
    let with_password = match mode {
        Mode::Appliance => 3,
        Mode::Direct => 1,
    };
    if mode == Mode::Direct && arguments.len() > 1 {
        return Err(exit::usage(format!(
            "the direct mode takes no APPLIANCE_URL or APPLIANCE_NAME_LABEL (it imports no \
             appliance): give at most PASSWORD, got {} arguments",
            arguments.len()
        )));
    }
    let from_arguments = (arguments.len() == with_password).then(|| arguments.remove(0));
    let given: Vec<String> = [from_arguments, from_env, from_file]
        .into_iter()
        .flatten()
        .collect();
    let password = match given.as_slice() {
        [] => {
            return Err(exit::usage(format!(
                "no password: give PASSWORD, {PASSWORD_ENV} or --password-file"
            )));
        }
        [one] => one.clone(),
        _ => {
            return Err(exit::usage(format!(
                "the password is given more than once (PASSWORD, {PASSWORD_ENV}, \
                 --password-file): give one"
            )));
        }
    };
    convert_rules::check_password(&password)?;
    if mode == Mode::Direct {
        return Ok((Secret::new(password), String::new(), String::new()));
    }
    let mut rest = arguments.into_iter();
    let appliance_url = rest
        .next()
        .ok_or_else(|| exit::usage("APPLIANCE_URL is missing (needed on the first run)"))?;
    let appliance_label = rest
        .next()
        .ok_or_else(|| exit::usage("APPLIANCE_NAME_LABEL is missing (needed on the first run)"))?;
    Ok((Secret::new(password), appliance_url, appliance_label))
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
    fn sizes() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        for bad in ["", "G", "-1G", "1.5G", "8X", "0", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
