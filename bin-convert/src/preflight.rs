//! START's first step: read the live node and check, before any change, that
//! the conversion can work. Every problem is collected and reported at once
//! (exit 2), so a user fixes them in one go.
//!
//! Everything is read from the running system, not from distro files: the root
//! file system from `/proc/self/mounts`, its disk and partition from
//! `/sys/class/block`, the default route from `/proc/net/route`, the interface's
//! address from `ip -o -4 addr`, its MAC from `/sys/class/net`, name servers from
//! resolv.conf (systemd-resolved's upstream list when the stub is in use), space
//! from `df`, the disk's layout as [`crate::layout`] reads it. All through
//! [`System`], so `--root` confines it.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use xitc_common::exit;

use crate::config::Config;
use crate::config::{Mode, NetworkSource};
use crate::config_drive::{self, Ipv4Config};
use crate::disk::{parse_df, partition_of, root_mount, sfdisk_version};
use crate::installer::{self, Guests};
use crate::layout::{self, Expect, Layout};
use crate::network::{self, Network};
use crate::paths::Files;
use crate::platform::{Boot, Virtualization};
use crate::system::System;

/// What the node looks like, as later steps need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `/dev/xvda1`.
    pub root_device: String,
    /// `xvda`.
    pub disk: String,
    pub fs_type: String,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub network: Network,
    pub layout: Layout,
    /// Whether the CPU shows the node hardware virtualization.
    pub virtualization: Virtualization,
    /// BIOS or UEFI, as the installer will be booted.
    pub boot: Boot,
    /// Where dom0 learns the network: the config's choice, `auto` resolved.
    pub network_source: NetworkSource,
    /// What the config drive says about the NIC, when it is the source.
    pub drive_network: Option<Ipv4Config>,
    /// Why that source, for `--check` and the log.
    pub network_reason: String,
}

/// Which state reads the node: START, before any change, or SETUP_INSTALLER,
/// after its own earlier tries may have made partition 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Start,
    SetupInstaller,
}

/// Room the shrunk root keeps beyond what is in use: logs and updates go on.
pub const MARGIN_BYTES: u64 = 1 << 30;

/// Reads and checks the node; every failure in one usage error. `downloads`
/// are (URL, node path) pairs whose missing bytes must fit on `/`.
pub fn check(
    system: &System,
    config: &Config,
    downloads: &[(String, PathBuf)],
    stage: Stage,
) -> anyhow::Result<Node> {
    let mut problems = Vec::new();
    let mut note = |problem: String| problems.push(problem);

    match system.metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => {}
        Ok(_) => note("not running as root".to_owned()),
        Err(error) => note(format!("cannot read /proc/self: {error}")),
    }
    for program in ["update-grub", "grub-reboot"] {
        if system.find_program(program).is_none() {
            note(format!("{program} not found in PATH (GRUB2 is needed)"));
        }
    }

    if let Err(problem) = check_sfdisk(system) {
        note(problem);
    }
    // Refused here, not found out after the shrink with the node half
    // converted: a UEFI node whose GRUB cannot boot Xen (platform.rs).
    let boot = Boot::read(system).map_err(&mut note).ok();

    let (root_device, disk, fs_type) = root_filesystem(system, &mut note);
    let layout = if disk.is_empty() {
        None
    } else {
        match layout::read(system, expect(&disk, config, stage)) {
            Ok(layout) => Some(layout),
            Err(layout_problems) => {
                layout_problems.into_iter().for_each(&mut note);
                None
            }
        }
    };

    let (used_bytes, available_bytes) = match system
        .run("df", &["-B1", "--output=used,avail", "/"])
        .map_err(|error| format!("{error:#}"))
        .and_then(|output| {
            parse_df(&output).ok_or_else(|| format!("cannot read df's output: {output:?}"))
        }) {
        Ok(space) => space,
        Err(problem) => {
            note(format!("cannot tell the space on /: {problem}"));
            (0, 0)
        }
    };
    if let Some(size) = config.ubuntu_size
        && used_bytes > 0
        && used_bytes.saturating_add(MARGIN_BYTES) > size
    {
        note(format!(
            "--ubuntu-size {size} bytes is too small: {used_bytes} bytes are in use on /, \
             plus a margin of {MARGIN_BYTES}"
        ));
    }

    let virtualization = Virtualization::read(system);
    if let Err(problem) = appliance_can_start(config, &virtualization) {
        note(problem);
    }

    let still_to_download = bytes_still_to_download(system, downloads);
    if available_bytes > 0 && still_to_download + MARGIN_BYTES > available_bytes {
        note(format!(
            "the downloads need {still_to_download} bytes more on /, plus a margin of \
             {MARGIN_BYTES}, and only {available_bytes} are free"
        ));
    }

    let network = match network::network(system) {
        Ok(network) => Some(network),
        Err(problem) => {
            note(problem);
            None
        }
    };

    let source = network.as_ref().and_then(|network| {
        network_source(system, config, network)
            .map_err(&mut note)
            .ok()
    });

    match (problems.is_empty(), network, layout, boot, source) {
        (
            true,
            Some(network),
            Some(layout),
            Some(boot),
            Some((network_source, drive_network, network_reason)),
        ) => Ok(Node {
            root_device,
            disk,
            fs_type,
            used_bytes,
            available_bytes,
            network,
            layout,
            virtualization,
            boot,
            network_source,
            drive_network,
            network_reason,
        }),
        _ => Err(exit::usage(format!(
            "the node cannot be converted, nothing was changed: {}",
            problems.join("; ")
        ))),
    }
}

