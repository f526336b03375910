//! The appliance's network configuration, from the cloud's settings: eth0 on
//! xapi's host-internal network (DHCP), eth1 the cloud's address (static, or
//! DHCP where the cloud's DHCP gives it), eth2 the management VLAN where the
//! appliance is dom0's gateway. ifupdown's interfaces file, or netplan where
//! the appliance has it.

use std::fmt::Write as _;

use crate::settings::{APPLIANCE_ADDRESS, ApplianceNetwork, CloudSettings, MANAGEMENT_NETMASK};

/// The appliance's `/etc/network/interfaces` (ifupdown): DHCP on eth0 (the
/// host-internal network, where dom0 reaches it), the cloud's settings on eth1
/// (the VIF with the cloud's MAC), 192.168.33.1/24 on eth2 (the management
/// VLAN, shared with dom0).
pub fn appliance_interfaces(network: &ApplianceNetwork) -> String {
    let mut text = "# Written by xitc-convert on every XenServer boot from the cloud's settings;\n\
         # edits here are lost.\n\
         auto lo\niface lo inet loopback\n\n\
         auto eth0\niface eth0 inet dhcp\n\n"
        .to_owned();
    let settings = match network {
        ApplianceNetwork::Static(settings) => settings,
        ApplianceNetwork::Dhcp { .. } => {
            text.push_str("auto eth1\niface eth1 inet dhcp\n");
            return with_management_vlan(text);
        }
    };
    let _ = write!(
        text,
        "auto eth1\niface eth1 inet static\n    address {}\n    netmask {}\n    gateway {}\n",
        settings.address, settings.netmask, settings.gateway
    );
    if !settings.nameservers.is_empty() {
        let servers: Vec<String> = settings
            .nameservers
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(text, "    dns-nameservers {}", servers.join(" "));
    }
    with_management_vlan(text)
}

/// eth2, the appliance's side of the management VLAN.
fn with_management_vlan(mut text: String) -> String {
    let (address, netmask) = (APPLIANCE_ADDRESS, MANAGEMENT_NETMASK);
    let _ = write!(
        text,
        "\nauto eth2\niface eth2 inet static\n    address {address}\n    netmask {netmask}\n"
    );
    text
}

#[derive(serde::Serialize)]
struct Netplan {
    network: NetplanNetwork,
}

#[derive(serde::Serialize)]
struct NetplanNetwork {
    version: u8,
    ethernets: std::collections::BTreeMap<&'static str, NetplanEthernet>,
}

#[derive(serde::Serialize, Default)]
struct NetplanEthernet {
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp4: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<NetplanRoute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nameservers: Option<NetplanNameservers>,
}

#[derive(serde::Serialize)]
struct NetplanRoute {
    to: &'static str,
    via: String,
}

#[derive(serde::Serialize)]
struct NetplanNameservers {
    addresses: Vec<String>,
}

/// The same as [`appliance_interfaces`] for an appliance with netplan. The
/// default route is written as `to: 0.0.0.0/0`, which every netplan reads
/// (`to: default` and `gateway4` are not understood by all of them).
pub fn appliance_netplan(network: &ApplianceNetwork) -> anyhow::Result<String> {
    let mut ethernets = std::collections::BTreeMap::new();
    ethernets.insert(
        "eth0",
        NetplanEthernet {
            dhcp4: Some(true),
            ..NetplanEthernet::default()
        },
    );
    ethernets.insert("eth1", netplan_cloud_nic(network));
    ethernets.insert(
        "eth2",
        NetplanEthernet {
            dhcp4: Some(false),
            addresses: vec![format!("{}/24", APPLIANCE_ADDRESS)],
            ..NetplanEthernet::default()
        },
    );
    let yaml = serde_yaml_ng::to_string(&Netplan {
        network: NetplanNetwork {
            version: 2,
            ethernets,
        },
    })
    // Never an empty file in its place: the appliance would lose its network.
    .map_err(|error| anyhow::anyhow!("rendering the appliance's netplan: {error}"))?;
    Ok(format!(
        "# Written by xitc-convert on every XenServer boot from the cloud's settings;\n\
         # edits here are lost.\n{yaml}"
    ))
}

