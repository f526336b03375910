//! The appliance VM, from dom0 (XENSERVER_FIRSTBOOT and XENSERVER): import it,
//! give it VCPUs and its three VIFs, start it, hand it the cloud's network
//! settings and the user's keys, and touch the stamp on it.
//!
//! The VIFs (as in 2014): device 0 on xapi's host-internal management network
//! (dom0 reaches the appliance there, by the address the VM reports in its
//! `networks` parameter); device 1 on the cloud NIC's network with the cloud's
//! MAC, so the appliance answers on the node's public address; device 2 on the
//! management VLAN, where the appliance is 192.168.33.1 and dom0 .2.
//!
//! dom0 logs in to the appliance as its user (`domzero` by default) with a
//! key of its own ([`crate::appliance_ssh`]). The appliance learns that key
//! once, from xenstore (`/local/domain/<domid>/authorized_keys/<user>`, readable
//! by that domain only): the appliances built for this copy keys from there
//! with a cron job, which is emptied once the key works so nothing else can
//! be slipped in later. [`KEYED`] records which VM has the key, so the
//! handshake runs once per appliance, also when a run is cut short half-way.
//!
//! ssh-keygen gets its file paths through the sandbox (it is the real program
//! in the tests too); the toolstack programs (`xe`, `xenstore-*`) get node
//! paths, as on the node.

use anyhow::Context as _;
use xitc_common::poll::{Schedule, SystemClock, poll_until};

use crate::appliance_ssh::{KEY, Shell, key_of, keygen_args, with_key_once};
use crate::cloud_network;
use crate::render;
use crate::settings::MANAGEMENT_NETWORK;
use crate::work::Work;
use crate::xe::{Xe, vm_ipv4};

/// The uuid of the VM that accepted [`KEY`].
pub const KEYED: &str = "/root/.ssh/xitc-appliance-keyed";
/// The uuid of a VM imported but maybe not yet renamed (a run cut short between
/// `vm-import` and `vm-param-set name-label`): the next run renames it rather
/// than importing a second copy.
pub const IMPORTED: &str = "/root/xitc-appliance-imported";
/// Where the appliance's network config goes when it uses ifupdown.
pub const INTERFACES: &str = "/etc/network/interfaces";
/// Where it goes when the appliance has netplan (`/etc/netplan` exists).
pub const NETPLAN: &str = "/etc/netplan/90-xitc-convert.yaml";
/// The appliance user's own key (for SSH to dom0), relative to its home.
const USER_KEY: &str = ".ssh/id_rsa";
/// The other-config key that marks xapi's host-internal management network.
const HOST_INTERNAL: &str = "other-config:is_host_internal_management_network=true";

/// The appliance VM's uuid (it must exist: the `appliance-vm` step made it).
fn appliance_uuid(work: &Work<'_>) -> anyhow::Result<String> {
    let label = &work.config.appliance_label;
    Xe::new(work.system)
        .vm_by_label(label)?
        .with_context(|| format!("no VM is named {label:?} (the appliance-vm step imports it)"))
}

/// The `stop-appliance` step: shuts the appliance down if it runs. A dom0
/// state that is run again (after a failure in a later step, or a dom0 boot
/// that did not go through Ubuntu) finds it running on the networks that
/// `forget-networking` is about to replace, and xapi refuses to destroy a
/// VLAN or forget a PIF whose network a running VM uses (VIF_IN_USE). On a
/// fresh dom0 boot the appliance is halted already, and nothing happens.
pub fn stop(work: &mut Work<'_>) -> anyhow::Result<()> {
    let xe = Xe::new(work.system);
    let Some(vm) = xe.vm_by_label(&work.config.appliance_label)? else {
        return Ok(());
    };
    shut_down_if_running(work, xe, &vm, "its networks are about to be replaced")
}

/// Whether the appliance exists and runs (the runner asks, in dom0 with state
/// UBUNTU).
pub fn is_running(work: &Work<'_>) -> anyhow::Result<bool> {
    let xe = Xe::new(work.system);
    let Some(vm) = xe.vm_by_label(&work.config.appliance_label)? else {
        return Ok(false);
    };
    Ok(xe.call(&[
        "vm-param-get",
        &format!("uuid={vm}"),
        "param-name=power-state",
    ])? == "running")
}

