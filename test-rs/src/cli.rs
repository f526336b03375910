//! test-rs's command line: its clap definition, and the checks of its
//! arguments that run before anything is created in the cloud.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use xitc_common::convert_rules;
use xitc_common::exit::{self, EXIT_STATUS_HELP};
use xitc_common::poll::parse_duration;
use xitc_common::ssh::Target;

use crate::say::TOOL;

/// The 2014 test's image (Ubuntu on Rackspace).
pub const DEFAULT_IMAGE: &str = "62df001e-87ee-407c-b042-6f4e13f5d7e1";

/// What the 2014 test ran on the appliance to prove dom0 is reachable from it.
pub const DEFAULT_DOM0_CHECK: &str = "sudo -u domzero ssh -o BatchMode=yes \
     -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@192.168.33.2 true";

/// The direct mode's check, run in dom0 at the node's address: xapi answers
/// and names its host.
pub const DEFAULT_XAPI_CHECK: &str = "xe host-list --minimal | grep -q .";

/// xitc-convert's modes (its `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Appliance,
    Direct,
}

/// xitc-convert's network sources (its `--network`), passed on as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    Auto,
    Dhcp,
    ConfigDrive,
    Bounce,
}

/// Run the xitc end-to-end test against a real cloud.
///
/// Boots a server, converts it to XenServer with xitc-convert (which imports the
/// appliance from STAGING_VM_URL; with --mode direct there is none, and only
/// VM_POSTFIX is given), snapshots it, boots the snapshot and checks it again;
/// deletes what it created. Servers are named Jxitct<VM_POSTFIX> and
/// Jxitcs<VM_POSTFIX>, the snapshot Jxitci<VM_POSTFIX>, the keypair
/// Jxitck<VM_POSTFIX>. Cloud credentials as for xitc-get-ip-address-of-instance
/// (OS_CLOUD or OS_AUTH_URL, ...).
#[derive(Debug, Parser)]
#[command(name = TOOL, version, args_override_self = true, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// STAGING_VM_URL VM_POSTFIX: the URL of the appliance (XVA) that
    /// xitc-convert imports (not in the direct mode), and the suffix of every
    /// name this run creates (letters, digits, - and _).
    #[arg(value_name = "[STAGING_VM_URL] VM_POSTFIX", num_args = 1..=2, required = true)]
    pub arguments: Vec<String>,

    /// xitc-convert's mode: appliance (2014) or direct (xapi at the node's
    /// address, no appliance: no STAGING_VM_URL).
    #[arg(long, value_enum, default_value_t = Mode::Appliance)]
    pub mode: Mode,

    /// xitc-convert's network source, passed on.
    #[arg(long, value_enum, default_value_t = Network::Auto)]
    pub network: Network,

    /// Image to boot the test server from.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,

    /// Flavor of both servers (Xen HVM or nested virtualisation needed).
    #[arg(long, default_value = "performance1-8")]
    pub flavor: String,

    /// XenServer root password for the node [default: random per run]. Visible in
    /// `ps` when given here: prefer XENSERVER_PASSWORD.
    #[arg(long, env = "XENSERVER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Name label of the appliance VM.
    #[arg(long, default_value = "Devstack")]
    pub appliance_label: String,

    /// Where xitc-convert is put on the node.
    #[arg(long, default_value = "/opt/xenapi-in-the-cloud")]
    pub install_dir: String,

    /// The xitc-convert binary to upload [default: next to test-rs, then PATH,
    /// then /usr/lib/xitc/xitc-convert (the xitc-convert package)].
    #[arg(long, value_name = "PATH")]
    pub convert_binary: Option<PathBuf>,

    /// Keep everything this run created (servers, keypair, snapshot).
    #[arg(long)]
    pub keep: bool,

    /// Keep the snapshot image, delete the rest.
    #[arg(long)]
    pub keep_image: bool,

    /// Keep the run's artifacts in DIR (made if missing), also when it
    /// passes: each server's whole console log, xitc-convert's log and
    /// --status, dom0's installer logs, and timeline.json [default: kept only
    /// when the run fails, in a new directory under the temp dir].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,

    /// Reach the nodes through this HOST[:PORT] instead of their own IP.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub ssh_address: Option<String>,

    /// User to log in to the nodes as.
    #[arg(long, default_value = "root")]
    pub ssh_user: String,

    /// Use this OpenSSH private key (its public half is uploaded) instead of a new one.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,

    /// Metadata KEY=VALUE for the test server (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_metadata)]
    pub metadata: Vec<(String, String)>,

    /// Metadata KEY=VALUE for the server booted from the snapshot (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_metadata)]
    pub snapshot_metadata: Vec<(String, String)>,

    /// Command run on the snapshot node at the end [default: the appliance
    /// reaches dom0 (appliance mode); `xe host-list` answers (direct mode)].
    #[arg(long, value_name = "COMMAND")]
    pub dom0_check_command: Option<String>,

    /// Poll interval of every wait.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub interval: Duration,

    /// Limit for a server to become ACTIVE (and get an address).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub boot_timeout: Duration,

    /// Limit for SSH to answer on a new server.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub ssh_timeout: Duration,

    /// Limit for the conversion (and the snapshot's boot) to finish.
    #[arg(long, default_value = "3h", value_parser = parse_duration)]
    pub convert_timeout: Duration,

    /// Limit for the snapshot image to become ACTIVE.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub snapshot_timeout: Duration,
}

