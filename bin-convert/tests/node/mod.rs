//! The node of the lifecycle tests (lifecycle.rs, dom0_faults.rs), in the
//! sandbox. Three directories play the three systems: the Ubuntu root (which
//! dom0 sees at /mnt/ubuntu), dom0's root (which Ubuntu mounts at /mnt/dom0)
//! and the appliance's file system. The toolstack is the `xe` and `xenstore`
//! stand-ins in tests/stand-ins (their state in files, so uuids persist
//! between calls). The appliance is reached the real way, through the real ssh
//! client and a real sshd; only its OS is a stand-in
//! (tests/stand-ins/appliance-shell, the sshd's ForceCommand), because a real
//! appliance is a VM and the commands xitc-convert sends it (`sudo tee
//! /etc/network/interfaces`, …) must not touch this machine.
//!
//! [`Firstboot`] (firstboot.rs) is a node that has just booted XenServer, built
//! without START and the installer, for the fault tests.

#![allow(dead_code)] // each test crate uses its part

mod firstboot;
#[allow(unused_imports)] // each test crate uses its part
pub use firstboot::{Firstboot, run_to_end};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bin_convert::config::Config;
use bin_convert::settings::CloudSettings;
use bin_convert::state::State;
use bin_convert::system::System;
use bin_convert::work::Limits;
use xitc_test_support::Sshd;

use crate::world::{
    KILL_PRELUDE, StartWorld, path_with, script, serve_installer, setup_installer_world, write,
};

/// A name-label a shell would split or run: it must reach xe and ssh whole.
pub const LABEL: &str = "Dev \"stack\"; it's $(touch x) `y` &";
pub const USER_KEYS: &str = "ssh-ed25519 AAAA user@laptop\n";
/// dom0 sees the Ubuntu partition here, so its install dir is there too.
pub const DOM0_INSTALL: &str = "/mnt/ubuntu/opt/xenapi-in-the-cloud";
pub const UBUNTU_ROOT_UUID: &str = "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19";
pub const DOM0_ROOT_UUID: &str = "5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b";

/// Short waits: every stand-in answers at once or never.
pub fn limits() -> Limits {
    Limits {
        xapi: Duration::from_secs(2),
        network: Duration::from_secs(2),
        appliance: Duration::from_secs(3),
        interval: Duration::from_millis(50),
    }
}

pub fn stand_ins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand-ins")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The appliance: its file system, and a real sshd whose ForceCommand plays
/// its OS there. It logs in its user (whoever runs the tests) with the keys
/// in its `home/USER/.ssh/authorized_keys`, which its key updater fills from
/// xenstore (the xenstore stand-in plays that cron job).
pub struct Appliance {
    pub dir: tempfile::TempDir,
    pub user: String,
    pub sshd: Sshd,
}

impl Appliance {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("xitc-appliance-")
            .tempdir()
            .unwrap();
        let user = xitc_test_support::current_user();
        let root = dir.path();
        write(
            &root.join("var/spool/cron/crontabs").join(&user),
            "* * * * * /usr/local/bin/copy-keys-from-xenstore\n",
        );
        std::fs::create_dir_all(root.join("etc/network")).unwrap();
        std::fs::create_dir_all(root.join("var/run")).unwrap();
        std::fs::create_dir_all(root.join("home").join(&user).join(".ssh")).unwrap();
        let sshd = Sshd::start_with(&format!(
            "AuthorizedKeysFile {keys}\nForceCommand {shell} {root} {user}\n",
            keys = root
                .join("home")
                .join(&user)
                .join(".ssh/authorized_keys")
                .display(),
            shell = stand_ins().join("appliance-shell").display(),
            root = root.display(),
        ));
        Appliance { dir, user, sshd }
    }

    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// The commands dom0 sent, one argument list each.
    pub fn commands(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    pub fn user_public_key(&self) -> String {
        read(&self.path(&format!("home/{}/.ssh/id_rsa.pub", self.user)))
    }
}

/// dom0's root: an XCP-ng 8.3 (GRUB2, systemd) whose xapi has started, the
/// Ubuntu root at /mnt/ubuntu, and its programs as stand-ins.
pub struct Dom0 {
    pub root: tempfile::TempDir,
    pub system: System,
    pub files: bin_convert::paths::Files,
}

