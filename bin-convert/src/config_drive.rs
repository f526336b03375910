//! The cloud's network for one NIC, as a Nova config drive states it in
//! `openstack/latest/network_data.json` (the `--network config-drive` source).
//! Parsed with serde; only what xitc needs is read, everything else in the
//! file is ignored.
//!
//! The drive is found by its file system label, `config-2` (vfat drives may
//! carry it in capitals, as cloud-init accepts), and read in userspace,
//! through a descriptor opened read-only: the ISO 9660 reader
//! ([`crate::iso`]) or the `fatfs` crate behind [`DriveReader`], which
//! refuses every write and bounds the reads (fatfs follows a FAT's cluster
//! chain for ever when damage makes it loop). Nothing is mounted, so nothing on the node changes, in Ubuntu
//! (cloud-init has unmounted the drive) as in dom0, and the tests read real
//! images made by xorriso and mtools.
//!
//! The format (Nova's network metadata, since 2015; what cloud-init's
//! ConfigDrive source reads): `links` (each with an `id`, its
//! `ethernet_mac_address`, `mtu` (may be null), and a `type`: a NIC (`phy`,
//! `ovs`, `bridge`, `tap`, `vif`, …), or a `vlan` or `bond` built on others);
//! `networks` (each on a `link`, of a `type`: `ipv4` with `ip_address`,
//! `netmask` and `routes` (`network`, `netmask`, `gateway`), or
//! `ipv4_dhcp`, or IPv6 kinds; optional `services`); top-level `services`
//! (`type` `dns` with an `address`). Links are matched to NICs by MAC, as
//! cloud-init does.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::disk::{LSBLK_COLUMNS, parse_lsblk};
use crate::iso::Iso;
use crate::system::System;

/// The label Nova gives the drive (`CONFIG-2` on some vfat drives).
pub const LABEL: &str = "config-2";

/// network_data.json is a few KiB; more is not a config drive's.
const NETWORK_DATA_LIMIT: u64 = 1 << 20;

/// The file on the drive, from its root.
pub const NETWORK_DATA: &str = "openstack/latest/network_data.json";

