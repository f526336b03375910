//! Steps that run in dom0 (XENSERVER_FIRSTBOOT, XENSERVER) and the boot-loader
//! steps of both halves. dom0 runs xitc-convert from the Ubuntu partition,
//! which its boot script mounts at [`UBUNTU_MOUNT`]; Ubuntu mounts dom0's root
//! at [`DOM0_MOUNT`].

use std::time::Duration;

use anyhow::Context as _;
use xitc_common::poll::{Clock, Schedule, SystemClock, poll_until};

use crate::Files;
use crate::bootloader::{self, BootLoader, UbuntuEntry};
use crate::system::System;
use crate::work::Work;

/// Where dom0 sees the Ubuntu root file system.
pub const UBUNTU_MOUNT: &str = "/mnt/ubuntu";
/// Where Ubuntu mounts dom0's root file system.
pub const DOM0_MOUNT: &str = "/mnt/dom0";
/// xapi writes this when it has finished starting.
pub const XAPI_READY: &str = "/var/run/xapi_init_complete.cookie";

/// Waits until xapi says it is ready (`limit` at most).
pub fn wait_for_xapi(work: &Work<'_>, clock: &impl Clock, limit: Duration) -> anyhow::Result<()> {
    poll_until(clock, Schedule::new(limit, work.limits.interval), |_| {
        Ok(work.system.exists(XAPI_READY).then_some(()))
    })
    .with_context(|| {
        format!(
            "xapi did not finish starting within {}s ({XAPI_READY} never appeared); \
             see /var/log/xensource.log",
            limit.as_secs()
        )
    })
}

pub fn wait_xapi(work: &mut Work<'_>) -> anyhow::Result<()> {
    wait_for_xapi(work, &SystemClock, work.limits.xapi)
}

/// The cloud settings saved in Ubuntu (by the post-install script on the
/// first boot, by the UBUNTU state on later ones), as dom0 sees them.
pub fn cloud_settings(work: &Work<'_>) -> anyhow::Result<crate::settings::CloudSettings> {
    let path = format!("/root/{}", crate::settings::FILE_NAME);
    crate::settings::CloudSettings::from_json(
        &work
            .system
            .read_to_string(&path)
            .with_context(|| format!("reading {path} (saved in Ubuntu)"))?,
    )
}

/// The name-label of the management network xitc creates (VLAN 100).
pub const MANAGEMENT_NETWORK: &str = "xitc-management";

/// dom0's address on the management VLAN (/24, [`MANAGEMENT_NETMASK`]).
pub const DOM0_ADDRESS: &str = "192.168.33.2";
/// The appliance's address there: dom0's gateway and name server.
pub const APPLIANCE_ADDRESS: &str = "192.168.33.1";
pub const MANAGEMENT_NETMASK: &str = "255.255.255.0";