/// Shuts `vm` down unless it is halted (cleanly, else forced), logging why.
fn shut_down_if_running(work: &Work<'_>, xe: Xe<'_>, vm: &str, why: &str) -> anyhow::Result<()> {
    let uuid = format!("uuid={vm}");
    if xe.call(&["vm-param-get", &uuid, "param-name=power-state"])? == "halted" {
        return Ok(());
    }
    work.log
        .line(&format!("shutting the appliance down: {why}"));
    if xe.call(&["vm-shutdown", &uuid]).is_err() {
        xe.call(&["vm-shutdown", &uuid, "force=true"])?;
    }
    Ok(())
}

/// The `appliance-vm` step: import unless a VM has the name-label, halt it if
/// it runs (VIFs and VCPUs change only on a halted VM), VCPUs, VIFs, start,
/// and wait until it reports an address on device 0.
pub fn vm(work: &mut Work<'_>) -> anyhow::Result<()> {
    let network = cloud_network::for_appliance(work.system, work.config)?;
    let xe = Xe::new(work.system);
    let vm = match xe.vm_by_label(&work.config.appliance_label)? {
        Some(vm) => vm,
        None => import(work)?,
    };
    let uuid = format!("uuid={vm}");
    shut_down_if_running(work, xe, &vm, "VIFs and VCPUs change only on a halted VM")?;
    let vcpus = match work.config.appliance_vcpus {
        Some(count) => count,
        None => host_cpus(xe)?,
    };
    let current_max: u32 = parse_number(
        &xe.call(&["vm-param-get", &uuid, "param-name=VCPUs-max"])?,
        "VCPUs-max",
    )?;
    xe.set_vcpus(&vm, vcpus, current_max)?;
    replace_vifs(work, xe, &vm, network.mac())?;
    xe.call(&["vm-start", &uuid])?;
    let address = wait_for_address(work, &vm)?;
    work.log.line(&format!(
        "appliance {:?} runs with {vcpus} VCPUs; dom0 reaches it at {address}",
        work.config.appliance_label
    ));
    Ok(())
}

fn parse_number(text: &str, what: &str) -> anyhow::Result<u32> {
    text.trim()
        .parse()
        .with_context(|| format!("xe gave {what} {text:?}, not a number"))
}

fn host_cpus(xe: Xe<'_>) -> anyhow::Result<u32> {
    let host = xe
        .list(&["host-list"])?
        .into_iter()
        .next()
        .context("xe host-list names no host")?;
    parse_number(
        &xe.call(&[
            "host-param-get",
            &format!("uuid={host}"),
            "param-name=cpu_info",
            "param-key=cpu_count",
        ])?,
        "cpu_count",
    )
}

/// Imports the downloaded XVA and names it; see [`IMPORTED`].
fn import(work: &Work<'_>) -> anyhow::Result<String> {
    let xe = Xe::new(work.system);
    let half_done = work
        .system
        .read_if_exists(IMPORTED)?
        .map(|text| text.trim().to_owned())
        .filter(|uuid| {
            !uuid.is_empty()
                && xe
                    .list(&["vm-list", &format!("uuid={uuid}")])
                    .is_ok_and(|found| !found.is_empty())
        });
    let vm = if let Some(vm) = half_done {
        work.log
            .line(&format!("naming the appliance imported before ({vm})"));
        vm
    } else {
        let xva = work
            .files
            .appliance_xva
            .to_str()
            .context("the install dir is not UTF-8")?;
        work.log
            .line(&format!("importing the appliance from {xva}"));
        let vm = xe.call(&["vm-import", &format!("filename={xva}")])?;
        anyhow::ensure!(
            !vm.is_empty() && !vm.contains(','),
            "xe vm-import gave {vm:?}, not one uuid"
        );
        work.system
            .write_atomic(IMPORTED, format!("{vm}\n").as_bytes(), 0o644)?;
        vm
    };
    xe.call(&[
        "vm-param-set",
        &format!("uuid={vm}"),
        &format!("name-label={}", work.config.appliance_label),
    ])?;
    work.system.remove_file(IMPORTED)?;
    Ok(vm)
}