#[derive(Debug, Deserialize)]
struct NetworkData {
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    networks: Vec<Network>,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
struct Link {
    id: String,
    ethernet_mac_address: Option<String>,
    mtu: Option<u32>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Network {
    link: String,
    #[serde(rename = "type")]
    kind: String,
    ip_address: Option<String>,
    netmask: Option<String>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
struct Route {
    network: String,
    netmask: String,
    gateway: String,
}

#[derive(Debug, Deserialize)]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

/// How the config drive says to configure one NIC's IPv4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv4Config {
    /// `ipv4_dhcp`: the cloud's DHCP gives the address.
    Dhcp { mac: String, mtu: Option<u32> },
    Static {
        mac: String,
        mtu: Option<u32>,
        address: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
        nameservers: Vec<IpAddr>,
    },
}

/// The IPv4 configuration of the NIC with `mac` (any case), or without one
/// of the first link that has an IPv4 network. Errors say what is missing or
/// not supported (a VLAN or bond link, no IPv4, no default route…), for the
/// caller to fall back to another network source.
pub fn ipv4_config(json: &str, mac: Option<&str>) -> Result<Ipv4Config, String> {
    let data: NetworkData = serde_json::from_str(json)
        .map_err(|error| format!("{NETWORK_DATA} is not valid: {error}"))?;
    let is_ipv4 = |network: &&Network| matches!(network.kind.as_str(), "ipv4" | "ipv4_dhcp");
    let link = match mac {
        Some(mac) => data
            .links
            .iter()
            .find(|link| {
                link.ethernet_mac_address
                    .as_deref()
                    .is_some_and(|address| address.eq_ignore_ascii_case(mac))
            })
            .ok_or_else(|| format!("{NETWORK_DATA} has no link with the MAC {mac}"))?,
        None => data
            .links
            .iter()
            .find(|link| {
                data.networks
                    .iter()
                    .filter(is_ipv4)
                    .any(|network| network.link == link.id)
            })
            .ok_or_else(|| format!("{NETWORK_DATA} has no link with an IPv4 network"))?,
    };
    if let Some(kind @ ("vlan" | "bond")) = link.kind.as_deref() {
        return Err(format!(
            "{NETWORK_DATA}: link {} is a {kind}, which xitc does not configure",
            link.id
        ));
    }
    let mac = link
        .ethernet_mac_address
        .clone()
        .ok_or_else(|| format!("{NETWORK_DATA}: link {} has no MAC", link.id))?
        .to_ascii_lowercase();
    let network = data
        .networks
        .iter()
        .filter(is_ipv4)
        .find(|network| network.link == link.id)
        .ok_or_else(|| format!("{NETWORK_DATA}: link {} has no IPv4 network", link.id))?;
    if network.kind == "ipv4_dhcp" {
        return Ok(Ipv4Config::Dhcp { mac, mtu: link.mtu });
    }
    let parse = |what: &str, text: Option<&str>| -> Result<Ipv4Addr, String> {
        let text = text.ok_or_else(|| format!("{NETWORK_DATA}: the IPv4 network has no {what}"))?;
        text.parse()
            .map_err(|_| format!("{NETWORK_DATA}: {what} {text:?} is not an IPv4 address"))
    };
    let address = parse("ip_address", network.ip_address.as_deref())?;
    let netmask = parse("netmask", network.netmask.as_deref())?;
    let bits = u32::from(netmask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(format!(
            "{NETWORK_DATA}: netmask {netmask} is not contiguous"
        ));
    }
    let default_route = network
        .routes
        .iter()
        .find(|route| route.network == "0.0.0.0" && route.netmask == "0.0.0.0")
        .ok_or_else(|| format!("{NETWORK_DATA}: the IPv4 network has no default route"))?;
    let gateway = parse("gateway", Some(&default_route.gateway))?;
    let nameservers = network
        .services
        .iter()
        .chain(&data.services)
        .filter(|service| service.kind == "dns")
        .filter_map(|service| service.address.parse().ok())
        .fold(Vec::new(), |mut all: Vec<IpAddr>, address| {
            if !all.contains(&address) {
                all.push(address);
            }
            all
        });
    Ok(Ipv4Config::Static {
        mac,
        mtu: link.mtu,
        address,
        // A contiguous mask's ones: at most 32.
        prefix: u8::try_from(bits.leading_ones()).unwrap_or(32),
        gateway,
        nameservers,
    })
}

/// The device (`/dev/sr0`) whose file system is labelled [`LABEL`], if any.
pub fn find(system: &System) -> anyhow::Result<Option<String>> {
    let listing = system
        .run("lsblk", &["-rno", LSBLK_COLUMNS])
        .context("listing block devices to find the config drive")?;
    Ok(parse_lsblk(&listing)
        .into_iter()
        .find(|device| device.label.eq_ignore_ascii_case(LABEL))
        .map(|device| format!("/dev/{}", device.name)))
}

/// [`NETWORK_DATA`] from the drive at `device` (iso9660 or vfat), read
/// without mounting it; `None` when the drive has no such file (Nova before
/// 2015).
pub fn read_network_data(system: &System, device: &str) -> anyhow::Result<Option<String>> {
    let path = system.path(device);
    if is_iso9660(&path)? {
        let mut iso = Iso::open(&path)?;
        if let Some(entry) = iso.find(NETWORK_DATA)? {
            anyhow::ensure!(
                entry.length <= NETWORK_DATA_LIMIT,
                "{device}: {NETWORK_DATA} claims {} bytes, more than a config drive holds",
                entry.length
            );
        }
        return iso.read_text(NETWORK_DATA);
    }
    let file = std::fs::File::open(&path).with_context(|| format!("opening {device}"))?;
    let fs = fatfs::FileSystem::new(DriveReader::new(file), fatfs::FsOptions::new())
        .with_context(|| format!("{device} (labelled {LABEL}) is neither iso9660 nor vfat"))?;
    let file = match fs.root_dir().open_file(NETWORK_DATA) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("{device}: {NETWORK_DATA}")),
    };
    let mut bytes = Vec::new();
    file.take(NETWORK_DATA_LIMIT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {NETWORK_DATA} from {device}"))?;
    anyhow::ensure!(
        bytes.len() as u64 <= NETWORK_DATA_LIMIT,
        "{device}: {NETWORK_DATA} is larger than a config drive's (over 1 MiB)"
    );
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The IPv4 configuration the config drive gives the NIC with `mac`, and
/// the drive's device; `None` when there is no drive, or it has no
/// [`NETWORK_DATA`]. An error when the drive cannot be read or does not
/// describe the NIC in a way xitc can configure.
pub fn for_nic(system: &System, mac: &str) -> anyhow::Result<Option<(String, Ipv4Config)>> {
    let Some(device) = find(system)? else {
        return Ok(None);
    };
    let Some(json) = read_network_data(system, &device)? else {
        return Ok(None);
    };
    let config = ipv4_config(&json, Some(mac))
        .map_err(|problem| anyhow::anyhow!("the config drive {device}: {problem}"))?;
    Ok(Some((device, config)))
}

impl Ipv4Config {
    /// One line for the log and `--check`.
    pub fn describe(&self) -> String {
        match self {
            Ipv4Config::Dhcp { mac, .. } => format!("DHCP on {mac}"),
            Ipv4Config::Static {
                mac,
                address,
                prefix,
                gateway,
                nameservers,
                ..
            } => format!(
                "{address}/{prefix} via {gateway} on {mac}, name servers {}",
                nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}

/// An ISO 9660 volume descriptor at sector 16 (`CD001`).
fn is_iso9660(path: &Path) -> anyhow::Result<bool> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 5];
    file.seek(SeekFrom::Start(16 * 2048 + 1))?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"CD001"),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// What `fatfs` reads a drive through. It asks for `Write`, but every write
/// is refused, so reading a drive can never change it (the file under it is
/// opened read-only as well). And it reads at most [`READ_CALLS_LIMIT`]
/// times: fatfs follows a directory's cluster chain in the FAT until it
/// ends, so a damaged FAT whose chain loops would make it read for ever (a
/// test shows it); with the limit that is an error naming the damage.
#[derive(Debug)]
pub struct DriveReader<T> {
    inner: T,
    reads_left: u32,
}

/// Reading network_data.json from a real drive takes about 170 reads (the
/// boot sector, FAT entries, three directories' entries, the file; a 1 MiB
/// file a few thousand): a margin of hundreds, and a loop stops within a
/// second.
pub const READ_CALLS_LIMIT: u32 = 100_000;

impl<T> DriveReader<T> {
    pub fn new(inner: T) -> Self {
        DriveReader {
            inner,
            reads_left: READ_CALLS_LIMIT,
        }
    }
}

impl<T: Read> Read for DriveReader<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.reads_left = self.reads_left.checked_sub(1).ok_or_else(|| {
            io::Error::other(format!(
                "over {READ_CALLS_LIMIT} reads: the file system is damaged (a cluster chain loops)"
            ))
        })?;
        self.inner.read(buffer)
    }
}

impl<T: Seek> Seek for DriveReader<T> {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}

impl<T> Write for DriveReader<T> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the config drive is read read-only",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as Nova writes it for a Neutron port with a fixed address.
    const STATIC: &str = r#"{
        "links": [
            {"id": "tap1a2b3c4d-5e", "vif_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
             "type": "ovs", "mtu": 1450, "ethernet_mac_address": "FA:16:3E:12:34:56"}
        ],
        "networks": [
            {"id": "network0", "type": "ipv4", "link": "tap1a2b3c4d-5e",
             "ip_address": "203.0.113.7", "netmask": "255.255.255.0",
             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "203.0.113.1"},
                        {"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "203.0.113.254"}],
             "network_id": "9f8e7d6c-5b4a-4392-8180-7f6e5d4c3b2a", "services": []},
            {"id": "network1", "type": "ipv6", "link": "tap1a2b3c4d-5e",
             "ip_address": "2001:db8::7", "netmask": "ffff:ffff:ffff:ffff::",
             "routes": [], "network_id": "9f8e7d6c-5b4a-4392-8180-7f6e5d4c3b2a"}
        ],
        "services": [{"type": "dns", "address": "203.0.113.53"},
                     {"type": "dns", "address": "2001:db8::53"}]
    }"#;

    #[test]
    fn a_static_network_gives_address_gateway_and_name_servers() {
        let expected = Ipv4Config::Static {
            mac: "fa:16:3e:12:34:56".into(),
            mtu: Some(1450),
            address: "203.0.113.7".parse().unwrap(),
            prefix: 24,
            gateway: "203.0.113.1".parse().unwrap(),
            nameservers: vec![
                "203.0.113.53".parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
            ],
        };
        assert_eq!(
            ipv4_config(STATIC, Some("fa:16:3e:12:34:56")),
            Ok(expected.clone())
        );
        assert_eq!(ipv4_config(STATIC, None), Ok(expected));
    }

    #[test]
    fn dhcp_is_said_as_such() {
        let json = r#"{"links": [{"id": "tap0", "type": "phy", "mtu": null,
            "ethernet_mac_address": "fa:16:3e:99:59:c6"}],
            "networks": [{"id": "network0", "type": "ipv4_dhcp", "link": "tap0"}],
            "services": []}"#;
        assert_eq!(
            ipv4_config(json, Some("FA:16:3E:99:59:C6")),
            Ok(Ipv4Config::Dhcp {
                mac: "fa:16:3e:99:59:c6".into(),
                mtu: None
            })
        );
    }

    #[test]
    fn what_cannot_be_used_is_said_not_guessed() {
        for (json, mac, says) in [
            ("{", None, "is not valid"),
            (
                STATIC,
                Some("fa:16:3e:00:00:00"),
                "no link with the MAC fa:16:3e:00:00:00",
            ),
            (
                r#"{"links": [], "networks": []}"#,
                None,
                "no link with an IPv4 network",
            ),
            (
                r#"{"links": [{"id": "v", "type": "vlan", "ethernet_mac_address": "aa:bb:cc:dd:ee:ff"}],
                    "networks": [{"link": "v", "type": "ipv4_dhcp"}]}"#,
                None,
                "link v is a vlan",
            ),
            (
                r#"{"links": [{"id": "l", "ethernet_mac_address": "aa:bb:cc:dd:ee:ff"}],
                    "networks": [{"link": "l", "type": "ipv6_dhcp"}]}"#,
                Some("aa:bb:cc:dd:ee:ff"),
                "link l has no IPv4 network",
            ),
            (
                r#"{"links": [{"id": "l", "ethernet_mac_address": "aa:bb:cc:dd:ee:ff"}],
                    "networks": [{"link": "l", "type": "ipv4", "ip_address": "10.0.0.5",
                                  "netmask": "255.255.255.0", "routes": []}]}"#,
                None,
                "no default route",
            ),
            (
                r#"{"links": [{"id": "l", "ethernet_mac_address": "aa:bb:cc:dd:ee:ff"}],
                    "networks": [{"link": "l", "type": "ipv4", "ip_address": "10.0.0.5",
                                  "netmask": "255.0.255.0", "routes": []}]}"#,
                None,
                "not contiguous",
            ),
            (
                r#"{"links": [{"id": "l", "ethernet_mac_address": "aa:bb:cc:dd:ee:ff"}],
                    "networks": [{"link": "l", "type": "ipv4", "netmask": "255.255.255.0"}]}"#,
                None,
                "has no ip_address",
            ),
        ] {
            let error = ipv4_config(json, mac).unwrap_err();
            assert!(error.contains(says), "{says:?} not in {error}");
        }
    }
}