pub const XCPNG_GRUB: &str = "set default=0\nset timeout=5\n\
    menuentry 'XCP-ng' {\n\tsearch --label --set root root-vgdorj\n\tmultiboot2 /boot/xen.gz\n\
    \tmodule2 /boot/vmlinuz-4.19-xen root=LABEL=root-vgdorj ro\n\tmodule2 /boot/initrd-4.19-xen.img\n}\n";

impl Dom0 {
    pub fn new(ubuntu_root: &Path, appliance: &Appliance) -> Self {
        Self::with_install_dir(ubuntu_root, appliance, DOM0_INSTALL)
    }

    /// `install_dir` as dom0 sees it (under /mnt/ubuntu).
    pub fn with_install_dir(ubuntu_root: &Path, appliance: &Appliance, install_dir: &str) -> Self {
        let root = tempfile::Builder::new()
            .prefix("xitc-dom0-")
            .tempdir()
            .unwrap();
        let r = root.path();
        write(&r.join("etc/xensource-inventory"), "BUILD_NUMBER='8.3.0'\n");
        write(&r.join("var/run/xapi_init_complete.cookie"), "");
        write(&r.join("boot/grub/grub.cfg"), XCPNG_GRUB);
        write(&r.join("appliance-ip"), "127.0.0.1\n");
        std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
        std::fs::create_dir_all(r.join("mnt")).unwrap();
        std::os::unix::fs::symlink(ubuntu_root, r.join("mnt/ubuntu")).unwrap();
        let bin = r.join("stand-ins");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(stand_ins().join("xe"), bin.join("xe")).unwrap();
        for name in ["xenstore-write", "xenstore-chmod", "xenstore-rm"] {
            script(
                &bin.join(name),
                &format!(
                    "XITC_TEST_APPLIANCE_ROOT='{}' exec '{}' {name} \"$@\"",
                    appliance.dir.path().display(),
                    stand_ins().join("xenstore").display()
                ),
            );
        }
        let ssh = which("ssh");
        script(
            &bin.join("ssh"),
            &format!(
                "{KILL_PRELUDE}\nexec '{}' -p {} \"$@\"",
                ssh.display(),
                appliance.sshd.port()
            ),
        );
        script(
            &bin.join("findmnt"),
            // dom0's own file system holds /boot. Ubuntu's UUID is START's
            // record (dom0 on XenServer 6.x has no findmnt to ask).
            &format!(
                "{KILL_PRELUDE}\ncase \"$*\" in\n*'--target /boot') echo {DOM0_ROOT_UUID} ;;\n\
                 *) exit 1 ;;\nesac"
            ),
        );
        script(&bin.join("sync"), KILL_PRELUDE);
        let system = System::new(Some(r.to_path_buf())).with_search_path(path_with(&bin));
        Dom0 {
            root,
            system,
            files: bin_convert::paths::Files::new(PathBuf::from(install_dir)),
        }
    }

    pub fn path(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    pub fn xe(&self) -> serde_json::Value {
        serde_json::from_str(&read(&self.path("xe.json"))).unwrap()
    }

    /// The subcommands of the xe calls so far, and forgets them.
    pub fn take_xe_calls(&self) -> Vec<String> {
        let log = self.path("xe.log");
        let calls = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(' ').next().unwrap().to_owned())
            .collect();
        std::fs::write(log, "").unwrap();
        calls
    }

    pub fn run(&self, config: &Config, state: State) -> anyhow::Result<()> {
        bin_convert::runner::run_state_with(&self.system, &self.files, config, state, limits())
    }

    pub fn state(&self) -> String {
        read(&self.system.path(&self.files.state))
    }
}

pub fn which(program: &str) -> PathBuf {
    which::which(program)
        .unwrap_or_else(|_| panic!("{program} is missing: apt-get install openssh-client"))
}

