//! The dom0 half of xitc-convert and the whole life of a node, in the sandbox
//! (ARCHITECTURE.md: START → SETUP_INSTALLER → XENSERVER_FIRSTBOOT → UBUNTU →
//! XENSERVER → UBUNTU → XENSERVER).
//!
//! Three directories play the three systems: the Ubuntu root (which dom0 sees
//! at /mnt/ubuntu), dom0's root (which Ubuntu mounts at /mnt/dom0) and the
//! appliance's file system. The toolstack is the `xe` and `xenstore` stand-ins
//! in tests/stand-ins (their state in files, so uuids persist between calls).
//! The appliance is reached the real way, through the real ssh client and a
//! real sshd; only its OS is a stand-in (tests/stand-ins/appliance-shell, the
//! sshd's ForceCommand), because a real appliance is a VM and the commands
//! xitc-convert sends it (`sudo tee /etc/network/interfaces`, …) must not
//! touch this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bin_convert::config::Config;
use bin_convert::settings::CloudSettings;
use bin_convert::state::State;
use bin_convert::system::System;
use bin_convert::work::Limits;
use xitc_test_support::Sshd;

mod world;
use world::{
    KILL_PRELUDE, StartWorld, path_with, script, serve_installer, setup_installer_world, write,
};

/// A name-label a shell would split or run: it must reach xe and ssh whole.
const LABEL: &str = "Dev \"stack\"; it's $(touch x) `y` &";
const USER_KEYS: &str = "ssh-ed25519 AAAA user@laptop\n";
/// dom0 sees the Ubuntu partition here, so its install dir is there too.
const DOM0_INSTALL: &str = "/mnt/ubuntu/opt/xenapi-in-the-cloud";
const UBUNTU_ROOT_UUID: &str = "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19";
const DOM0_ROOT_UUID: &str = "5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b";

/// Short waits: every stand-in answers at once or never.
fn limits() -> Limits {
    Limits {
        xapi: Duration::from_secs(2),
        network: Duration::from_secs(2),
        appliance: Duration::from_secs(3),
        interval: Duration::from_millis(50),
    }
}

fn stand_ins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand-ins")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The appliance: its file system, and a real sshd whose ForceCommand plays
/// its OS there. It logs in its user (whoever runs the tests) with the keys
/// in its `home/USER/.ssh/authorized_keys`, which its key updater fills from
/// xenstore (the xenstore stand-in plays that cron job).
struct Appliance {
    dir: tempfile::TempDir,
    user: String,
    sshd: Sshd,
}

