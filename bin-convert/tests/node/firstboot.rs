//! A node that has just booted XenServer for the first time, built directly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::*;

/// A node that has just booted XenServer for the first time, built directly
/// (no START, no installer): what the post-install script leaves in dom0,
/// the Ubuntu partition with the state, config, appliance and kernel.
pub struct Firstboot {
    /// The Ubuntu root, which dom0 sees at /mnt/ubuntu (kept alive).
    pub ubuntu: tempfile::TempDir,
    pub dom0: Dom0,
    pub appliance: Appliance,
    pub config: Config,
}

pub const FIRST_SETTINGS: &str = r#"{"version": 1, "interface": "eth0", "address": "203.0.113.7",
    "prefix": 24, "netmask": "255.255.255.0", "gateway": "203.0.113.1",
    "mac": "bc:76:4e:20:1a:2b", "nameservers": ["203.0.113.53"]}"#;

pub const UBUNTU_FSTAB: &str = "LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n\
    # xitc-convert: optional until the installer deletes its partition (then commented out):\n\
    LABEL=UEFI\t/boot/efi\tvfat\tumask=0077,nofail\t0 1\n";

impl Firstboot {
    pub fn new() -> Self {
        Self::with(
            "/opt/xenapi-in-the-cloud",
            LABEL,
            "/var/run/xenserver.ready",
        )
    }

    /// With this install dir (as Ubuntu sees it), label and stamp path.
    pub fn with(install_dir: &str, label: &str, stamp_path: &str) -> Self {
        let appliance = Appliance::start();
        let ubuntu = tempfile::Builder::new()
            .prefix("xitc-ubuntu-")
            .tempdir()
            .unwrap();
        let u = ubuntu.path();
        let install = u.join(install_dir.trim_start_matches('/'));
        std::fs::create_dir_all(&install).unwrap();
        std::fs::write(
            install.join("appliance.xva"),
            xitc_test_support::appliance_xva(xitc_common::xva::DomainType::Hvm),
        )
        .unwrap();
        write(&install.join("xitc-convert.state"), "XENSERVER_FIRSTBOOT\n");
        // What START recorded for dom0's Ubuntu entry.
        write(
            &install.join("xitc-convert.ubuntu-boot"),
            &format!(
                r#"{{"root_uuid": "{UBUNTU_ROOT_UUID}", "args": "console=tty1 console=ttyS0"}}"#
            ),
        );
        // Ubuntu's fstab as SETUP_INSTALLER left it on a 22.04 cloud image.
        write(&u.join("etc/fstab"), UBUNTU_FSTAB);
        write(&u.join("boot/vmlinuz-6.8.0-31-generic"), "ubuntu kernel");
        write(&u.join("boot/initrd.img-6.8.0-31-generic"), "ubuntu initrd");
        let config = Config {
            appliance_label: label.into(),
            appliance_vcpus: Some(2),
            appliance_user: appliance.user.clone(),
            stamp_path: stamp_path.into(),
            ..crate::world::config(
                "http://127.0.0.1:9/appliance.xva",
                "http://127.0.0.1:9/installer.iso",
            )
        };
        config
            .save(
                &System::new(Some(u.to_path_buf())),
                &Path::new(install_dir).join("xitc-convert.config"),
            )
            .unwrap();
        let dom0 = Dom0::with_install_dir(u, &appliance, &format!("/mnt/ubuntu{install_dir}"));
        write(&dom0.path("/root/cloud-settings.json"), FIRST_SETTINGS);
        write(&dom0.path("/root/.ssh/authorized_keys"), USER_KEYS);
        Firstboot {
            ubuntu,
            dom0,
            appliance,
            config,
        }
    }

    pub fn run(&self) -> anyhow::Result<()> {
        self.dom0.run(&self.config, State::XenserverFirstboot)
    }

    pub fn log(&self) -> String {
        read(&self.dom0.system.path(&self.dom0.files.log))
    }

    /// The end state, without what differs by design between two nodes
    /// (keys, uuids) or between runs (how often the appliance rebooted).
    pub fn outcome(&self) -> String {
        let dom0 = &self.dom0;
        let appliance = &self.appliance;
        let xe = dom0.xe();
        let mut pifs: Vec<String> = xe["pifs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(uuid, pif)| {
                format!(
                    "{} VLAN {} {} {}{}",
                    pif["device"].as_str().unwrap(),
                    pif["VLAN"].as_str().unwrap(),
                    pif["mac"].as_str().unwrap(),
                    pif["IP"].as_str().unwrap(),
                    if xe["management"] == uuid.as_str() {
                        " management"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        pifs.sort();
        let mut networks: Vec<&str> = xe["networks"]
            .as_object()
            .unwrap()
            .values()
            .map(|name| name.as_str().unwrap())
            .collect();
        networks.sort_unstable();
        let summary = appliance_summary(&xe);
        let summary = summary.split(" reboots ").next().unwrap().to_owned()
            + &summary[summary.find('\n').unwrap_or(summary.len())..];
        let user_key = appliance.user_public_key();
        let vm = xe["vms"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        let keyed = read(&dom0.path(bin_convert::shared::appliance::KEYED));
        let dom0_keys = read(&dom0.path("/root/.ssh/authorized_keys"));
        let appliance_logins =
            read(&appliance.path(&format!("home/{}/.ssh/authorized_keys", appliance.user)));
        let dom0_public = read(&dom0.path(&format!("{}.pub", bin_convert::appliance_ssh::KEY)));
        let stamp = appliance.path(&self.config.stamp_path).is_file();
        format!(
            "state {}appliance {summary}\npifs {pifs:?}\nnetworks {networks:?}\n\
             keyed: {}\ndom0 keys:\n{}grub:\n{}appliance interfaces:\n{}appliance root keys:\n{}\
             appliance crontab: {:?}\nappliance logins: {:?}\nstamp: {stamp}\nxenstore: {}\n\
             Ubuntu's fstab:\n{}",
            dom0.state(),
            keyed.trim() == vm,
            dom0_keys.replace(&user_key, "<the appliance user's key>\n"),
            read(&dom0.path("/boot/grub/grub.cfg")),
            read(&appliance.path("/etc/network/interfaces")),
            read(&appliance.path("/root/.ssh/authorized_keys")),
            read(&appliance.path(&format!("var/spool/cron/crontabs/{}", appliance.user))),
            appliance_logins.replace(dom0_public.trim(), "<dom0's key>"),
            read(&dom0.path("xenstore.json")).trim(),
            read(&self.ubuntu.path().join("etc/fstab")),
        )
    }

    /// xitc-convert itself, as dom0's boot hook runs it.
    pub fn convert(&self) -> Command {
        let mut command = xitc_test_support::tool!("xitc-convert");
        command
            .env("PATH", path_with(&self.dom0.path("stand-ins")))
            .arg("--root")
            .arg(self.dom0.root.path())
            .arg("--install-dir")
            .arg(&self.dom0.files.install_dir);
        command
    }
}

/// Runs `command` to its end, two minutes at most (a hang is a failure, and
/// the process is killed, by its PID).
pub fn run_to_end(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("xitc-convert did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