/// Forgets dom0's networking and sets it up again for this boot's cloud
/// settings: the NIC introduced by the MAC saved from Ubuntu, no address on it
/// (the appliance takes the cloud's), and dom0 on VLAN 100 with 192.168.33.2/24
/// as its management interface. Re-running it ends the same: the management
/// network is reused, VLANs and PIFs are recreated.
pub fn forget_networking(work: &mut Work<'_>) -> anyhow::Result<()> {
    let settings = cloud_settings(work)?;
    work.log.line(&format!(
        "applying the cloud's network settings: {}",
        settings.describe()
    ));
    let xe = crate::xe::Xe::new(work.system);
    xe.call(&["host-management-disable"])?;
    for vlan in xe.list(&["vlan-list"])? {
        xe.call(&["vlan-destroy", &format!("uuid={vlan}")])?;
    }
    for pif in xe.list(&["pif-list"])? {
        xe.call(&["pif-forget", &format!("uuid={pif}")])?;
    }
    let host = xe
        .list(&["host-list"])?
        .into_iter()
        .next()
        .context("xe host-list names no host")?;
    let nic = format!("device={}", work.config.installer_nic);
    let pif = xe.call(&[
        "pif-introduce",
        &nic,
        &format!("host-uuid={host}"),
        &format!("mac={}", settings.mac),
    ])?;
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

/// The newest file in `dir` whose name starts with `prefix`, by
/// [`version_order`].
fn newest(system: &System, dir: &str, prefix: &str) -> anyhow::Result<String> {
    system
        .list_files(dir)?
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .max_by(|a, b| version_order(a, b))
        .with_context(|| format!("no {prefix}* in {dir}"))
}

/// Orders kernel file names as versions, the way `sort -V` and GRUB's menu do:
/// runs of digits compare as numbers, so `vmlinuz-5.15.0-105-generic` is newer
/// than `vmlinuz-5.15.0-99-generic` (as strings it would not be).
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(text: &str) -> impl Iterator<Item = &str> {
        let mut rest = text;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some(run)
        })
    }
    let numeric = |run: &str| run.bytes().all(|b| b.is_ascii_digit());
    for pair in runs(a).zip(runs(b)) {
        let order = match pair {
            (x, y) if numeric(x) && numeric(y) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (x, y) => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    runs(a).count().cmp(&runs(b).count()).then_with(|| a.cmp(b))
}

/// Copies Ubuntu's newest kernel and initrd into dom0's /boot and adds the
/// Ubuntu entry (root by UUID) to dom0's boot loader, once.
pub fn ubuntu_boot_entry(work: &mut Work<'_>) -> anyhow::Result<()> {
    add_ubuntu_boot_entry(work.system, work.files)
}

/// [`ubuntu_boot_entry`] on `system` alone, so that the real-VM test can play
/// this part of dom0 (bin-convert/examples/dom0-boot-entry.rs).
pub fn add_ubuntu_boot_entry(system: &System, files: &Files) -> anyhow::Result<()> {
    let ubuntu_boot = format!("{UBUNTU_MOUNT}/boot");
    let kernel = newest(system, &ubuntu_boot, "vmlinuz-")?;
    let version = kernel.trim_start_matches("vmlinuz-").to_owned();
    let initrd = format!("initrd.img-{version}");
    system.copy_file(format!("{ubuntu_boot}/{kernel}"), "/boot/vmlinuz-ubuntu")?;
    system.copy_file(format!("{ubuntu_boot}/{initrd}"), "/boot/initrd-ubuntu")?;
    let recorded = bootloader::UbuntuBoot::load(system, &files.ubuntu_boot)?;
    let loader = bootloader::detect(system, "/")?;
    let files_uuid = match loader {
        BootLoader::Grub(_) => Some(file_system_uuid(system, "/boot")?),
        BootLoader::Extlinux(_) => None,
    };
    loader.add_ubuntu(
        system,
        &UbuntuEntry {
            kernel: "/boot/vmlinuz-ubuntu".to_owned(),
            initrd: "/boot/initrd-ubuntu".to_owned(),
            ubuntu: bootloader::UbuntuBoot {
                // Re-checked: the file could have been edited since.
                args: bootloader::kept_kernel_args(&recorded.args).0.join(" "),
                ..recorded
            },
            files_uuid,
        },
    )
}

/// The UUID of the file system that holds `path`.
fn file_system_uuid(system: &System, path: &str) -> anyhow::Result<String> {
    let uuid = system
        .run("findmnt", &["-n", "-o", "UUID", "--target", path])?
        .trim()
        .to_owned();
    anyhow::ensure!(!uuid.is_empty(), "findmnt gave no UUID for {path}");
    Ok(uuid)
}

pub fn boot_ubuntu_next(work: &mut Work<'_>) -> anyhow::Result<()> {
    bootloader::detect(work.system, "/")?.set_default(work.system, true)?;
    crate::work::sync(work)
}

/// In Ubuntu: mounts dom0's root file system at [`DOM0_MOUNT`], found by its
/// label (XenServer labels it `root-…`), not by a device name.
pub fn mount_dom0(work: &mut Work<'_>) -> anyhow::Result<()> {
    if work.system.run("mountpoint", &["-q", DOM0_MOUNT]).is_ok() {
        return Ok(());
    }
    let listing = work.system.run("lsblk", &["-rno", "NAME,LABEL"])?;
    let device = listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(_, label)| label.starts_with("root-"))
        .map(|(name, _)| format!("/dev/{name}"))
        .context("no file system labelled root-… (dom0's root) was found")?;
    work.system.create_dir_all(DOM0_MOUNT)?;
    work.system.run("mount", &[&device, DOM0_MOUNT]).map(drop)
}