impl Appliance {
    fn start() -> Self {
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

    fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// The commands dom0 sent, one argument list each.
    fn commands(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn user_public_key(&self) -> String {
        read(&self.path(&format!("home/{}/.ssh/id_rsa.pub", self.user)))
    }
}

/// dom0's root: an XCP-ng 8.3 (GRUB2, systemd) whose xapi has started, the
/// Ubuntu root at /mnt/ubuntu, and its programs as stand-ins.
struct Dom0 {
    root: tempfile::TempDir,
    system: System,
    files: bin_convert::paths::Files,
}

const XCPNG_GRUB: &str = "set default=0\nset timeout=5\n\
    menuentry 'XCP-ng' {\n\tsearch --label --set root root-vgdorj\n\tmultiboot2 /boot/xen.gz\n\
    \tmodule2 /boot/vmlinuz-4.19-xen root=LABEL=root-vgdorj ro\n\tmodule2 /boot/initrd-4.19-xen.img\n}\n";

impl Dom0 {
    fn new(ubuntu_root: &Path, appliance: &Appliance) -> Self {
        Self::with_install_dir(ubuntu_root, appliance, DOM0_INSTALL)
    }

    /// `install_dir` as dom0 sees it (under /mnt/ubuntu).
    fn with_install_dir(ubuntu_root: &Path, appliance: &Appliance, install_dir: &str) -> Self {
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

    fn path(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    fn xe(&self) -> serde_json::Value {
        serde_json::from_str(&read(&self.path("xe.json"))).unwrap()
    }

    /// The subcommands of the xe calls so far, and forgets them.
    fn take_xe_calls(&self) -> Vec<String> {
        let log = self.path("xe.log");
        let calls = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(' ').next().unwrap().to_owned())
            .collect();
        std::fs::write(log, "").unwrap();
        calls
    }

    fn run(&self, config: &Config, state: State) -> anyhow::Result<()> {
        bin_convert::runner::run_state_with(&self.system, &self.files, config, state, limits())
    }

    fn state(&self) -> String {
        read(&self.system.path(&self.files.state))
    }
}

fn which(program: &str) -> PathBuf {
    which::which(program)
        .unwrap_or_else(|_| panic!("{program} is missing: apt-get install openssh-client"))
}

/// The appliance as xapi has it: one line per VM, and its VIFs by device with
/// their network's name and MAC.
fn appliance_summary(xe: &serde_json::Value) -> String {
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
struct Node {
    ubuntu: StartWorld,
    dom0: Dom0,
    appliance: Appliance,
    _nginx: xitc_test_support::Nginx,
}

impl Node {
    /// START and SETUP_INSTALLER as the lifecycle runs them, then the install.
    fn installed() -> Self {
        let nginx = xitc_test_support::Nginx::start();
        let scratch = tempfile::tempdir().unwrap();
        let (iso, xva) = serve_installer(&nginx, scratch.path());
        let mut ubuntu = StartWorld::new(&nginx, &iso, &xva);
        let appliance = Appliance::start();
        LABEL.clone_into(&mut ubuntu.config.appliance_label);
        ubuntu.config.appliance_user.clone_from(&appliance.user);
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

    fn ubuntu_root(&self) -> &Path {
        self.ubuntu.sandbox.root.path()
    }

    fn config(&self) -> &Config {
        &self.ubuntu.config
    }

    /// Ubuntu's programs for the UBUNTU state: dom0's root found by its label
    /// and "mounted" (linked) at /mnt/dom0.
    fn prepare_ubuntu_boot(&self) {
        let bin = &self.ubuntu.bin;
        script(&bin.join("mountpoint"), "[ -L \"$XITC_ROOT$2\" ]");
        script(
            &bin.join("lsblk"),
            "printf 'xvda1 cloudimg-rootfs\\nxvda2 \\nxvda3 root-vgdorj\\n'",
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
    fn move_to_new_address(&self) {
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

    fn run_ubuntu(&self, state: State) -> anyhow::Result<()> {
        bin_convert::runner::run_state_with(
            &self.ubuntu.system,
            &self.ubuntu.files,
            &self.ubuntu.config,
            state,
            limits(),
        )
    }

    fn state(&self) -> String {
        self.dom0.state()
    }
}

/// What a dom0 state must leave behind, checked after each one.
fn check_dom0_state_result(node: &Node, settings: &CloudSettings) {
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
        bin_convert::render::appliance_interfaces(settings)
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
             linux /boot/vmlinuz-ubuntu root=UUID={UBUNTU_ROOT_UUID} ro console=tty1 console=ttyS0\n"
        )),
        "{grub}"
    );
    // The temporary xenstore key is gone.
    assert_eq!(read(&dom0.path("xenstore.json")).trim(), "{}");
}

// One story, as the node lives it; long by nature.
#[allow(clippy::too_many_lines)]
#[test]
fn a_node_lives_through_install_firstboot_and_two_cycles_with_a_move() {
    let outside_before = world::outside_the_sandbox();
    let node = Node::installed();
    let dom0 = &node.dom0;
    let appliance = &node.appliance;
    let config = node.config().clone();

    // The installer's post-install script set up dom0's boot hook and handed
    // over the settings and keys.
    assert_eq!(
        read(&dom0.path("/root/.ssh/authorized_keys")),
        USER_KEYS,
        "{}",
        read(&dom0.path("/root/xitc-postinst.log"))
    );
    let unit = read(&dom0.path("/etc/systemd/system/xitc-convert.service"));
    assert!(
        unit.contains("ExecStart=/opt/xitc/xitc-dom0-boot"),
        "{unit}"
    );
    assert!(
        dom0.path("/etc/systemd/system/multi-user.target.wants/xitc-convert.service")
            .exists()
    );
    let first_settings =
        CloudSettings::from_json(&read(&dom0.path("/root/cloud-settings.json"))).unwrap();

    // XENSERVER_FIRSTBOOT.
    if let Err(error) = dom0.run(&config, State::XenserverFirstboot) {
        panic!(
            "XENSERVER_FIRSTBOOT failed: {error:#}\nappliance sshd:\n{}",
            appliance.sshd.log()
        );
    }
    check_dom0_state_result(&node, &first_settings);
    assert_eq!(
        dom0.take_xe_calls(),
        [
            // forget-networking
            "host-management-disable",
            "vlan-list",
            "pif-list",
            "pif-forget",
            "host-list",
            "pif-introduce",
            "network-list",
            "network-create",
            "vlan-create",
            "pif-list",
            "pif-reconfigure-ip",
            "pif-reconfigure-ip",
            "host-management-reconfigure",
            // appliance-vm
            "vm-list",
            "vm-import",
            "vm-param-set",
            "vm-param-get",
            "host-list",
            "host-param-get",
            "vm-param-get",
            "vm-param-set",
            "vm-param-set",
            "network-list",
            "pif-list",
            "pif-param-get",
            "network-list",
            "vif-list",
            "vif-create",
            "vif-create",
            "vif-create",
            "vm-start",
            "vm-param-get",
            // appliance-key
            "vm-list",
            "vm-param-get",
            "vm-param-get",
            // appliance-network
            "vm-list",
            "vm-param-get",
            "vm-reboot",
            // stamp
            "vm-list",
            "vm-param-get",
        ]
    );
    let keyed_commands: Vec<Vec<String>> = appliance.commands();
    let names: Vec<String> = keyed_commands.iter().map(|argv| argv.join(" ")).collect();
    assert_eq!(names[0], "true", "{names:?}");
    assert!(names.contains(&"crontab -".to_owned()), "{names:?}");
    assert_eq!(
        read(&appliance.path(&format!("/var/spool/cron/crontabs/{}", appliance.user))),
        "",
        "the key updater is emptied"
    );
    assert!(
        names
            .last()
            .unwrap()
            .starts_with("sudo touch /var/run/xenserver.ready")
    );
    let stamp_line = names
        .iter()
        .filter(|line| line.starts_with("sudo touch"))
        .count();
    assert_eq!(stamp_line, 1);
    let log = read(
        &node
            .ubuntu_root()
            .join("opt/xenapi-in-the-cloud/xitc-convert.log"),
    );
    assert!(
        log.contains("stamp /var/run/xenserver.ready touched on the appliance"),
        "{log}"
    );

    // Two cycles: Ubuntu captures the cloud's settings, XenServer applies them.
    // Before the second, the node moves (a snapshot booted elsewhere).
    node.prepare_ubuntu_boot();
    let mut dom0_files_after_cycle = Vec::new();
    for cycle in 1..=2 {
        if cycle == 2 {
            node.move_to_new_address();
        }
        std::fs::remove_file(appliance.path("/var/run/xenserver.ready")).unwrap();
        std::fs::write(node.ubuntu_root().join("commands.log"), "").unwrap();
        if let Err(error) = node.run_ubuntu(State::Ubuntu) {
            panic!("UBUNTU (cycle {cycle}) failed: {error:#}");
        }
        assert_eq!(node.state(), "XENSERVER\n");
        let commands = read(&node.ubuntu_root().join("commands.log"));
        assert!(commands.ends_with("reboot \n"), "{commands}");
        let grub = read(&dom0.path("/boot/grub/grub.cfg"));
        assert!(grub.contains("set default=0\n"), "XenServer next: {grub}");
        let settings =
            CloudSettings::from_json(&read(&dom0.path("/root/cloud-settings.json"))).unwrap();
        if cycle == 2 {
            assert_eq!(
                settings.describe(),
                "eth0 192.168.1.77/24 via 192.168.1.1, MAC fa:16:3e:00:00:07, \
                 name servers 203.0.113.53, 198.51.100.53"
            );
        } else {
            assert_eq!(settings, first_settings);
        }

        let before = appliance.commands().len();
        if let Err(error) = dom0.run(&config, State::Xenserver) {
            panic!("XENSERVER (cycle {cycle}) failed: {error:#}");
        }
        check_dom0_state_result(&node, &settings);
        // No import, the running appliance halted to reconfigure, no key
        // handshake (its dom-id is not asked for).
        assert_eq!(
            dom0.take_xe_calls(),
            [
                // forget-networking
                "host-management-disable",
                "vlan-list",
                "vlan-destroy",
                "pif-list",
                "pif-forget",
                "host-list",
                "pif-introduce",
                "network-list",
                "vlan-create",
                "pif-list",
                "pif-reconfigure-ip",
                "pif-reconfigure-ip",
                "host-management-reconfigure",
                // appliance-vm
                "vm-list",
                "vm-param-get",
                "vm-shutdown",
                "host-list",
                "host-param-get",
                "vm-param-get",
                "vm-param-set",
                "vm-param-set",
                "network-list",
                "pif-list",
                "pif-param-get",
                "network-list",
                "vif-list",
                "vif-destroy",
                "vif-destroy",
                "vif-destroy",
                "vif-create",
                "vif-create",
                "vif-create",
                "vm-start",
                "vm-param-get",
                // appliance-key
                "vm-list",
                // appliance-network
                "vm-list",
                "vm-param-get",
                "vm-reboot",
                // stamp
                "vm-list",
                "vm-param-get",
            ]
        );
        let sent: Vec<String> = appliance.commands()[before..]
            .iter()
            .map(|argv| argv.join(" "))
            .collect();
        assert!(
            !sent
                .iter()
                .any(|line| line.starts_with("crontab") || line.starts_with("ssh-keygen")),
            "the key handshake runs once per appliance: {sent:?}"
        );
        let xe = dom0.xe();
        let pifs: Vec<&serde_json::Value> = xe["pifs"].as_object().unwrap().values().collect();
        assert!(
            pifs.iter()
                .any(|pif| pif["VLAN"] == "-1" && pif["mac"] == settings.mac.as_str()),
            "the NIC introduced by this boot's MAC: {xe}"
        );
        dom0_files_after_cycle.push((
            read(&dom0.path("/root/.ssh/authorized_keys")),
            read(&dom0.path("/boot/grub/grub.cfg")),
        ));
    }
    assert_eq!(
        dom0_files_after_cycle[0], dom0_files_after_cycle[1],
        "nothing grows from cycle to cycle"
    );
    let xe = dom0.xe();
    assert!(
        appliance_summary(&xe).contains("reboots 3"),
        "rebooted from dom0 once per dom0 state: {}",
        appliance_summary(&xe)
    );
    let argv: Vec<Vec<String>> = read(&dom0.path("xe.argv"))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        argv.iter()
            .any(|args| args.iter().any(|arg| *arg == format!("name-label={LABEL}"))),
        "the label reached xe as one argument"
    );
    assert_eq!(
        world::outside_the_sandbox(),
        outside_before,
        "the real system was touched"
    );
}

/// A node that has just booted XenServer for the first time, built directly
/// (no START, no installer): what the post-install script leaves in dom0,
/// the Ubuntu partition with the state, config, appliance and kernel.
struct Firstboot {
    /// The Ubuntu root, which dom0 sees at /mnt/ubuntu (kept alive).
    _ubuntu: tempfile::TempDir,
    dom0: Dom0,
    appliance: Appliance,
    config: Config,
}

const FIRST_SETTINGS: &str = r#"{"version": 1, "interface": "eth0", "address": "203.0.113.7",
    "prefix": 24, "netmask": "255.255.255.0", "gateway": "203.0.113.1",
    "mac": "bc:76:4e:20:1a:2b", "nameservers": ["203.0.113.53"]}"#;

impl Firstboot {
    fn new() -> Self {
        Self::with(
            "/opt/xenapi-in-the-cloud",
            LABEL,
            "/var/run/xenserver.ready",
        )
    }

    /// With this install dir (as Ubuntu sees it), label and stamp path.
    fn with(install_dir: &str, label: &str, stamp_path: &str) -> Self {
        let appliance = Appliance::start();
        let ubuntu = tempfile::Builder::new()
            .prefix("xitc-ubuntu-")
            .tempdir()
            .unwrap();
        let u = ubuntu.path();
        let install = u.join(install_dir.trim_start_matches('/'));
        write(&install.join("appliance.xva"), "an appliance");
        write(&install.join("xitc-convert.state"), "XENSERVER_FIRSTBOOT\n");
        // What START recorded for dom0's Ubuntu entry.
        write(
            &install.join("xitc-convert.ubuntu-boot"),
            &format!(
                r#"{{"root_uuid": "{UBUNTU_ROOT_UUID}", "args": "console=tty1 console=ttyS0"}}"#
            ),
        );
        write(&u.join("boot/vmlinuz-6.8.0-31-generic"), "ubuntu kernel");
        write(&u.join("boot/initrd.img-6.8.0-31-generic"), "ubuntu initrd");
        let config = Config {
            appliance_label: label.into(),
            appliance_vcpus: Some(2),
            appliance_user: appliance.user.clone(),
            stamp_path: stamp_path.into(),
            ..world::config(
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
            _ubuntu: ubuntu,
            dom0,
            appliance,
            config,
        }
    }

    fn run(&self) -> anyhow::Result<()> {
        self.dom0.run(&self.config, State::XenserverFirstboot)
    }

    fn log(&self) -> String {
        read(&self.dom0.system.path(&self.dom0.files.log))
    }

    /// The end state, without what differs by design between two nodes
    /// (keys, uuids) or between runs (how often the appliance rebooted).
    fn outcome(&self) -> String {
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
             appliance crontab: {:?}\nappliance logins: {:?}\nstamp: {stamp}\nxenstore: {}\n",
            dom0.state(),
            keyed.trim() == vm,
            dom0_keys.replace(&user_key, "<the appliance user's key>\n"),
            read(&dom0.path("/boot/grub/grub.cfg")),
            read(&appliance.path("/etc/network/interfaces")),
            read(&appliance.path("/root/.ssh/authorized_keys")),
            read(&appliance.path(&format!("var/spool/cron/crontabs/{}", appliance.user))),
            appliance_logins.replace(dom0_public.trim(), "<dom0's key>"),
            read(&dom0.path("xenstore.json")).trim(),
        )
    }

    /// xitc-convert itself, as dom0's boot hook runs it.
    fn convert(&self) -> Command {
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
fn run_to_end(command: &mut Command) -> std::process::Output {
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

#[test]
fn xapi_never_ready_fails_the_state_with_a_clear_log_and_changes_nothing() {
    let node = Firstboot::new();
    std::fs::remove_file(node.dom0.path("/var/run/xapi_init_complete.cookie")).unwrap();
    let error = node.run().unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("xapi did not finish starting within 2s"),
        "{message}"
    );
    assert_eq!(
        xitc_common::exit::kind_of(&error),
        xitc_common::exit::Kind::Failed,
        "exit 1: xitc-convert has no --timeout"
    );
    assert!(
        node.log()
            .contains("wait-xapi failed: xapi did not finish starting")
    );
    assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
    assert!(
        !node.dom0.path("xe.log").exists(),
        "no xe call before xapi is up"
    );
}

#[test]
fn an_appliance_that_never_reports_an_address_fails_the_state() {
    let node = Firstboot::new();
    std::fs::remove_file(node.dom0.path("appliance-ip")).unwrap();
    let error = node.run().unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("reported no address on its device 0 within 3s"),
        "{message}"
    );
    assert_eq!(
        xitc_common::exit::kind_of(&error),
        xitc_common::exit::Kind::Failed
    );
    assert!(node.log().contains("appliance-vm failed"));
    assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
    assert!(node.appliance.commands().is_empty());
}

/// The end state of an uninterrupted XENSERVER_FIRSTBOOT (computed once).
fn clean_outcome() -> &'static str {
    static CLEAN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLEAN.get_or_init(|| {
        let node = Firstboot::new();
        if let Err(error) = node.run() {
            panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
        }
        node.outcome()
    })
}

#[test]
fn an_xe_call_failing_mid_state_fails_it_and_a_rerun_ends_as_a_clean_run() {
    for failing in ["vif-create", "vm-reboot"] {
        let node = Firstboot::new();
        write(&node.dom0.path("xe-fail-once"), failing);
        let error = node.run().unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("xe {failing} ")) && message.contains("injected failure"),
            "{message}"
        );
        assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
        if let Err(error) = node.run() {
            panic!("rerun after {failing} failed: {error:#}");
        }
        assert_eq!(
            node.outcome(),
            clean_outcome(),
            "after {failing} failed once"
        );
    }
}

/// Kills xitc-convert (the real binary, SIGKILL) at the first external
/// program of `step`, reruns it, and expects the end of a clean run.
fn killed_at(step: &str) {
    let node = Firstboot::new();
    // XenServer 6.x has interface-reconfigure (here a stand-in in its
    // libexec): its step then has a program to be killed at.
    script(
        &node
            .dom0
            .path("/opt/xensource/libexec/interface-reconfigure"),
        &format!("{KILL_PRELUDE}\necho \"$*\" >> \"$XITC_ROOT/interface-reconfigure.log\""),
    );
    let log = node.dom0.system.path(&node.dom0.files.log);
    let output = run_to_end(
        node.convert()
            .env("XITC_TEST_KILL_POINT", stand_ins().join("kill-point"))
            .env("XITC_TEST_KILL_STEP", step)
            .env("XITC_TEST_LOG", &log),
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&output.status),
        Some(9),
        "{step}: not killed; {}",
        node.log()
    );
    assert_eq!(read(&node.dom0.path("killed")).trim(), step);
    let output = run_to_end(&mut node.convert());
    assert!(
        output.status.success(),
        "{step}: the rerun failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        node.log()
    );
    assert_eq!(
        read(&node.dom0.path("interface-reconfigure.log"))
            .lines()
            .last(),
        Some("rewrite")
    );
    assert_eq!(node.outcome(), clean_outcome(), "killed at {step}");
}