/// The appliance VM must be able to start on the installer `--iso-url`
/// names (by its file name); START checks the ISO itself once it has it
/// (steps::start).
fn appliance_can_start(config: &Config, virtualization: &Virtualization) -> Result<(), String> {
    match installer::named_by_url(&config.iso_url) {
        Some((product, version)) if config.mode == Mode::Appliance => {
            installer::check_appliance_can_start(
                &format!("{product} {version} (as --iso-url names it)"),
                Guests::of(&product, &version),
                *virtualization != Virtualization::Absent,
            )
        }
        _ => Ok(()),
    }
}

/// The network source the config asks for, `auto` resolved: the config
/// drive when one describes the node's NIC (by its MAC), else DHCP when this
/// boot's address came from a DHCP lease, else the bounce in the appliance
/// mode (the direct mode has none: refused, with what to give instead). With
/// the source, what the drive says (when it is the source) and a line saying
/// why.
fn network_source(
    system: &System,
    config: &Config,
    network: &Network,
) -> Result<(NetworkSource, Option<Ipv4Config>, String), String> {
    let from_drive = |found: Ipv4Config, device: String| {
        let reason = format!("the config drive {device}: {}", found.describe());
        (NetworkSource::ConfigDrive, Some(found), reason)
    };
    match config.network {
        NetworkSource::Bounce if config.mode == Mode::Direct => Err(
            "--network bounce needs the appliance mode: the direct mode never boots Ubuntu \
             after the install"
                .to_owned(),
        ),
        NetworkSource::Bounce => Ok((
            NetworkSource::Bounce,
            None,
            "Ubuntu boots between dom0 boots and saves the network it was given (asked for)"
                .to_owned(),
        )),
        NetworkSource::Dhcp => Ok((
            NetworkSource::Dhcp,
            None,
            "the cloud's DHCP (asked for)".to_owned(),
        )),
        NetworkSource::ConfigDrive => match config_drive::for_nic(system, &network.mac) {
            Ok(Some((device, found))) => Ok(from_drive(found, device)),
            Ok(None) => Err(format!(
                "--network config-drive: no drive labelled {} with {} (is the server booted \
                 with a config drive?)",
                config_drive::LABEL,
                config_drive::NETWORK_DATA
            )),
            Err(error) => Err(format!("--network config-drive: {error:#}")),
        },
        NetworkSource::Auto => {
            let drive = match config_drive::for_nic(system, &network.mac) {
                Ok(Some((device, found))) => return Ok(from_drive(found, device)),
                Ok(None) => "no config drive with network data".to_owned(),
                Err(error) => format!("{error:#}"),
            };
            if let Some(lease) = network::dhcp_lease(system, &network.interface) {
                return Ok((
                    NetworkSource::Dhcp,
                    None,
                    format!(
                        "the cloud's DHCP: {} has a lease ({lease}); {drive}",
                        network.interface
                    ),
                ));
            }
            match config.mode {
                Mode::Appliance => Ok((
                    NetworkSource::Bounce,
                    None,
                    format!(
                        "Ubuntu boots between dom0 boots and saves the network it was given: \
                         {drive}, and no DHCP lease of {}",
                        network.interface
                    ),
                )),
                Mode::Direct => Err(format!(
                    "the direct mode needs dom0's network from a config drive or DHCP: {drive}, \
                     and {} has no DHCP lease (give --network dhcp if the cloud's DHCP answers \
                     anyway)",
                    network.interface
                )),
            }
        }
    }
}

/// The direct mode's guests run on this host itself: without hardware
/// virtualization no HVM guest starts, and on an installer without PV
/// (XCP-ng 8.3, the default) no guest at all. Said by `--check` and logged by
/// START; not refused: xapi itself answers either way, which is what the
/// direct mode is for.
pub fn direct_mode_warning(config: &Config, node: &Node) -> Option<&'static str> {
    (config.mode == Mode::Direct && node.virtualization == Virtualization::Absent).then_some(
        "no hardware virtualization (vmx/svm): in the direct mode xapi will answer, but no \
         HVM guest will start on this host, and on an installer without PV guests (XCP-ng \
         8.3, the default) no VM at all",
    )
}

