//! Steps both dom0 states run (XENSERVER_FIRSTBOOT and every later XENSERVER
//! boot): wait for xapi, give dom0 the networking of this boot, rewrite the
//! interfaces on XenServer 6.x, and make Ubuntu the next boot (the bounce that
//! captures the cloud's settings, README "Snapshots").

use anyhow::Context as _;
use xitc_common::poll::SystemClock;

use crate::bootloader;
use crate::cloud_network;
use crate::settings::{APPLIANCE_ADDRESS, DOM0_ADDRESS, MANAGEMENT_NETMASK, MANAGEMENT_NETWORK};
use crate::waits;
use crate::work::Work;
use crate::xe::Xe;

pub fn wait_xapi(work: &mut Work<'_>) -> anyhow::Result<()> {
    waits::xapi_ready(
        work.system,
        &SystemClock,
        work.limits.wait(work.limits.xapi),
    )
}

/// Forgets dom0's networking and sets it up again for this boot's cloud
/// network: the NIC introduced by this boot's MAC (saved from Ubuntu, or
/// dom0's own where the config drive or DHCP is the source), no address on it
/// (the appliance takes the cloud's), and dom0 on VLAN 100 with 192.168.33.2/24
/// as its management interface. Re-running it ends the same: the management
/// network is reused, VLANs and PIFs are recreated.
pub fn forget_networking(work: &mut Work<'_>) -> anyhow::Result<()> {
    let network = cloud_network::for_appliance(work.system, work.config)?;
    work.log.line(&format!(
        "applying the cloud's network settings ({}): {}",
        work.config.network.name(),
        network.describe()
    ));
    let xe = Xe::new(work.system);
    xe.call(&["host-management-disable"])?;
    for vlan in xe.list(&["vlan-list"])? {
        xe.call(&["vlan-destroy", &format!("uuid={vlan}")])?;
    }
    for pif in xe.list(&["pif-list"])? {
        xe.call(&["pif-forget", &format!("uuid={pif}")])?;
    }
    let nic = format!("device={}", work.config.installer_nic);
    let pif = xe.introduce_pif(&work.config.installer_nic, network.mac())?;
    let label = format!("name-label={MANAGEMENT_NETWORK}");
    let network = match xe.list(&["network-list", &label])?.into_iter().next() {
        Some(existing) => existing,
        None => xe.call(&[
            "network-create",
            &label,
            "name-description=dom0 and the appliance (xitc-convert)",
        ])?,
    };
    xe.call(&[
        "vlan-create",
        "vlan=100",
        &format!("pif-uuid={pif}"),
        &format!("network-uuid={network}"),
    ])?;
    let vlan_pif = xe
        .list(&["pif-list", "VLAN=100", &nic])?
        .into_iter()
        .next()
        .context("the VLAN 100 PIF did not appear")?;
    xe.call(&[
        "pif-reconfigure-ip",
        &format!("uuid={pif}"),
        "mode=static",
        "IP=0.0.0.0",
        "netmask=0.0.0.0",
    ])?;
    xe.call(&[
        "pif-reconfigure-ip",
        &format!("uuid={vlan_pif}"),
        "mode=static",
        &format!("IP={DOM0_ADDRESS}"),
        &format!("netmask={MANAGEMENT_NETMASK}"),
        &format!("gateway={APPLIANCE_ADDRESS}"),
        &format!("DNS={APPLIANCE_ADDRESS}"),
    ])?;
    xe.call(&[
        "host-management-reconfigure",
        &format!("pif-uuid={vlan_pif}"),
    ])
    .map(drop)
}

/// Where XenServer 6.x keeps interface-reconfigure (not in PATH).
const INTERFACE_RECONFIGURE: &str = "/opt/xensource/libexec/interface-reconfigure";

/// The `interface-reconfigure` step: `interface-reconfigure rewrite`, which
/// XenServer 6.x needs after PIFs changed; later versions have no such program
/// (xcp-networkd does it).
pub fn interface_reconfigure(work: &mut Work<'_>) -> anyhow::Result<()> {
    let program = match work.system.find_program("interface-reconfigure") {
        Some(found) => found,
        None if work.system.exists(INTERFACE_RECONFIGURE) => {
            work.system.path(INTERFACE_RECONFIGURE)
        }
        None => {
            work.log
                .line("no interface-reconfigure here (XenServer 7+): nothing to rewrite");
            return Ok(());
        }
    };
    let program = program
        .to_str()
        .context("interface-reconfigure's path is not UTF-8")?;
    work.system.run(program, &["rewrite"]).map(drop)
}

pub fn boot_ubuntu_next(work: &mut Work<'_>) -> anyhow::Result<()> {
    bootloader::detect(work.system, "/")?.set_default(work.system, true)?;
    work.system.run("sync", &[]).map(drop)
}
