//! START's first step: read the live node and check, before any change, that
//! the conversion can work. Every problem is collected and reported at once
//! (exit 2), so a user fixes them in one go.
//!
//! Everything is read from the running system, not from distro files: the root
//! file system from `/proc/self/mounts`, its disk and partition from
//! `/sys/class/block`, the default route from `/proc/net/route`, the interface's
//! address from `ip -o -4 addr`, its MAC from `/sys/class/net`, name servers from
//! resolv.conf (systemd-resolved's upstream list when the stub is in use), space
//! from `df`. All through [`System`], so `--root` confines it.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt as _;

use crate::config::Config;
use crate::system::System;
use xitc_common::exit;

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
}

/// The network settings the cloud gave the node (DESIGN §5: captured in Ubuntu,
/// applied to the appliance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub nameservers: Vec<IpAddr>,
}

/// Room the shrunk root keeps beyond what is in use: logs and updates go on.
pub const MARGIN_BYTES: u64 = 1 << 30;

/// Reads and checks the node; every failure in one usage error. `downloads`
/// are (URL, node path) pairs whose missing bytes must fit on `/`.
pub fn check(
    system: &System,
    config: &Config,
    downloads: &[(String, std::path::PathBuf)],
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
    // The installer entry loads Xen with `multiboot`, which needs a BIOS boot
    // (Xen on UEFI wants multiboot2 and an EFI boot path): refused here rather
    // than found out after the shrink, with the node half converted.
    if system.exists("/sys/firmware/efi") {
        note(
            "the node boots by UEFI (/sys/firmware/efi exists); xitc-convert converts \
             BIOS-booted nodes"
                .to_owned(),
        );
    }

    let (root_device, disk, fs_type) = root_filesystem(system, &mut note);

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

    let still_to_download = bytes_still_to_download(system, downloads);
    if available_bytes > 0 && still_to_download + MARGIN_BYTES > available_bytes {
        note(format!(
            "the downloads need {still_to_download} bytes more on /, plus a margin of \
             {MARGIN_BYTES}, and only {available_bytes} are free"
        ));
    }

    let network = match network(system) {
        Ok(network) => Some(network),
        Err(problem) => {
            note(problem);
            None
        }
    };

    match (problems.is_empty(), network) {
        (true, Some(network)) => Ok(Node {
            root_device,
            disk,
            fs_type,
            used_bytes,
            available_bytes,
            network,
        }),
        _ => Err(exit::usage(format!(
            "the node cannot be converted, nothing was changed: {}",
            problems.join("; ")
        ))),
    }
}

/// The shrink (`sfdisk -N 1` with a script on stdin) and the ramdisk partition
/// (`sfdisk --append`) need the sfdisk util-linux rewrote in 2.26; Ubuntu
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

/// `sfdisk from util-linux 2.38.1` → (2, 38).
pub fn sfdisk_version(output: &str) -> Option<(u32, u32)> {
    let version = output.split_whitespace().last()?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let minor = minor.parse().ok()?;
    Some((major, minor))
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
fn bytes_still_to_download(system: &System, downloads: &[(String, std::path::PathBuf)]) -> u64 {
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

pub fn network(system: &System) -> Result<Network, String> {
    let routes = system
        .read_to_string("/proc/net/route")
        .map_err(|error| format!("cannot read /proc/net/route: {error}"))?;
    let (interface, gateway) = default_route(&routes)
        .ok_or_else(|| "there is no default route (no network captured)".to_owned())?;
    let addresses = system
        .run("ip", &["-o", "-4", "addr", "show", "dev", &interface])
        .map_err(|error| format!("cannot read the address of {interface}: {error:#}"))?;
    let (address, prefix) = ipv4_address(&addresses).ok_or_else(|| {
        format!("{interface} (the default route's interface) has no IPv4 address")
    })?;
    let mac = system
        .read_to_string(format!("/sys/class/net/{interface}/address"))
        .map_err(|error| format!("cannot read the MAC address of {interface}: {error}"))?
        .trim()
        .to_ascii_lowercase();
    let mut nameservers = nameservers_of(
        &system
            .read_to_string("/etc/resolv.conf")
            .unwrap_or_default(),
    );
    // systemd-resolved's stub listens on 127.0.0.53; the appliance needs the
    // upstream servers it forwards to.
    if nameservers.iter().all(IpAddr::is_loopback)
        && let Ok(upstream) = system.read_to_string("/run/systemd/resolve/resolv.conf")
    {
        nameservers = nameservers_of(&upstream);
    }
    nameservers.retain(|server| !server.is_loopback());
    if nameservers.is_empty() {
        return Err(
            "no name server in /etc/resolv.conf (or systemd-resolved's upstream list)".to_owned(),
        );
    }
    Ok(Network {
        interface,
        address,
        prefix,
        gateway,
        mac,
        nameservers,
    })
}

/// The device and type of the file system on `/` (the last one mounted there).
pub fn root_mount(mounts: &str) -> Option<(String, String)> {
    mounts.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let device = fields.next()?;
        let mount_point = fields.next()?;
        let fs_type = fields.next()?;
        (mount_point == "/" && fs_type != "rootfs").then(|| (device.to_owned(), fs_type.to_owned()))
    })
}

