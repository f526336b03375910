//! The whole life of a node, in the sandbox (ARCHITECTURE.md: START →
//! SETUP_INSTALLER → XENSERVER_FIRSTBOOT → UBUNTU → XENSERVER → UBUNTU →
//! XENSERVER), with a move to a new address and MAC between the cycles.
//! The node and what plays its three systems: node/mod.rs.

use bin_convert::settings::CloudSettings;
use bin_convert::state::State;

mod node;
mod world;
use node::*;

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
            // stop-appliance: there is none yet
            "vm-list",
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
        // No import, no key handshake (its dom-id is not asked for). The
        // appliance still runs here (the sandbox's host boot halts no VM):
        // it is shut down before its networks are replaced.
        assert_eq!(
            dom0.take_xe_calls(),
            [
                // stop-appliance
                "vm-list",
                "vm-param-get",
                "vm-shutdown",
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

#[test]
fn dom0s_first_boot_retires_the_fstab_lines_of_the_deleted_partitions() {
    let node = converted();
    assert_eq!(
        read(&node.ubuntu.path().join("etc/fstab")),
        "LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n\
         # xitc-convert: its partition is deleted by the installer: \
         LABEL=UEFI\t/boot/efi\tvfat\tumask=0077,nofail\t0 1\n"
    );
    assert!(
        node.log().contains(
            "Ubuntu's fstab: /boot/efi commented out: the installer deleted their partitions"
        ),
        "{}",
        node.log()
    );
}

/// A node through XENSERVER_FIRSTBOOT: state UBUNTU, the appliance running,
/// the stamp touched.
fn converted() -> Firstboot {
    let node = Firstboot::new();
    if let Err(error) = node.run() {
        panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
    }
    node
}

/// dom0 boots again without Ubuntu in between (the boot-loader switch failed,
/// or someone booted dom0 by hand): the state is UBUNTU, GRUB's default is
/// XenServer's, and the host boot has halted the appliance and emptied its
/// /var/run (the stamp is gone).
fn boot_dom0_again_without_ubuntu(node: &Firstboot) {
    let mut xe = node.dom0.xe();
    for vm in xe["vms"].as_object_mut().unwrap().values_mut() {
        vm["power"] = "halted".into();
    }
    std::fs::write(node.dom0.path("xe.json"), xe.to_string()).unwrap();
    std::fs::remove_file(node.appliance.path(&node.config.stamp_path)).unwrap();
    let grub = node.dom0.path("/boot/grub/grub.cfg");
    let text = read(&grub).replace("set default=\"Ubuntu (xitc-convert)\"", "set default=0");
    std::fs::write(&grub, text).unwrap();
    assert_eq!(node.dom0.state(), "UBUNTU\n");
}

fn run_in_state_ubuntu(node: &Firstboot) {
    if let Err(error) = node.dom0.run(&node.config, State::Ubuntu) {
        panic!("dom0 in state UBUNTU failed: {error:#}\n{}", node.log());
    }
}

fn appliance_power(node: &Firstboot) -> String {
    let xe = node.dom0.xe();
    let vms = xe["vms"].as_object().unwrap();
    assert_eq!(vms.len(), 1, "{xe}");
    vms.values().next().unwrap()["power"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_dom0_boot_in_state_ubuntu_starts_the_appliance_with_the_saved_settings() {
    let node = converted();
    let converted = node.outcome();
    boot_dom0_again_without_ubuntu(&node);
    run_in_state_ubuntu(&node);
    let log = node.log();
    assert!(
        log.contains(
            "state UBUNTU in dom0, the appliance not running: dom0 booted again without Ubuntu"
        ),
        "{log}"
    );
    assert_eq!(appliance_power(&node), "running");
    // Everything as the conversion left it: the appliance on the saved
    // settings, the stamp touched, Ubuntu the next boot, the state UBUNTU.
    assert_eq!(node.outcome(), converted);
}

#[test]
fn a_dom0_boot_in_state_ubuntu_without_settings_bounces_again() {
    let node = converted();
    boot_dom0_again_without_ubuntu(&node);
    std::fs::remove_file(node.dom0.path("/root/cloud-settings.json")).unwrap();
    world::script(
        &node.dom0.path("stand-ins/reboot"),
        "echo reboot >> \"$XITC_ROOT/reboots\"",
    );
    run_in_state_ubuntu(&node);
    let log = node.log();
    assert!(
        log.contains("the appliance not running, and no network settings to start it with"),
        "{log}"
    );
    assert_eq!(read(&node.dom0.path("reboots")), "reboot\n");
    assert_eq!(appliance_power(&node), "halted");
    assert!(!node.appliance.path(&node.config.stamp_path).exists());
    assert!(
        read(&node.dom0.path("/boot/grub/grub.cfg"))
            .contains("set default=\"Ubuntu (xitc-convert)\"\n")
    );
    assert_eq!(node.dom0.state(), "UBUNTU\n");
}

#[test]
fn a_dom0_state_cut_short_before_its_stamp_only_touches_the_stamp_again() {
    let node = converted();
    // The run ended after recording UBUNTU, before the stamp: the appliance
    // still runs (same boot).
    std::fs::remove_file(node.appliance.path(&node.config.stamp_path)).unwrap();
    node.dom0.take_xe_calls();
    run_in_state_ubuntu(&node);
    assert!(node.log().contains("with the appliance running"));
    assert!(node.appliance.path(&node.config.stamp_path).is_file());
    // Nothing was reconfigured: only looked up.
    let calls = node.dom0.take_xe_calls();
    assert!(
        calls
            .iter()
            .all(|call| call == "vm-list" || call == "vm-param-get"),
        "{calls:?}"
    );
}