fn replace_vifs(work: &Work<'_>, xe: Xe<'_>, vm: &str, cloud_mac: &str) -> anyhow::Result<()> {
    let internal = xe
        .list(&["network-list", HOST_INTERNAL])?
        .into_iter()
        .next()
        .context("xapi has no host-internal management network")?;
    let nic = format!("device={}", work.config.installer_nic);
    let pif = xe
        .list(&["pif-list", &nic, "VLAN=-1"])?
        .into_iter()
        .next()
        .with_context(|| {
            format!(
                "no PIF for {} (forget-networking makes it)",
                work.config.installer_nic
            )
        })?;
    let cloud = xe.call(&[
        "pif-param-get",
        &format!("uuid={pif}"),
        "param-name=network-uuid",
    ])?;
    let management = xe
        .list(&["network-list", &format!("name-label={MANAGEMENT_NETWORK}")])?
        .into_iter()
        .next()
        .context("the management network is missing (forget-networking makes it)")?;
    for vif in xe.list(&["vif-list", &format!("vm-uuid={vm}")])? {
        xe.call(&["vif-destroy", &format!("uuid={vif}")])?;
    }
    let vm = format!("vm-uuid={vm}");
    xe.call(&[
        "vif-create",
        &vm,
        &format!("network-uuid={internal}"),
        "device=0",
    ])?;
    xe.call(&[
        "vif-create",
        &vm,
        &format!("network-uuid={cloud}"),
        &format!("mac={cloud_mac}"),
        "device=1",
    ])?;
    xe.call(&[
        "vif-create",
        &vm,
        &format!("network-uuid={management}"),
        "device=2",
    ])
    .map(drop)
}

/// The address dom0 reaches the appliance at (device 0), once it reports one
/// ([`crate::work::Limits::appliance`] at most).
fn wait_for_address(work: &Work<'_>, vm: &str) -> anyhow::Result<String> {
    let limit = work.limits.appliance;
    let xe = Xe::new(work.system);
    poll_until(
        &SystemClock,
        Schedule::new(limit, work.limits.interval),
        |_| address_now(xe, vm),
    )
    .with_context(|| {
        format!(
            "the appliance {:?} reported no address on its device 0 within {}s \
             (xe vm-param-get uuid={vm} param-name=networks); does it have the guest tools?",
            work.config.appliance_label,
            limit.as_secs()
        )
    })
}

/// The address the appliance reports on its device 0 now, if any.
fn address_now(xe: Xe<'_>, vm: &str) -> anyhow::Result<Option<String>> {
    let networks = xe.call(&["vm-param-get", &format!("uuid={vm}"), "param-name=networks"])?;
    Ok(vm_ipv4(&networks, 0).map(|address| address.to_string()))
}

/// Retries `attempt` until it succeeds or [`crate::work::Limits::appliance`]
/// passes. Every failed try is logged with its reason (a wait of up to 15
/// minutes must not be silent: the log is what a user reads on a stuck node),
/// and the last one is in the error.
fn retry<T>(
    work: &Work<'_>,
    what: &str,
    mut attempt: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let limit = work.limits.appliance;
    let mut last = None;
    let mut tries = 0_u32;
    poll_until(
        &SystemClock,
        Schedule::new(limit, work.limits.interval),
        |_| {
            tries += 1;
            Ok(match attempt() {
                Ok(value) => Some(value),
                Err(error) => {
                    let reason = format!("{error:#}");
                    work.log
                        .line(&format!("{what}: try {tries} failed: {reason}; retrying"));
                    last = Some(reason);
                    None
                }
            })
        },
    )
    .with_context(|| {
        format!(
            "{what} did not work within {}s; last try: {}",
            limit.as_secs(),
            last.unwrap_or_else(|| "none".into())
        )
    })
}

