//! The direct mode's dom0 steps (both dom0 states run them, on every boot):
//! no appliance, dom0's own xapi at the cloud's address.
//!
//! - `clear-stamp`: the stamp may sit on a persistent path
//!   (`XITC_STAMP_PATH`); a stamp from the last boot must not say "ready"
//!   before this boot's checks.
//! - `management`: dom0's management interface on the cloud NIC, as this
//!   boot finds it. A snapshot boots with a new MAC (and often a new address):
//!   xapi keeps the PIF of the old one, so when the management PIF's MAC is
//!   not the NIC's, the PIFs of the NIC's device are forgotten and one is
//!   introduced for the new MAC (xapi refuses to forget the management PIF,
//!   so management is disabled first). Then its IP configuration is set from
//!   the network source (DHCP, or the config drive read again) unless it is
//!   already so, and management moved onto it. These are the `xe` calls that
//!   XCP-ng 8.3 and XenServer 8 both have; `xe-reset-networking`, the
//!   toolstack's own reset, would need another reboot.
//! - `wait-ready`: "ready" for a client is xapi's start-up cookie (the
//!   `wait-xapi` step before), `xe host-list` answering, and a default SR
//!   (the installer's first boot creates the local SR after xapi starts).
//! - `stamp` (after the state is recorded): the stamp in dom0 itself, which
//!   `xitc-wait-until-done` polls at the cloud address.

use anyhow::Context as _;
use xitc_common::poll::{Schedule, SystemClock, poll_until};

use crate::cloud_network;
use crate::config::NetworkSource;
use crate::config_drive::Ipv4Config;
use crate::network::netmask;
use crate::work::Work;
use crate::xe::Xe;

pub fn clear_stamp(work: &mut Work<'_>) -> anyhow::Result<()> {
    let stamp = &work.config.stamp_path;
    if work.system.exists(stamp) {
        work.system
            .remove_file(stamp)
            .with_context(|| format!("removing the last boot's stamp {stamp}"))?;
        work.log.line(&format!(
            "removed the stamp {stamp} of an earlier run: it says ready again only after this \
             boot's checks"
        ));
    }
    Ok(())
}

/// The IP configuration of a PIF as xapi reports it, compared with what the
/// network source asks for.
#[derive(Debug, PartialEq, Eq)]
struct IpSettings {
    mode: String,
    address: String,
    netmask: String,
    gateway: String,
    dns: String,
}

impl IpSettings {
    fn wanted(config: &Ipv4Config) -> Self {
        match config {
            Ipv4Config::Dhcp { .. } => IpSettings {
                mode: "DHCP".to_owned(),
                address: String::new(),
                netmask: String::new(),
                gateway: String::new(),
                dns: String::new(),
            },
            Ipv4Config::Static {
                address,
                prefix,
                gateway,
                nameservers,
                ..
            } => IpSettings {
                mode: "Static".to_owned(),
                address: address.to_string(),
                netmask: netmask(*prefix).to_string(),
                gateway: gateway.to_string(),
                dns: nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            },
        }
    }

    fn of(xe: Xe<'_>, pif: &str) -> anyhow::Result<Self> {
        let get = |name: &str| {
            xe.call(&[
                "pif-param-get",
                &format!("uuid={pif}"),
                &format!("param-name={name}"),
            ])
        };
        let mode = get("IP-configuration-mode")?;
        // A DHCP PIF's address fields are the lease's: not ours to compare.
        if mode == "DHCP" {
            return Ok(IpSettings::wanted(&Ipv4Config::Dhcp {
                mac: String::new(),
                mtu: None,
            }));
        }
        Ok(IpSettings {
            mode,
            address: get("IP")?,
            netmask: get("netmask")?,
            gateway: get("gateway")?,
            dns: get("DNS")?,
        })
    }
}

