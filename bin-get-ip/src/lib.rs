//! `xitc-get-ip-address-of-instance NAME_OR_ID`: prints a server's IP address once
//! it has one, for `IP=$(xitc-get-ip-address-of-instance instance)`.
//!
//! A drop-in for the 2014 script (which looped over `nova show` until
//! `accessIPv4` was set), so stdout is exactly one address and `\n` on success,
//! and nothing at all on failure. What it adds: a timeout, exit codes, exact-name
//! matching, a fault message for servers in ERROR, and address choices for clouds
//! that leave `accessIPv4` empty.
//!
//! Cost: a server that already has an address takes two requests, the token and
//! one list of servers filtered by name. Later polls ask for that one server by id.

use std::ffi::OsString;
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use xitc_common::cloud::{CloudClient, CloudConfig, Env, Server, Timeouts};
use xitc_common::exit::{self, EXIT_STATUS_HELP};
use xitc_common::poll::{Schedule, SystemClock, parse_duration, poll_until};

/// The name errors are reported under.
pub const TOOL: &str = "xitc-get-ip-address-of-instance";

const AFTER_HELP: &str = "\
Credentials, as the OpenStack clients read them:
  OS_CLOUD                  a cloud in clouds.yaml (./, ~/.config/openstack/,
                            /etc/openstack/, or OS_CLIENT_CONFIG_FILE; secure.yaml merged)
  OS_AUTH_URL               else these: Identity v2.0 or v3 (version from the URL's end,
  OS_USERNAME, OS_PASSWORD  discovered when it has none)
  OS_PROJECT_NAME, OS_PROJECT_ID (or OS_TENANT_NAME, OS_TENANT_ID)
  OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME (v3; default \"Default\")
  OS_AUTH_SYSTEM=rackspace or OS_AUTH_TYPE=rackspace_apikey, with OS_API_KEY or OS_PASSWORD
  OS_REGION_NAME, OS_INTERFACE (public), OS_COMPUTE_SERVICE_NAME (default: the only
                            compute service, or cloudServersOpenStack)";

/// Print the IP address of a cloud server, waiting until it has one.
///
/// NAME_OR_ID is matched against server names exactly, then tried as an id. The
/// address (one line on stdout) is accessIPv4 by default, or an address from the
/// server's networks when that is empty. A server in ERROR ends the wait (exit 1).
#[derive(Debug, Parser)]
#[command(name = TOOL, version, args_override_self = true, after_help = format!("{AFTER_HELP}\n\n{EXIT_STATUS_HELP}"))]
struct Cli {
    /// The server's exact name, or its id.
    #[arg(value_name = "NAME_OR_ID")]
    server: String,

    /// Which address to print: access (accessIPv4, else a public one), public
    /// (floating, on a network named "public", or globally routable), private, or
    /// any (the first of access, public, private).
    #[arg(long, value_enum, default_value_t = AddressChoice::Access)]
    address: AddressChoice,

    /// Print an IPv6 address (accessIPv6, …) instead of IPv4.
    #[arg(short = '6', long)]
    ipv6: bool,

    /// Output: the bare address, or one JSON object with id, name, status, address.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Time between polls (seconds, or with a unit: 500ms, 1m).
    #[arg(long, default_value = "1", value_parser = parse_duration)]
    interval: Duration,

    /// Give up after this long (exit 124); 0 waits forever.
    #[arg(long, default_value = "600", value_parser = parse_duration)]
    timeout: Duration,

    /// Connect timeout of each HTTP request.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    connect_timeout: Duration,

    /// Read timeout of each HTTP request (its response must arrive within it).
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    read_timeout: Duration,
}

/// Which of a server's addresses to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AddressChoice {
    Access,
    Public,
    Private,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Parses `args` (program name first), waits for the address and prints it.
pub fn run<I, T>(args: I, env: &Env, out: &mut impl Write) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    if cli.server.trim().is_empty() {
        return Err(exit::usage("NAME_OR_ID is empty"));
    }
    if cli.interval.is_zero() {
        return Err(exit::usage("--interval must be more than 0"));
    }
    for (flag, value) in [
        ("--connect-timeout", cli.connect_timeout),
        ("--read-timeout", cli.read_timeout),
    ] {
        if value.is_zero() {
            return Err(exit::usage(format!("{flag} must be more than 0")));
        }
    }
    let config = CloudConfig::load(env)?;
    for warning in &config.warnings {
        exit::warn(TOOL, warning);
    }
    let client = CloudClient::new(
        config,
        Timeouts {
            connect: cli.connect_timeout,
            read: cli.read_timeout,
        },
    )
    .with_notes(TOOL);
    let (server, address) = wait_for_address(&client, &cli)
        .with_context(|| format!("waiting for server {:?} to have an address", cli.server))?;
    let line = match cli.format {
        Format::Text => address,
        Format::Json => serde_json::json!({
            "id": server.id,
            "name": server.name,
            "status": server.status,
            "address": address,
        })
        .to_string(),
    };
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

fn wait_for_address(client: &CloudClient, cli: &Cli) -> anyhow::Result<(Server, String)> {
    let schedule = Schedule::new(cli.timeout, cli.interval);
    let mut known_id: Option<String> = None;
    poll_until(&SystemClock, schedule, |deadline| {
        let server = match &known_id {
            None => client.find_server(&cli.server, deadline)?,
            Some(id) => client.get_server(id, deadline)?.ok_or_else(|| {
                anyhow::anyhow!("server {id} was deleted while waiting for its address")
            })?,
        };
        if let Some(error) = server.error() {
            anyhow::bail!(error);
        }
        let address = choose_address(&server, cli.address, cli.ipv6);
        known_id = Some(server.id.clone());
        Ok(address.map(|address| (server, address)))
    })
}

/// The address `choice` picks from `server`, of the IPv4 or IPv6 family, as the
/// API spelled it (an IPv6 address is not reformatted).
///
/// "public" follows openstacksdk's idea of an external address: a floating
/// address first, then one on a network named "public", then any globally
/// routable one. "private" is a fixed address on a network named "private", then
/// any address that is not globally routable.
pub fn choose_address(server: &Server, choice: AddressChoice, ipv6: bool) -> Option<String> {
    // (text as the API gave it, parsed) for the addresses of the wanted family.
    let of_family = |text: &str| {
        let text = text.trim();
        let ip = text
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| ip.is_ipv6() == ipv6)?;
        Some((text.to_owned(), ip))
    };
    let access = || {
        let text = if ipv6 {
            server.access_ipv6.as_deref()
        } else {
            server.access_ipv4.as_deref()
        };
        text.and_then(of_family).map(|(text, _)| text)
    };
    let listed: Vec<(&str, Option<&str>, String, IpAddr)> = server
        .addresses
        .iter()
        .flat_map(|(network, addresses)| {
            addresses.iter().filter_map(move |address| {
                let (text, ip) = of_family(&address.addr)?;
                Some((network.as_str(), address.kind.as_deref(), text, ip))
            })
        })
        .collect();
    let public = || {
        let floating = listed
            .iter()
            .find(|(_, kind, ..)| *kind == Some("floating"));
        let on_public = listed.iter().find(|(network, ..)| *network == "public");
        let routable = listed.iter().find(|(.., ip)| is_globally_routable(ip));
        floating
            .or(on_public)
            .or(routable)
            .map(|(_, _, text, _)| text.clone())
    };
    let private = || {
        let on_private = listed.iter().find(|(network, ..)| *network == "private");
        let not_routable = listed.iter().find(|(.., ip)| !is_globally_routable(ip));
        on_private
            .or(not_routable)
            .map(|(_, _, text, _)| text.clone())
    };
    match choice {
        AddressChoice::Access => access().or_else(public),
        AddressChoice::Public => public(),
        AddressChoice::Private => private(),
        AddressChoice::Any => access().or_else(public).or_else(private),
    }
}