/// The appliance as xapi has it: one line per VM, and its VIFs by device with
/// their network's name and MAC.
pub fn appliance_summary(xe: &serde_json::Value) -> String {
    let networks = &xe["networks"];
    let mut lines = Vec::new();
    for (uuid, vm) in xe["vms"].as_object().unwrap() {
        lines.push(format!(
            "{} {} VCPUs {}/{} reboots {}",
            vm["name-label"].as_str().unwrap(),
            vm["power"].as_str().unwrap(),
            vm["VCPUs-at-startup"],
            vm["VCPUs-max"],
            vm["reboots"]
        ));
        let mut vifs: Vec<String> = xe["vifs"]
            .as_object()
            .unwrap()
            .values()
            .filter(|vif| vif["vm"] == uuid.as_str())
            .map(|vif| {
                format!(
                    "  {} {} {}",
                    vif["device"].as_str().unwrap(),
                    networks[vif["network"].as_str().unwrap()].as_str().unwrap(),
                    vif["mac"].as_str().unwrap()
                )
            })
            .collect();
        vifs.sort();
        lines.extend(vifs);
    }
    lines.join("\n")
}

/// The node after SETUP_INSTALLER, with the installer played: the generated
/// post-install script run for real against dom0's root.
pub struct Node {
    pub ubuntu: StartWorld,
    pub dom0: Dom0,
    pub appliance: Appliance,
    pub _nginx: xitc_test_support::Nginx,
}

impl Node {
    /// START and SETUP_INSTALLER as the lifecycle runs them, then the install.
    pub fn installed() -> Self {
        Self::installed_with(|_| {})
    }