/// In Ubuntu: waits until there is a default route and the appliance's host
/// name resolves (the cloud's network is up), [`crate::work::Limits::network`] at most. Nothing is
/// pinged.
pub fn wait_network(work: &mut Work<'_>) -> anyhow::Result<()> {
    wait_for_network(work, &SystemClock, work.limits.network)
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split(':').next()?;
    (!host.is_empty() && host.parse::<std::net::IpAddr>().is_err()).then_some(host)
}

/// Waits until there is a default route, `limit` at most.
pub fn wait_for_route(work: &Work<'_>, clock: &impl Clock, limit: Duration) -> anyhow::Result<()> {
    poll_until(clock, Schedule::new(limit, work.limits.interval), |_| {
        Ok(has_default_route(work).then_some(()))
    })
    .with_context(|| format!("no default route appeared within {}s", limit.as_secs()))
}

fn has_default_route(work: &Work<'_>) -> bool {
    work.system
        .read_to_string("/proc/net/route")
        .ok()
        .and_then(|routes| crate::preflight::default_route(&routes))
        .is_some()
}

pub fn wait_for_network(
    work: &Work<'_>,
    clock: &impl Clock,
    limit: Duration,
) -> anyhow::Result<()> {
    let host = url_host(&work.config.appliance_url);
    let mut last = (false, false);
    poll_until(clock, Schedule::new(limit, work.limits.interval), |_| {
        let routed = has_default_route(work);
        let resolved = host.is_none_or(|host| work.system.run("getent", &["hosts", host]).is_ok());
        last = (routed, resolved);
        Ok((routed && resolved).then_some(()))
    })
    .with_context(|| {
        format!(
            "the network did not come up within {}s (default route: {}, name resolution: {})",
            limit.as_secs(),
            last.0,
            last.1
        )
    })
}

/// Writes the cloud's network settings (as `cloud-settings.json`) and the
/// user's authorized_keys where dom0 will read them: `xsinst/` before the
/// install, dom0's `/root` on every later Ubuntu boot. Logged, without secrets.
pub(crate) fn hand_over(
    work: &Work<'_>,
    network: &crate::preflight::Network,
    settings_dir: &std::path::Path,
    keys_file: &std::path::Path,
) -> anyhow::Result<()> {
    let settings = crate::settings::CloudSettings::from_network(network);
    work.log.line(&format!(
        "network settings for the appliance: {}",
        settings.describe()
    ));
    work.system.write_json(
        settings_dir.join(crate::settings::FILE_NAME),
        &settings,
        0o644,
    )?;
    let keys = work
        .system
        .read_to_string("/root/.ssh/authorized_keys")
        .context("reading /root/.ssh/authorized_keys (without it nobody could log in to dom0)")?;
    work.system.write_atomic(keys_file, keys.as_bytes(), 0o600)
}

/// In Ubuntu: the network settings the cloud gave this boot, and the user's
/// authorized_keys, into dom0 (for the XENSERVER state to apply).
pub fn save_settings(work: &mut Work<'_>) -> anyhow::Result<()> {
    let network = crate::preflight::network(work.system).map_err(|why| anyhow::anyhow!(why))?;
    let root = std::path::PathBuf::from(format!("{DOM0_MOUNT}/root"));
    work.system.create_dir_all(root.join(".ssh"))?;
    hand_over(work, &network, &root, &root.join(".ssh/authorized_keys"))
}

/// What keeps Ubuntu's GRUB packages off the boot sector (debconf): no
/// `grub-install` to any device when grub-pc is upgraded, and no boot entry
/// pushed to the front of the firmware's boot order when grub-efi is.
pub const KEEP_OFF_THE_BOOT_SECTOR: &str = "\
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
grub-efi-amd64 grub2/update_nvram boolean false
";