fn netplan_cloud_nic(network: &ApplianceNetwork) -> NetplanEthernet {
    let settings: &CloudSettings = match network {
        ApplianceNetwork::Static(settings) => settings,
        ApplianceNetwork::Dhcp { .. } => {
            return NetplanEthernet {
                dhcp4: Some(true),
                ..NetplanEthernet::default()
            };
        }
    };
    NetplanEthernet {
        dhcp4: Some(false),
        addresses: vec![format!("{}/{}", settings.address, settings.prefix)],
        routes: vec![NetplanRoute {
            to: "0.0.0.0/0",
            via: settings.gateway.to_string(),
        }],
        nameservers: (!settings.nameservers.is_empty()).then(|| NetplanNameservers {
            addresses: settings
                .nameservers
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(nameservers: &[&str]) -> ApplianceNetwork {
        ApplianceNetwork::Static(CloudSettings {
            version: 1,
            interface: "ens3".into(),
            address: "203.0.113.7".parse().unwrap(),
            prefix: 26,
            netmask: "255.255.255.192".parse().unwrap(),
            gateway: "203.0.113.1".parse().unwrap(),
            mac: "bc:76:4e:20:1a:2b".into(),
            nameservers: nameservers.iter().map(|s| s.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn dhcp_on_the_cloud_nic_in_both_formats() {
        let dhcp = ApplianceNetwork::Dhcp {
            mac: "bc:76:4e:20:1a:2b".into(),
        };
        let text = appliance_interfaces(&dhcp);
        assert!(text.contains("auto eth1\niface eth1 inet dhcp\n"), "{text}");
        assert!(!text.contains("gateway"), "{text}");
        assert!(
            text.ends_with(
                "iface eth2 inet static\n    address 192.168.33.1\n    netmask 255.255.255.0\n"
            ),
            "{text}"
        );
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(&appliance_netplan(&dhcp).unwrap()).unwrap();
        let eth1 = &yaml["network"]["ethernets"]["eth1"];
        assert_eq!(eth1["dhcp4"], true);
        assert!(
            eth1.get("addresses").is_none() && eth1.get("routes").is_none(),
            "{eth1}"
        );
        assert_eq!(
            yaml["network"]["ethernets"]["eth2"]["addresses"][0],
            "192.168.33.1/24"
        );
    }

    #[test]
    fn ifupdown_config_puts_the_cloud_on_eth1_and_the_vlan_on_eth2() {
        let text = appliance_interfaces(&settings(&["203.0.113.53", "2001:db8::53"]));
        assert!(text.contains("auto eth0\niface eth0 inet dhcp\n"), "{text}");
        assert!(
            text.contains(
                "iface eth1 inet static\n    address 203.0.113.7\n    netmask 255.255.255.192\n    \
                 gateway 203.0.113.1\n    dns-nameservers 203.0.113.53 2001:db8::53\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "iface eth2 inet static\n    address 192.168.33.1\n    netmask 255.255.255.0\n"
            ),
            "{text}"
        );
        assert!(!appliance_interfaces(&settings(&[])).contains("dns-nameservers"));
    }

    #[test]
    fn netplan_config_reads_back_as_the_same_settings() {
        let text = appliance_netplan(&settings(&["203.0.113.53"])).unwrap();
        let yaml: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let ethernets = &yaml["network"]["ethernets"];
        assert_eq!(yaml["network"]["version"], 2);
        assert_eq!(ethernets["eth0"]["dhcp4"], true);
        assert_eq!(ethernets["eth1"]["addresses"][0], "203.0.113.7/26");
        assert_eq!(ethernets["eth1"]["routes"][0]["to"], "0.0.0.0/0");
        assert_eq!(ethernets["eth1"]["routes"][0]["via"], "203.0.113.1");
        assert_eq!(
            ethernets["eth1"]["nameservers"]["addresses"][0],
            "203.0.113.53"
        );
        assert_eq!(ethernets["eth2"]["addresses"][0], "192.168.33.1/24");
        let without = appliance_netplan(&settings(&[])).unwrap();
        let yaml: serde_json::Value = serde_yaml_ng::from_str(&without).unwrap();
        assert!(
            yaml["network"]["ethernets"]["eth1"]
                .get("nameservers")
                .is_none()
        );
    }
}