    /// [`Node::installed`], with `prepare` changing the node or its first
    /// run's config before START (the direct mode, a config drive).
    pub fn installed_with(prepare: impl FnOnce(&mut StartWorld)) -> Self {
        let nginx = xitc_test_support::Nginx::start();
        let scratch = tempfile::tempdir().unwrap();
        let (iso, xva) = serve_installer(&nginx, scratch.path());
        let mut ubuntu = StartWorld::new(&nginx, &iso, &xva);
        let appliance = Appliance::start();
        LABEL.clone_into(&mut ubuntu.config.appliance_label);
        ubuntu.config.appliance_user.clone_from(&appliance.user);
        prepare(&mut ubuntu);
        let u = ubuntu.sandbox.root.path().to_path_buf();
        let run = |state| {
            bin_convert::runner::run_state(&ubuntu.system, &ubuntu.files, &ubuntu.config, state)
                .unwrap_or_else(|error| panic!("{state} failed: {error:#}"));
        };
        run(State::Start);
        setup_installer_world(&u, &ubuntu.bin);
        std::fs::write(ubuntu.bin.join("fs-blocks"), "1048576\n").unwrap();
        run(State::SetupInstaller);
        write(&u.join("boot/vmlinuz-6.8.0-31-generic"), "ubuntu kernel");
        write(&u.join("boot/initrd.img-6.8.0-31-generic"), "ubuntu initrd");
        let dom0 = Dom0::new(&u, &appliance);
        // The installer unpacks xsinst/ to /tmp/ramdisk and runs the script
        // with the new root; here the ramdisk is the sandbox's copy.
        let xsinst = u.join("mnt/xitc-ramdisk/xsinst");
        let postinst = read(&xsinst.join("postinst.sh"));
        assert!(postinst.starts_with("#!/bin/sh\n"));
        let postinst = postinst.replacen(
            "ramdisk=/tmp/ramdisk\n",
            &format!("ramdisk='{}'\n", xsinst.display()),
            1,
        );
        assert!(
            postinst.contains(&xsinst.display().to_string()),
            "{postinst}"
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(&postinst)
            .arg("postinst.sh")
            .arg(dom0.root.path())
            .status()
            .unwrap();
        assert!(status.success());
        Node {
            ubuntu,
            dom0,
            appliance,
            _nginx: nginx,
        }
    }

    pub fn ubuntu_root(&self) -> &Path {
        self.ubuntu.sandbox.root.path()
    }

    pub fn config(&self) -> &Config {
        &self.ubuntu.config
    }

    /// The config as START saved it (the network source chosen), which every
    /// later run reads.
    pub fn saved_config(&self) -> Config {
        Config::load(&self.ubuntu.system, &self.ubuntu.files.config)
            .unwrap()
            .expect("START saved the config")
    }

    /// Ubuntu's programs for the UBUNTU state: dom0's root found by its label
    /// and "mounted" (linked) at /mnt/dom0.
    pub fn prepare_ubuntu_boot(&self) {
        let bin = &self.ubuntu.bin;
        script(&bin.join("mountpoint"), "[ -L \"$XITC_ROOT$2\" ]");
        script(
            &bin.join("lsblk"),
            "printf 'xvda1 u1 p1 cloudimg-rootfs ext4\\nxvda2    \\nxvda3 u3 p3 root-vgdorj ext3\\n'",
        );
        script(
            &bin.join("mount"),
            &format!(
                "echo \"mount $*\" >> \"$XITC_ROOT/commands.log\"\n\
                 [ \"$1\" = /dev/xvda3 ] && [ \"$2\" = /mnt/dom0 ] || exit 1\n\
                 rmdir \"$XITC_ROOT$2\" && ln -s '{}' \"$XITC_ROOT$2\"",
                self.dom0.root.path().display()
            ),
        );
    }

    /// The cloud gives the node (a snapshot booted elsewhere) a new address,
    /// gateway and MAC.
    pub fn move_to_new_address(&self) {
        let u = self.ubuntu_root();
        write(&u.join("sys/class/net/eth0/address"), "FA:16:3E:00:00:07\n");
        write(
            &u.join("proc/net/route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n",
        );
        script(
            &self.ubuntu.bin.join("ip"),
            "echo '2: eth0    inet 192.168.1.77/24 brd 192.168.1.255 scope global eth0'",
        );
    }

    pub fn run_ubuntu(&self, state: State) -> anyhow::Result<()> {
        bin_convert::runner::run_state_with(
            &self.ubuntu.system,
            &self.ubuntu.files,
            &self.ubuntu.config,
            state,
            limits(),
        )
    }

    pub fn state(&self) -> String {
        self.dom0.state()
    }
}

/// What a dom0 state must leave behind, checked after each one.
pub fn check_dom0_state_result(node: &Node, settings: &CloudSettings) {
    let dom0 = &node.dom0;
    let appliance = &node.appliance;
    assert_eq!(node.state(), "UBUNTU\n");
    assert!(
        appliance.path("/var/run/xenserver.ready").is_file(),
        "the stamp was not touched"
    );
    let xe = dom0.xe();
    let vms = xe["vms"].as_object().unwrap();
    assert_eq!(vms.len(), 1, "one appliance, imported once: {xe}");
    assert_eq!(
        xe["vms"].as_object().unwrap().values().next().unwrap()["name-label"],
        LABEL
    );
    let summary = appliance_summary(&xe);
    let mac = &settings.mac;
    assert!(summary.contains("running VCPUs 8/8 reboots "), "{summary}");
    assert!(
        summary.ends_with(&format!(
            "\n  0 Host internal management network random\n  \
             1 Pool-wide network associated with eth0 {mac}\n  2 xitc-management random"
        )),
        "{summary}"
    );
    // The appliance's network: the cloud's settings on eth1.
    assert_eq!(
        read(&appliance.path("/etc/network/interfaces")),
        bin_convert::render::appliance_interfaces(
            &bin_convert::settings::ApplianceNetwork::Static(settings.clone())
        )
    );
    assert_eq!(
        read(&appliance.path("/root/.ssh/authorized_keys")),
        USER_KEYS
    );
    // dom0: the user's keys and the appliance user's key, once.
    let appliance_key = appliance.user_public_key();
    assert_eq!(
        read(&dom0.path("/root/.ssh/authorized_keys")),
        format!("{USER_KEYS}{appliance_key}")
    );
    let grub = read(&dom0.path("/boot/grub/grub.cfg"));
    assert!(
        grub.contains("set default=\"Ubuntu (xitc-convert)\"\n"),
        "{grub}"
    );
    assert_eq!(grub.matches("menuentry 'Ubuntu (xitc-convert)'").count(), 1);
    // GRUB finds the copied kernel on dom0's file system and boots Ubuntu's
    // (its UUID as START's blkid gave it), with the kernel arguments START
    // found on Ubuntu's command line.
    assert!(
        grub.contains(&format!(
            "\tsearch --no-floppy --fs-uuid --set root {DOM0_ROOT_UUID}\n\t\
             linux /boot/vmlinuz-ubuntu root=UUID={UBUNTU_ROOT_UUID} ro systemd.gpt_auto=0 console=tty1 console=ttyS0\n"
        )),
        "{grub}"
    );
    // The temporary xenstore key is gone.
    assert_eq!(read(&dom0.path("xenstore.json")).trim(), "{}");
}
