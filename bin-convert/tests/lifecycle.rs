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

#[test]
fn dom0s_first_boot_retires_the_fstab_lines_of_the_deleted_partitions() {
    let node = Firstboot::new();
    if let Err(error) = node.run() {
        panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
    }
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
