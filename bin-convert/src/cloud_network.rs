//! This boot's cloud network as dom0 learns it, by the network source START
//! chose (the saved config's `network`): what Ubuntu saved in the bounce, the
//! config drive (read again on every boot: a snapshot may have moved), or
//! DHCP on the NIC's MAC of this boot.

use anyhow::Context as _;

use crate::config::{Config, NetworkSource};
use crate::config_drive::{self, Ipv4Config};
use crate::network::netmask;
use crate::settings::{self, ApplianceNetwork, CloudSettings};
use crate::system::System;

/// The MAC of the NIC `nic` on this boot (lower case); the error names the
/// NICs there are.
pub fn nic_mac(system: &System, nic: &str) -> anyhow::Result<String> {
    match system.read_to_string(format!("/sys/class/net/{nic}/address")) {
        Ok(mac) => Ok(mac.trim().to_ascii_lowercase()),
        Err(error) => {
            let mut present: Vec<String> = std::fs::read_dir(system.path("/sys/class/net"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "lo")
                .collect();
            present.sort();
            Err(anyhow::anyhow!(
                "this system has no NIC {nic} ({error}); its NICs: {}",
                if present.is_empty() {
                    "none".to_owned()
                } else {
                    present.join(", ")
                }
            ))
        }
    }
}

/// What the config drive says about the NIC with `mac`, and the drive; an
/// error when there is no drive with network data this boot.
pub fn from_drive(system: &System, mac: &str) -> anyhow::Result<(String, Ipv4Config)> {
    config_drive::for_nic(system, mac)?.with_context(|| {
        format!(
            "no drive labelled {} with {} this boot (the network source START chose); the \
             network keeps its last settings",
            config_drive::LABEL,
            config_drive::NETWORK_DATA
        )
    })
}

/// The appliance mode's network for the appliance's cloud NIC on this boot.
pub fn for_appliance(system: &System, config: &Config) -> anyhow::Result<ApplianceNetwork> {
    match config.network {
        NetworkSource::Bounce => Ok(ApplianceNetwork::Static(settings::read_in_dom0(system)?)),
        NetworkSource::Dhcp => Ok(ApplianceNetwork::Dhcp {
            mac: nic_mac(system, &config.installer_nic)?,
        }),
        NetworkSource::ConfigDrive => {
            let mac = nic_mac(system, &config.installer_nic)?;
            match from_drive(system, &mac)?.1 {
                Ipv4Config::Dhcp { mac, .. } => Ok(ApplianceNetwork::Dhcp { mac }),
                Ipv4Config::Static {
                    mac,
                    address,
                    prefix,
                    gateway,
                    nameservers,
                    ..
                } => Ok(ApplianceNetwork::Static(CloudSettings {
                    version: settings::VERSION,
                    interface: config.installer_nic.clone(),
                    address,
                    prefix,
                    netmask: netmask(prefix),
                    gateway,
                    mac,
                    nameservers,
                })),
            }
        }
        NetworkSource::Auto => anyhow::bail!(
            "the saved config's network source is still auto: START chooses one and saves it"
        ),
    }
}
