//! The network settings the cloud gave the node, captured in Ubuntu and
//! applied to the appliance from dom0: one documented, versioned
//! JSON file, `cloud-settings.json`, read by both halves.
//!
//! ```json
//! {"version": 1, "interface": "eth0", "address": "203.0.113.7", "prefix": 24,
//!  "netmask": "255.255.255.0", "gateway": "203.0.113.1",
//!  "mac": "bc:76:4e:20:1a:2b", "nameservers": ["203.0.113.53"]}
//! ```
//!
//! Nothing in it is secret; it is logged whenever captured or applied, so a
//! user can see what the appliance will get.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use anyhow::Context as _;

use crate::network::{Network, netmask};
use crate::system::System;

/// The file name, in `xsinst/` and in dom0's `/root`.
pub const FILE_NAME: &str = "cloud-settings.json";

/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The name-label of the management network xitc creates (VLAN 100).
pub const MANAGEMENT_NETWORK: &str = "xitc-management";
/// dom0's address on the management VLAN (/24, [`MANAGEMENT_NETMASK`]).
pub const DOM0_ADDRESS: &str = "192.168.33.2";
/// The appliance's address there: dom0's gateway and name server.
pub const APPLIANCE_ADDRESS: &str = "192.168.33.1";
pub const MANAGEMENT_NETMASK: &str = "255.255.255.0";

/// The cloud settings saved in Ubuntu (by the post-install script on the
/// first boot, by the UBUNTU state on later ones), as dom0 sees them.
pub fn read_in_dom0(system: &System) -> anyhow::Result<CloudSettings> {
    let path = format!("/root/{FILE_NAME}");
    CloudSettings::from_json(
        &system
            .read_to_string(&path)
            .with_context(|| format!("reading {path} (saved in Ubuntu)"))?,
    )
}

/// What the appliance's cloud NIC (its VIF with the node's MAC) gets on this
/// boot: the cloud's settings, saved by Ubuntu (the bounce) or read from the
/// config drive, or DHCP on the node's MAC, which the cloud's DHCP answers
/// as it answered Ubuntu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplianceNetwork {
    Static(CloudSettings),
    Dhcp { mac: String },
}

impl ApplianceNetwork {
    /// The node's MAC, which the appliance's cloud VIF takes.
    pub fn mac(&self) -> &str {
        match self {
            ApplianceNetwork::Static(settings) => &settings.mac,
            ApplianceNetwork::Dhcp { mac } => mac,
        }
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        match self {
            ApplianceNetwork::Static(settings) => settings.describe(),
            ApplianceNetwork::Dhcp { mac } => format!("DHCP, MAC {mac}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudSettings {
    pub version: u32,
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub netmask: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub nameservers: Vec<IpAddr>,
}

impl CloudSettings {
    pub fn from_network(network: &Network) -> Self {
        CloudSettings {
            version: VERSION,
            interface: network.interface.clone(),
            address: network.address,
            prefix: network.prefix,
            netmask: netmask(network.prefix),
            gateway: network.gateway,
            mac: network.mac.clone(),
            nameservers: network.nameservers.clone(),
        }
    }

    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let settings: CloudSettings = serde_json::from_str(text)
            .map_err(|error| anyhow::anyhow!("{FILE_NAME} is not valid: {error}"))?;
        anyhow::ensure!(
            settings.version == VERSION,
            "{FILE_NAME} has version {}, this xitc-convert reads version {VERSION}",
            settings.version
        );
        Ok(settings)
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        let servers: Vec<String> = self.nameservers.iter().map(ToString::to_string).collect();
        format!(
            "{} {}/{} via {}, MAC {}, name servers {}",
            self.interface,
            self.address,
            self.prefix,
            self.gateway,
            self.mac,
            servers.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(prefix: u8) -> Network {
        Network {
            interface: "eth0".into(),
            address: Ipv4Addr::new(203, 0, 113, 7),
            prefix,
            gateway: Ipv4Addr::new(203, 0, 113, 1),
            mac: "bc:76:4e:20:1a:2b".into(),
            nameservers: vec!["203.0.113.53".parse().unwrap()],
        }
    }

    #[test]
    fn round_trip_and_netmasks() {
        let settings = CloudSettings::from_network(&network(24));
        assert_eq!(settings.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(
            CloudSettings::from_json(&serde_json::to_string(&settings).unwrap()).unwrap(),
            settings
        );
        assert_eq!(
            CloudSettings::from_network(&network(0)).netmask,
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            CloudSettings::from_network(&network(32)).netmask,
            Ipv4Addr::BROADCAST
        );
        assert_eq!(
            settings.describe(),
            "eth0 203.0.113.7/24 via 203.0.113.1, MAC bc:76:4e:20:1a:2b, name servers 203.0.113.53"
        );
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let mut settings = CloudSettings::from_network(&network(24));
        settings.version = 2;
        assert!(
            CloudSettings::from_json(&serde_json::to_string(&settings).unwrap())
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
        assert!(CloudSettings::from_json("{").is_err());
    }
}