/// The `appliance-key` step, once per appliance (see the module comment).
pub fn key(work: &mut Work<'_>) -> anyhow::Result<()> {
    let vm = appliance_uuid(work)?;
    // A lost dom0 key (someone cleaned /root/.ssh) cannot log in any more: the
    // handshake then runs again, which works only while the appliance still
    // reads keys from xenstore; the error then says where it stopped.
    if work.system.read_if_exists(KEYED)?.as_deref().map(str::trim) == Some(vm.as_str())
        && work.system.exists(KEY)
    {
        work.log.line("the appliance has dom0's key already");
        return Ok(());
    }
    if !work.system.exists(KEY) {
        work.system.create_dir_all("/root/.ssh")?;
        let key = work.system.path(KEY);
        let key = key.to_str().context("the key path is not UTF-8")?;
        work.system
            .run("ssh-keygen", &keygen_args("dom0 (xitc-convert)", key))?;
    }
    let public = work.system.read_to_string(format!("{KEY}.pub"))?;
    let xe = Xe::new(work.system);
    let domid = xe.call(&["vm-param-get", &format!("uuid={vm}"), "param-name=dom-id"])?;
    anyhow::ensure!(
        domid.parse::<u32>().is_ok_and(|id| id > 0),
        "the appliance has dom-id {domid:?}: is it running?"
    );
    let node = format!(
        "/local/domain/{domid}/authorized_keys/{}",
        work.config.appliance_user
    );
    work.system.run("xenstore-write", &[&node, public.trim()])?;
    // Owner dom0 (n0: nobody else may write), readable by the appliance only.
    work.system
        .run("xenstore-chmod", &["-u", &node, "n0", &format!("r{domid}")])?;
    work.log.line(&format!(
        "dom0's key offered to the appliance at xenstore {node}"
    ));
    let address = wait_for_address(work, &vm)?;
    let shell = Shell::new(work.system, &work.config.appliance_user, &address);
    retry(work, "logging in to the appliance with dom0's key", || {
        shell.run(&["true"], "")
    })?;
    // The key updater's job is done: an empty crontab (idempotent, unlike
    // `crontab -r`, which fails when there is none).
    shell.run(&["crontab", "-"], "")?;
    work.system.run("xenstore-rm", &[&node])?;
    if !shell.succeeds(&["test", "-f", &format!("{USER_KEY}.pub")]) {
        let comment = format!("{}@appliance", work.config.appliance_user);
        let mut argv = vec!["ssh-keygen"];
        argv.extend(keygen_args(&comment, USER_KEY));
        shell.run(&argv, "")?;
    }
    work.system
        .write_atomic(KEYED, format!("{vm}\n").as_bytes(), 0o600)?;
    work.log.line("the appliance accepts dom0's key");
    Ok(())
}

/// The `appliance-network` step: the cloud settings and the user's keys onto
/// the appliance, its user's key into dom0 (once), then `xe vm-reboot` (not
/// `reboot` over SSH, which would cut the session).
pub fn network(work: &mut Work<'_>) -> anyhow::Result<()> {
    let network = cloud_network::for_appliance(work.system, work.config)?;
    let vm = appliance_uuid(work)?;
    let address = wait_for_address(work, &vm)?;
    let shell = Shell::new(work.system, &work.config.appliance_user, &address);
    let user_key = shell.run(&["cat", &format!("{USER_KEY}.pub")], "")?;
    anyhow::ensure!(
        key_of(&user_key).is_some(),
        "the appliance user's {USER_KEY}.pub holds no key"
    );
    let (path, text) = if shell.succeeds(&["test", "-d", "/etc/netplan"]) {
        (NETPLAN, render::appliance_netplan(&network)?)
    } else {
        (INTERFACES, render::appliance_interfaces(&network))
    };
    shell.run(&["sudo", "tee", path], &text)?;
    work.log.line(&format!(
        "appliance network ({path}): {}",
        network.describe()
    ));
    let dom0_keys = work
        .system
        .read_if_exists("/root/.ssh/authorized_keys")?
        .unwrap_or_default();
    let mut user_keys = String::new();
    for line in dom0_keys.lines() {
        if key_of(line).is_some() && key_of(line) != key_of(&user_key) {
            user_keys.push_str(line);
            user_keys.push('\n');
        }
    }
    shell.run(&["sudo", "mkdir", "-p", "-m", "0700", "/root/.ssh"], "")?;
    shell.run(&["sudo", "tee", "/root/.ssh/authorized_keys"], &user_keys)?;
    work.system.create_dir_all("/root/.ssh")?;
    work.system.write_atomic(
        "/root/.ssh/authorized_keys",
        with_key_once(&dom0_keys, &user_key).as_bytes(),
        0o600,
    )?;
    Xe::new(work.system)
        .call(&["vm-reboot", &format!("uuid={vm}")])
        .map(drop)
}

/// The `stamp` step: `sudo touch STAMP` on the appliance, retried (it is
/// rebooting) until it works or [`crate::work::Limits::appliance`] passes.
pub fn stamp(work: &mut Work<'_>) -> anyhow::Result<()> {
    let stamp = work.config.stamp_path.clone();
    let work = &*work;
    let vm = appliance_uuid(work)?;
    let xe = Xe::new(work.system);
    // One wait: each try looks at the address once (the appliance is rebooting,
    // its address comes and goes) rather than waiting for it inside the retry.
    retry(work, &format!("touching {stamp} on the appliance"), || {
        let address = address_now(xe, &vm)?
            .context("the appliance reports no address on its device 0 yet")?;
        Shell::new(work.system, &work.config.appliance_user, &address)
            .run(&["sudo", "touch", &stamp], "")
    })?;
    work.log.line(&format!(
        "stamp {stamp} touched on the appliance: the node is ready"
    ));
    Ok(())
}