/// The disk and partition number of block device `name` (`xvda1` → `xvda`, 1),
/// from sysfs: a partition has a `partition` file, and its directory sits inside
/// its disk's (`/sys/class/block/xvda1` → `…/block/xvda/xvda1`). Names alone
/// cannot tell: `nvme0n1` is a disk, `nvme0n1p1` its partition.
pub fn partition_of(system: &System, name: &str) -> Option<(String, u32)> {
    let number: u32 = system
        .read_to_string(format!("/sys/class/block/{name}/partition"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let real = system
        .canonicalize(format!("/sys/class/block/{name}"))
        .ok()?;
    let disk = real.parent()?.file_name()?.to_str()?.to_owned();
    Some((disk, number))
}

/// The interface and gateway of the default route in `/proc/net/route`.
pub fn default_route(routes: &str) -> Option<(String, Ipv4Addr)> {
    routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (interface, destination, gateway, mask) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(2)?,
            fields.get(7)?,
        );
        if *destination != "00000000" || *mask != "00000000" {
            return None;
        }
        // The kernel prints the address as a host-order (little-endian) hex word.
        let gateway = u32::from_str_radix(gateway, 16).ok()?;
        Some((
            (*interface).to_owned(),
            Ipv4Addr::from(gateway.swap_bytes()),
        ))
    })
}

/// The first `inet A.B.C.D/N` in `ip -o -4 addr` output.
pub fn ipv4_address(output: &str) -> Option<(Ipv4Addr, u8)> {
    output.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        fields.find(|field| *field == "inet")?;
        let (address, prefix) = fields.next()?.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|prefix| *prefix <= 32)?;
        Some((address.parse().ok()?, prefix))
    })
}

/// The `nameserver` addresses of a resolv.conf, in order, without repeats.
pub fn nameservers_of(resolv_conf: &str) -> Vec<IpAddr> {
    let mut servers: Vec<IpAddr> = Vec::new();
    for line in resolv_conf.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some("nameserver")
            && let Some(Ok(server)) = fields.next().map(str::parse::<IpAddr>)
            && !servers.contains(&server)
        {
            servers.push(server);
        }
    }
    servers
}

/// `df -B1 --output=used,avail /`: a header line, then "USED AVAIL".
pub fn parse_df(output: &str) -> Option<(u64, u64)> {
    let mut fields = output.lines().nth(1)?.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfdisk_versions() {
        assert_eq!(
            sfdisk_version("sfdisk from util-linux 2.38.1\n"),
            Some((2, 38))
        );
        assert_eq!(
            sfdisk_version("sfdisk from util-linux 2.20.1"),
            Some((2, 20))
        );
        assert_eq!(
            sfdisk_version("sfdisk from util-linux 2.40-rc1"),
            Some((2, 40))
        );
        assert_eq!(sfdisk_version("sfdisk (util-linux) 2.26"), Some((2, 26)));
        assert_eq!(sfdisk_version("nonsense"), None);
        assert!((2, 20) < SFDISK_SINCE && (2, 26) >= SFDISK_SINCE && (3, 0) > SFDISK_SINCE);
    }

    #[test]
    fn the_root_mount_is_the_last_on_slash() {
        let mounts = "rootfs / rootfs rw 0 0\n/dev/xvda1 / ext4 rw,relatime 0 0\n\
                      proc /proc proc rw 0 0\n/dev/xvdb /mnt ext3 rw 0 0\n";
        assert_eq!(
            root_mount(mounts),
            Some(("/dev/xvda1".into(), "ext4".into()))
        );
        assert_eq!(root_mount("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn partitions_and_their_disks_come_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let devices = dir.path().join("sys/devices/virtual/block");
        let class = dir.path().join("sys/class/block");
        std::fs::create_dir_all(&class).unwrap();
        for (disk, partition, number) in [("xvda", "xvda1", 1), ("nvme0n1", "nvme0n1p2", 2)] {
            let part_dir = devices.join(disk).join(partition);
            std::fs::create_dir_all(&part_dir).unwrap();
            std::fs::write(part_dir.join("partition"), format!("{number}\n")).unwrap();
            std::os::unix::fs::symlink(
                format!("../../devices/virtual/block/{disk}/{partition}"),
                class.join(partition),
            )
            .unwrap();
            std::os::unix::fs::symlink(
                format!("../../devices/virtual/block/{disk}"),
                class.join(disk),
            )
            .unwrap();
            assert_eq!(
                partition_of(&system, partition),
                Some((disk.to_owned(), number))
            );
            assert_eq!(partition_of(&system, disk), None, "{disk} is a whole disk");
        }
        assert_eq!(partition_of(&system, "sdz9"), None);
    }

    #[test]
    fn the_default_route_from_proc() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                      eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                      eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            default_route(routes),
            Some(("eth0".into(), Ipv4Addr::new(192, 168, 0, 1)))
        );
        assert_eq!(default_route("Iface\tDestination\n"), None);
    }

    #[test]
    fn addresses_name_servers_and_space() {
        let ip = "2: eth0    inet 203.0.113.7/24 brd 203.0.113.255 scope global eth0\\       valid_lft forever\n";
        assert_eq!(ipv4_address(ip), Some((Ipv4Addr::new(203, 0, 113, 7), 24)));
        assert_eq!(ipv4_address("2: eth0 inet6 fe80::1/64 scope link\n"), None);
        let resolv = "# generated\nsearch example\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n\
                      nameserver 8.8.8.8\noptions edns0\n";
        assert_eq!(
            nameservers_of(resolv),
            [
                "8.8.8.8".parse::<IpAddr>().unwrap(),
                "2001:4860:4860::8888".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_df("     Used    Avail\n1073741824 9663676416\n"),
            Some((1 << 30, 9_663_676_416))
        );
        assert_eq!(parse_df("Used Avail\n"), None);
    }
}