/// Not private, loopback, link-local, shared (CGNAT), unspecified or
/// documentation space.
fn is_globally_routable(address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || shared)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
        }
    }
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
    use std::collections::BTreeMap;
    use xitc_common::cloud::ServerAddress;

    fn server(access: Option<&str>, addresses: &[(&str, &str, Option<&str>)]) -> Server {
        let mut networks: BTreeMap<String, Vec<ServerAddress>> = BTreeMap::new();
        for (network, addr, kind) in addresses {
            networks
                .entry((*network).to_owned())
                .or_default()
                .push(ServerAddress {
                    addr: (*addr).to_owned(),
                    version: if addr.contains(':') { 6 } else { 4 },
                    kind: kind.map(str::to_owned),
                });
        }
        Server {
            id: "id".into(),
            name: "n".into(),
            status: "ACTIVE".into(),
            access_ipv4: access.map(str::to_owned),
            access_ipv6: None,
            addresses: networks,
            fault: None,
        }
    }

    fn pick(server: &Server, choice: AddressChoice) -> Option<String> {
        choose_address(server, choice, false)
    }

    #[test]
    fn access_ip_wins_when_set() {
        let s = server(Some("203.0.113.9"), &[("public", "198.51.100.1", None)]);
        assert_eq!(
            pick(&s, AddressChoice::Access).as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn empty_access_ip_falls_back_to_floating_then_public_then_routable() {
        let s = server(
            Some(""),
            &[
                ("net", "10.0.0.5", Some("fixed")),
                ("net", "172.24.4.7", Some("floating")),
                ("public", "8.8.4.4", None),
            ],
        );
        assert_eq!(
            pick(&s, AddressChoice::Access).as_deref(),
            Some("172.24.4.7")
        );
        let s = server(
            None,
            &[("private", "10.1.1.1", None), ("public", "10.9.9.9", None)],
        );
        assert_eq!(pick(&s, AddressChoice::Public).as_deref(), Some("10.9.9.9"));
        let s = server(
            None,
            &[
                ("a", "10.1.1.1", None),
                ("b", "100.64.0.1", None),
                ("c", "9.9.9.9", None),
            ],
        );
        assert_eq!(pick(&s, AddressChoice::Access).as_deref(), Some("9.9.9.9"));
    }

    #[test]
    fn nothing_usable_means_not_yet() {
        let s = server(None, &[("net", "10.0.0.5", Some("fixed"))]);
        assert_eq!(pick(&s, AddressChoice::Access), None);
        assert_eq!(pick(&s, AddressChoice::Public), None);
        assert_eq!(
            pick(&s, AddressChoice::Private).as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(pick(&s, AddressChoice::Any).as_deref(), Some("10.0.0.5"));
        assert_eq!(
            pick(&server(Some("garbage"), &[]), AddressChoice::Any),
            None
        );
    }

    #[test]
    fn private_prefers_the_private_network() {
        let s = server(
            None,
            &[("a", "192.168.1.1", None), ("private", "10.180.1.2", None)],
        );
        assert_eq!(
            pick(&s, AddressChoice::Private).as_deref(),
            Some("10.180.1.2")
        );
    }

    #[test]
    fn ipv6_picks_the_v6_family() {
        let mut s = server(
            Some("198.51.100.1"),
            &[
                ("public", "2001:db8::1", None),
                ("public", "203.0.113.1", None),
            ],
        );
        let v6 = |s: &Server, choice| choose_address(s, choice, true);
        assert_eq!(
            v6(&s, AddressChoice::Access).as_deref(),
            Some("2001:db8::1")
        );
        let spelled = server(None, &[("public", "2001:0db8:0000::0001", None)]);
        assert_eq!(
            v6(&spelled, AddressChoice::Public).as_deref(),
            Some("2001:0db8:0000::0001")
        );
        s.access_ipv6 = Some("2001:db8::99".into());
        assert_eq!(
            v6(&s, AddressChoice::Access).as_deref(),
            Some("2001:db8::99")
        );
        let local = server(None, &[("x", "fd00::1", None), ("y", "fe80::1", None)]);
        assert_eq!(v6(&local, AddressChoice::Public), None);
        assert_eq!(
            v6(&local, AddressChoice::Private).as_deref(),
            Some("fd00::1")
        );
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