/// The layout alone, for `--dry-run`: what [`check`] would find, without
/// its other checks; the error says why it could not be read.
pub fn layout_of(system: &System, config: &Config, stage: Stage) -> Result<Layout, String> {
    let mut problems = Vec::new();
    let (_, disk, _) = root_filesystem(system, &mut |problem| problems.push(problem));
    if disk.is_empty() {
        return Err(problems.join("; "));
    }
    layout::read(system, expect(&disk, config, stage)).map_err(|problems| problems.join("; "))
}

/// What [`layout::read`] is told for `disk` in `stage`.
fn expect<'a>(disk: &'a str, config: &'a Config, stage: Stage) -> Expect<'a> {
    Expect {
        disk,
        installer_disk: config.installer_disk.as_deref(),
        partition_2_is_ours: stage == Stage::SetupInstaller,
    }
}

/// The shrink (`sfdisk -N 1` with a script on stdin), `sfdisk --dump` and the
/// ramdisk partition (the dump written back) need the sfdisk util-linux
/// rewrote in 2.26; Ubuntu
/// 14.04 has 2.20, whose sfdisk reads other input and would do other things.
const SFDISK_SINCE: (u32, u32) = (2, 26);

fn check_sfdisk(system: &System) -> Result<(), String> {
    let output = system.run("sfdisk", &["--version"]).map_err(|error| {
        format!(
            "sfdisk is needed (util-linux {}.{} or later): {error:#}",
            SFDISK_SINCE.0, SFDISK_SINCE.1
        )
    })?;
    let version = sfdisk_version(&output)
        .ok_or_else(|| format!("cannot read sfdisk's version from {:?}", output.trim()))?;
    if version < SFDISK_SINCE {
        return Err(format!(
            "sfdisk is util-linux {}.{}; the shrink needs {}.{} or later (Ubuntu 16.04 and later have it)",
            version.0, version.1, SFDISK_SINCE.0, SFDISK_SINCE.1
        ));
    }
    Ok(())
}

/// The device, disk and type of the root file system; problems go to `note`.
fn root_filesystem(system: &System, note: &mut impl FnMut(String)) -> (String, String, String) {
    let root = system
        .read_to_string("/proc/self/mounts")
        .map_err(|error| format!("cannot read /proc/self/mounts: {error}"))
        .and_then(|mounts| {
            root_mount(&mounts).ok_or_else(|| "no file system is mounted on /".to_owned())
        });
    match root {
        Ok((device, fs_type)) => {
            if !matches!(fs_type.as_str(), "ext2" | "ext3" | "ext4") {
                note(format!(
                    "/ is {fs_type}, not ext2/3/4 (resize2fs must shrink it)"
                ));
            }
            let name = device.strip_prefix("/dev/").unwrap_or(&device);
            let disk = match partition_of(system, name) {
                Some((disk, 1)) => disk,
                Some((_, number)) => {
                    note(format!(
                        "/ is on partition {number} of its disk; it must be partition 1"
                    ));
                    String::new()
                }
                None => {
                    note(format!(
                        "/ is on {device}, which is not a partition of a disk"
                    ));
                    String::new()
                }
            };
            if !disk.is_empty() && !system.exists(format!("/sys/class/block/{disk}")) {
                note(format!(
                    "disk {disk} of {device} is not in /sys/class/block"
                ));
            }
            (device, disk, fs_type)
        }
        Err(problem) => {
            note(problem);
            Default::default()
        }
    }
}

/// What the downloads still need on `/`: each one's size (when the server says)
/// less what an earlier run already has of it.
fn bytes_still_to_download(system: &System, downloads: &[(String, PathBuf)]) -> u64 {
    downloads
        .iter()
        .filter_map(|(url, local)| {
            let total = xitc_common::download::content_length(url)?;
            let have = [local.clone(), xitc_common::download::part_path(local)]
                .iter()
                .filter_map(|path| system.metadata(path).ok().map(|meta| meta.len()))
                .max()
                .unwrap_or(0);
            Some(total.saturating_sub(have))
        })
        .sum()
}

/// The downloads as (URL, node path) pairs: the ISO, and the appliance in
/// the appliance mode.
pub fn downloads(config: &Config, files: &Files) -> Vec<(String, PathBuf)> {
    let mut downloads = vec![(config.iso_url.clone(), files.iso.clone())];
    if config.mode == Mode::Appliance {
        downloads.push((config.appliance_url.clone(), files.appliance_xva.clone()));
    }
    downloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn util_linux_2_26_is_the_oldest_sfdisk_taken() {
        assert!((2, 20) < SFDISK_SINCE && (2, 26) >= SFDISK_SINCE && (3, 0) > SFDISK_SINCE);
    }
}