#[test]
fn killed_at_forget_networking() {
    killed_at("forget-networking");
}

#[test]
fn killed_at_appliance_vm() {
    killed_at("appliance-vm");
}

#[test]
fn killed_at_appliance_key() {
    killed_at("appliance-key");
}

#[test]
fn killed_at_appliance_network() {
    killed_at("appliance-network");
}

#[test]
fn killed_at_interface_reconfigure() {
    killed_at("interface-reconfigure");
}

#[test]
fn killed_at_ubuntu_boot_entry() {
    killed_at("ubuntu-boot-entry");
}

#[test]
fn killed_at_boot_ubuntu_next() {
    killed_at("boot-ubuntu-next");
}

#[test]
fn killed_at_stamp_the_stamp_is_touched_by_the_rerun() {
    killed_at("stamp");
}

#[test]
fn every_step_of_firstboot_has_a_kill_test() {
    let names: Vec<&str> = bin_convert::plan::steps(State::XenserverFirstboot)
        .iter()
        .chain(bin_convert::plan::after_recording(
            State::XenserverFirstboot,
        ))
        .map(|step| step.name)
        .collect();
    // wait-xapi runs no program: a kill there is a kill before anything.
    assert_eq!(
        names,
        [
            "wait-xapi",
            "forget-networking",
            "appliance-vm",
            "appliance-key",
            "appliance-network",
            "interface-reconfigure",
            "ubuntu-boot-entry",
            "boot-ubuntu-next",
            "stamp"
        ],
        "a new step needs its killed_at test"
    );
}