pub fn management(work: &mut Work<'_>) -> anyhow::Result<()> {
    let nic = work.config.installer_nic.clone();
    let mac = cloud_network::nic_mac(work.system, &nic)?;
    let wanted = match work.config.network {
        NetworkSource::ConfigDrive => {
            let (device, found) = cloud_network::from_drive(work.system, &mac)?;
            work.log.line(&format!(
                "the config drive {device} says: {}",
                found.describe()
            ));
            found
        }
        _ => Ipv4Config::Dhcp {
            mac: mac.clone(),
            mtu: None,
        },
    };
    let xe = Xe::new(work.system);
    let device = format!("device={nic}");
    let management = xe.list(&["pif-list", "management=true"])?;
    let current = match management.as_slice() {
        [pif] => Some(pif.clone()),
        _ => None,
    };
    let current_mac = match &current {
        Some(pif) => Some(
            xe.call(&["pif-param-get", &format!("uuid={pif}"), "param-name=MAC"])?
                .to_ascii_lowercase(),
        ),
        None => None,
    };
    let pif = match (current, current_mac) {
        (Some(pif), Some(pif_mac)) if pif_mac == mac => pif,
        (_, old_mac) => {
            work.log.line(&format!(
                "the management interface is not on {nic} with this boot's MAC {mac} (it has \
                 {}): introducing {nic} again",
                old_mac.as_deref().unwrap_or("no management PIF")
            ));
            xe.call(&["host-management-disable"])?;
            for old in xe.list(&["pif-list", &device])? {
                xe.call(&["pif-forget", &format!("uuid={old}")])?;
            }
            xe.introduce_pif(&nic, &mac)?
        }
    };
    let settings = IpSettings::wanted(&wanted);
    if IpSettings::of(xe, &pif)? == settings {
        work.log.line(&format!(
            "the management interface {nic} is already configured so: {}",
            wanted.describe()
        ));
    } else {
        let uuid = format!("uuid={pif}");
        let mut call = vec!["pif-reconfigure-ip".to_owned(), uuid];
        match settings.mode.as_str() {
            "DHCP" => call.push("mode=dhcp".to_owned()),
            _ => call.extend([
                "mode=static".to_owned(),
                format!("IP={}", settings.address),
                format!("netmask={}", settings.netmask),
                format!("gateway={}", settings.gateway),
                format!("DNS={}", settings.dns),
            ]),
        }
        xe.call(&call.iter().map(String::as_str).collect::<Vec<_>>())?;
        work.log.line(&format!(
            "the management interface {nic} set to {}",
            wanted.describe()
        ));
    }
    if xe.list(&["pif-list", "management=true"])? != [pif.clone()] {
        xe.call(&["host-management-reconfigure", &format!("pif-uuid={pif}")])?;
    }
    Ok(())
}

pub fn wait_ready(work: &mut Work<'_>) -> anyhow::Result<()> {
    let xe = Xe::new(work.system);
    let wait = work.limits.wait(work.limits.xapi);
    let mut last = String::from("xe was not asked yet");
    poll_until(
        &SystemClock,
        Schedule::new(wait.limit, wait.interval),
        |_| {
            match xe.list(&["host-list"]) {
                Ok(hosts) if !hosts.is_empty() => {}
                Ok(_) => {
                    "xe host-list names no host".clone_into(&mut last);
                    return Ok(None);
                }
                Err(error) => {
                    last = format!("xe host-list: {error:#}");
                    return Ok(None);
                }
            }
            let default = xe
                .call(&["pool-list", "params=default-SR", "--minimal"])
                .unwrap_or_default();
            let found = !default.is_empty()
                && !default.starts_with('<')
                && xe
                    .list(&["sr-list", &format!("uuid={default}")])
                    .is_ok_and(|srs| !srs.is_empty());
            if !found {
                last = format!("the pool has no default SR yet ({default:?})");
            }
            Ok(found.then_some(()))
        },
    )
    .with_context(|| {
        format!(
            "xapi did not become ready within {}s: {last}; see /var/log/xensource.log",
            wait.limit.as_secs()
        )
    })?;
    work.log
        .line("xapi is ready: xe host-list answers, the pool has a default SR");
    Ok(())
}

pub fn stamp(work: &mut Work<'_>) -> anyhow::Result<()> {
    let stamp = work.config.stamp_path.clone();
    if let Some(parent) = std::path::Path::new(&stamp).parent() {
        work.system.create_dir_all(parent)?;
    }
    work.system.write_atomic(&stamp, b"", 0o644)?;
    work.log.line(&format!(
        "stamp {stamp} touched in dom0: xapi is ready at the cloud's address"
    ));
    Ok(())
}