/// In Ubuntu, booted by dom0's boot loader: the boot sector is dom0's now. An
/// upgrade of Ubuntu's grub-pc would otherwise `grub-install` Ubuntu's GRUB
/// over it, and from then on every boot would start Ubuntu, whose UBUNTU state
/// would make XenServer next in a boot loader nothing runs: a node that never
/// reaches XenServer again. Done here, not before the install: if the install
/// fails, Ubuntu's GRUB stays in the boot sector and must keep being updated
/// with its modules.
pub fn keep_off_the_boot_sector(work: &mut Work<'_>) -> anyhow::Result<()> {
    work.system
        .run_with_input("debconf-set-selections", &[], KEEP_OFF_THE_BOOT_SECTOR)
        .map(drop)
}

/// In Ubuntu: dom0's boot loader, on its mounted root, boots XenServer next.
pub fn boot_xenserver_next(work: &mut Work<'_>) -> anyhow::Result<()> {
    bootloader::detect(work.system, DOM0_MOUNT)?.set_default(work.system, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Files;
    use crate::config::Config;
    use crate::system::System;
    use crate::work::Log;
    use std::cell::Cell;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    struct FakeClock(Cell<Instant>);

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.0.get()
        }
        fn sleep(&self, duration: Duration) {
            self.0.set(self.0.get() + duration);
        }
    }

    fn config() -> Config {
        Config {
            appliance_url: "http://127.0.0.1:9/a.xva".into(),
            appliance_label: "Devstack".into(),
            iso_url: "http://127.0.0.1:9/x.iso".into(),
            iso_sha256: None,
            appliance_sha256: None,
            ubuntu_size: None,
            installer_disk: "sda".into(),
            installer_nic: "eth0".into(),
            root_password_hash: "$6$x$y".into(),
            appliance_vcpus: None,
            appliance_user: "domzero".into(),
            stamp_path: "/var/run/xenserver.ready".into(),
        }
    }

    fn with_work(system: &System, check: impl FnOnce(&mut Work<'_>)) {
        let files = Files::new(PathBuf::from("/opt/xenapi-in-the-cloud"));
        let config = config();
        let mut work = Work {
            system,
            files: &files,
            config: &config,
            log: Log::new(system, Path::new("/xitc-convert.log")),
            node: None,
            limits: crate::work::Limits::default(),
        };
        check(&mut work);
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://mirrors.xcp-ng.org/isos/x.iso?https=1"),
            Some("mirrors.xcp-ng.org")
        );
        assert_eq!(
            url_host("http://user@host.example:8080/a"),
            Some("host.example")
        );
        assert_eq!(
            url_host("http://127.0.0.1:9/a"),
            None,
            "an address needs no name resolution"
        );
        assert_eq!(url_host("file:///srv/a.xva"), None);
    }

    /// A /proc/net/route with a default route via 192.168.0.1.
    fn write_default_route(root: &Path) {
        std::fs::create_dir_all(root.join("proc/net")).unwrap();
        std::fs::write(
            root.join("proc/net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n",
        )
        .unwrap();
    }

    #[test]
    fn the_network_is_waited_for_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        with_work(&system, |work| {
            let clock = FakeClock(Cell::new(Instant::now()));
            let error = wait_for_network(work, &clock, Duration::from_secs(30)).unwrap_err();
            assert!(
                error.to_string().contains("default route: false"),
                "{error}"
            );
            write_default_route(dir.path());
            // The appliance URL is an address: a route is all it takes.
            wait_for_network(work, &clock, Duration::from_secs(30)).unwrap();
        });
    }

    #[test]
    fn a_default_route_is_waited_for_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        with_work(&system, |work| {
            let clock = FakeClock(Cell::new(Instant::now()));
            let error = wait_for_route(work, &clock, Duration::from_secs(30)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("no default route appeared within 30s"),
                "{error}"
            );
            write_default_route(dir.path());
            wait_for_route(work, &clock, Duration::from_secs(30)).unwrap();
        });
    }

    #[test]
    fn xapi_is_waited_for_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        with_work(&system, |work| {
            let clock = FakeClock(Cell::new(Instant::now()));
            let start = clock.now();
            let error = wait_for_xapi(work, &clock, Duration::from_secs(60)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("xapi did not finish starting within 60s"),
                "{error}"
            );
            assert_eq!(clock.now() - start, Duration::from_secs(60));
            std::fs::create_dir_all(dir.path().join("var/run")).unwrap();
            std::fs::write(dir.path().join("var/run/xapi_init_complete.cookie"), "").unwrap();
            wait_for_xapi(work, &clock, Duration::from_secs(60)).unwrap();
        });
    }

    #[test]
    fn kernels_are_ordered_as_versions() {
        use std::cmp::Ordering::{Greater, Less};
        for (newer, older) in [
            ("vmlinuz-5.15.0-105-generic", "vmlinuz-5.15.0-99-generic"),
            ("vmlinuz-6.8.0-31-generic", "vmlinuz-6.8.0-30-generic"),
            ("vmlinuz-6.10.0-1-amd64", "vmlinuz-6.9.12-amd64"),
            ("vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-9-amd64"),
            ("vmlinuz-4.4.0-210-generic", "vmlinuz-4.4.0-21-generic"),
            ("vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-10"),
        ] {
            assert_eq!(version_order(newer, older), Greater, "{newer} > {older}");
            assert_eq!(version_order(older, newer), Less, "{older} < {newer}");
        }
        assert!(version_order("vmlinuz-6.1.0-010", "vmlinuz-6.1.0-10").is_ne());
    }

    const GRUB: &str =
        "set default=0\nset timeout=5\nmenuentry 'XCP-ng' {\n\tmultiboot2 /boot/xen.gz\n}\n";

    #[test]
    fn the_ubuntu_entry_is_added_once_and_the_default_flips_each_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        };
        write("mnt/ubuntu/boot/vmlinuz-6.8.0-9-generic", "old kernel");
        write("mnt/ubuntu/boot/vmlinuz-6.8.0-31-generic", "new kernel");
        write("mnt/ubuntu/boot/initrd.img-6.8.0-9-generic", "old initrd");
        write("mnt/ubuntu/boot/initrd.img-6.8.0-31-generic", "new initrd");
        write("boot/grub/grub.cfg", GRUB);
        // What START recorded, the arguments edited since by hand: re-checked.
        write(
            "opt/xenapi-in-the-cloud/xitc-convert.ubuntu-boot",
            r#"{"root_uuid": "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19",
                "args": "console=ttyS0,115200n8 net.ifnames=0 $(reboot)"}"#,
        );
        // dom0's own file system holds /boot.
        write(
            "bin/findmnt",
            "#!/bin/sh\ncase \"$*\" in\n*'--target /boot') echo 5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b ;;\nesac\n",
        );
        write("bin/sync", "#!/bin/sh\n");
        for program in ["findmnt", "sync"] {
            std::fs::set_permissions(
                root.join("bin").join(program),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        let system = System::new(Some(root.to_path_buf()))
            .with_search_path(format!("{}:/usr/bin:/bin", root.join("bin").display()));
        with_work(&system, |work| {
            ubuntu_boot_entry(work).unwrap();
            ubuntu_boot_entry(work).unwrap();
            boot_ubuntu_next(work).unwrap();
        });
        assert_eq!(
            std::fs::read_to_string(root.join("boot/vmlinuz-ubuntu")).unwrap(),
            "new kernel"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("boot/initrd-ubuntu")).unwrap(),
            "new initrd"
        );
        let grub = std::fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap();
        assert_eq!(grub.matches("menuentry 'Ubuntu (xitc-convert)'").count(), 1);
        assert!(grub.contains("set default=\"Ubuntu (xitc-convert)\"\n"));
        assert!(grub.contains(
            "\tsearch --no-floppy --fs-uuid --set root 5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b\n\t\
             linux /boot/vmlinuz-ubuntu root=UUID=0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19 ro \
             console=ttyS0,115200n8 net.ifnames=0\n"
        ));

        // Ubuntu sees dom0's root at /mnt/dom0 and flips back to XenServer.
        write("mnt/dom0/boot/grub/grub.cfg", &grub);
        with_work(&system, |work| boot_xenserver_next(work).unwrap());
        let back = std::fs::read_to_string(root.join("mnt/dom0/boot/grub/grub.cfg")).unwrap();
        assert!(back.contains("set default=0\n"), "{back}");
    }
}