#[test]
fn hostile_values_reach_xe_and_the_appliance_as_single_arguments() {
    let install = "/opt/my xitc; it's";
    let stamp = "/var/run/x y;'z' $(id).ready";
    let node = Firstboot::with(install, LABEL, stamp);
    // An appliance with netplan gets its settings there.
    std::fs::create_dir_all(node.appliance.path("/etc/netplan")).unwrap();
    if let Err(error) = node.run() {
        panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
    }
    let argv: Vec<Vec<String>> = read(&node.dom0.path("xe.argv"))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let import = argv.iter().find(|args| args[0] == "vm-import").unwrap();
    assert_eq!(
        import[1..],
        [format!("filename=/mnt/ubuntu{install}/appliance.xva")]
    );
    assert!(
        argv.iter()
            .any(|args| args[0] == "vm-param-set" && args[2] == format!("name-label={LABEL}"))
    );
    assert!(
        node.appliance.path(stamp).is_file(),
        "the stamp, by its exact name"
    );
    assert!(node.appliance.commands().contains(&vec![
        "sudo".to_owned(),
        "touch".to_owned(),
        stamp.to_owned()
    ]));
    let netplan = read(&node.appliance.path(bin_convert::shared::appliance::NETPLAN));
    assert!(netplan.contains("203.0.113.7/24"), "{netplan}");
    assert!(!node.appliance.path("/etc/network/interfaces").exists());

    // Any value, through SSH to the appliance's shell, arrives as one argument.
    let shell = bin_convert::appliance_ssh::Shell::new(
        &node.dom0.system,
        &node.config.appliance_user,
        "127.0.0.1",
    );
    let values = [
        "two words",
        "it's",
        "\"double\"",
        "a;b",
        "$(id)",
        "`id`",
        "a|b && c",
        "*",
        "-rf",
        "~root",
        "back\\slash",
        "tab\there",
        "new\nline",
        "ünïcödé",
        "",
    ];
    for value in values {
        let _ = shell.run(&["test", "-f", value], "");
        let last = node.appliance.commands().pop().unwrap();
        assert_eq!(last, ["test", "-f", value], "{value:?}");
    }
}