/// KEY=VALUE as Nova accepts server metadata (its API schema, `metadata` in
/// nova/api/validation/parameter_types.py): a key of 1–255 letters, digits and
/// `-_:. `, a value of at most 255 characters. Nova would refuse anything else
/// with HTTP 400 at boot time, after the keypair was made.
fn parse_metadata(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("{text:?} is not KEY=VALUE"));
    };
    let key_ok = (1..=255).contains(&key.chars().count())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c));
    if !key_ok {
        return Err(format!(
            "key {key:?} must be 1-255 letters, digits, '-', '_', ':', '.' or spaces (Nova's rule)"
        ));
    }
    if value.chars().count() > 255 {
        return Err(format!(
            "the value of {key} is longer than 255 characters (Nova's limit)"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Everything that can be checked without the cloud, checked before anything
/// is made in it: a bad value found after the keypair and a server exist costs
/// a cleanup at best and a leaked server at worst. The values xitc-convert gets
/// pass its own rules ([`xitc_common::convert_rules`]).
pub(crate) fn check_arguments(cli: &Cli) -> anyhow::Result<()> {
    match (cli.mode, cli.arguments.as_slice()) {
        (Mode::Appliance, [url, _]) => {
            convert_rules::check_url("STAGING_VM_URL", url)?;
            convert_rules::check_label("--appliance-label", &cli.appliance_label)?;
        }
        (Mode::Appliance, _) => {
            return Err(exit::usage(
                "STAGING_VM_URL and VM_POSTFIX are both needed (--mode direct: VM_POSTFIX only)",
            ));
        }
        (Mode::Direct, [_]) => {}
        (Mode::Direct, _) => {
            return Err(exit::usage(
                "the direct mode imports no appliance: give VM_POSTFIX only, no STAGING_VM_URL",
            ));
        }
    }
    convert_rules::check_mode_and_network(cli.mode_name(), cli.network_name())?;
    if let Some(password) = &cli.password {
        convert_rules::check_password(password)
            .map_err(|error| exit::usage(format!("--password or XENSERVER_PASSWORD: {error}")))?;
    }
    if cli.interval.is_zero() {
        return Err(exit::usage("--interval must be more than 0"));
    }
    for (what, value) in [
        ("--image", &cli.image),
        ("--flavor", &cli.flavor),
        ("--dom0-check-command", &cli.check_command().to_owned()),
    ] {
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            return Err(exit::usage(format!(
                "{what} must be non-empty, without control characters"
            )));
        }
    }
    if !cli.install_dir.starts_with('/') || cli.install_dir.chars().any(char::is_control) {
        return Err(exit::usage(format!(
            "--install-dir must be an absolute path without control characters, got {}",
            exit::escape_control(&format!("{:?}", cli.install_dir))
        )));
    }
    // The SSH user and --ssh-address, as every connection will parse them.
    if cli.ssh_user.contains('@') || Target::parse(&format!("{}@node", cli.ssh_user), None).is_err()
    {
        return Err(exit::usage(format!(
            "--ssh-user {:?} is not a user name (no spaces, '@', ':' or control characters)",
            cli.ssh_user
        )));
    }
    if let Some(address) = &cli.ssh_address {
        if address.contains('@') {
            return Err(exit::usage(format!(
                "--ssh-address {address:?} has '@': give the user with --ssh-user"
            )));
        }
        Target::parse(&format!("{}@{address}", cli.ssh_user), None)
            .map_err(|error| exit::usage(format!("--ssh-address: {error}")))?;
    }
    Ok(())
}

impl Cli {
    /// VM_POSTFIX: the last argument.
    pub fn postfix(&self) -> &str {
        self.arguments.last().map_or("", String::as_str)
    }

    /// STAGING_VM_URL, in the appliance mode.
    pub fn staging_vm_url(&self) -> Option<&str> {
        match (self.mode, self.arguments.as_slice()) {
            (Mode::Appliance, [url, _]) => Some(url),
            _ => None,
        }
    }

    /// The command run on the snapshot node at the end.
    pub fn check_command(&self) -> &str {
        match (&self.dom0_check_command, self.mode) {
            (Some(command), _) => command,
            (None, Mode::Appliance) => DEFAULT_DOM0_CHECK,
            (None, Mode::Direct) => DEFAULT_XAPI_CHECK,
        }
    }

    /// `--mode` as xitc-convert spells it.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Appliance => "appliance",
            Mode::Direct => "direct",
        }
    }

    /// `--network` as xitc-convert spells it.
    pub fn network_name(&self) -> &'static str {
        match self.network {
            Network::Auto => "auto",
            Network::Dhcp => "dhcp",
            Network::ConfigDrive => "config-drive",
            Network::Bounce => "bounce",
        }
    }
}
