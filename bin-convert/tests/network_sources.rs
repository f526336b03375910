//! The network sources without the bounce, in the sandbox: START and
//! SETUP_INSTALLER as the lifecycle runs them, the installer's post-install
//! script, then dom0's boots, with no Ubuntu boot between them. The direct
//! mode (`--mode direct`: xapi at the cloud's address, no appliance) and the
//! appliance mode with the network from the config drive or DHCP. The
//! network from DHCP and from a config drive (real images: iso9660 by
//! xorriso, vfat by mtools), a snapshot's new MAC and address, a pool without
//! its default SR yet. The node and its stand-ins: node/mod.rs (the `xe`
//! stand-in keeps xapi's rules on PIFs).

use std::path::Path;

use bin_convert::config::{Mode, NetworkSource};
use bin_convert::config_drive;
use bin_convert::state::State;
use bin_convert::system::System;

mod node;
mod world;
use node::*;
use world::{DriveFormat, StartWorld, config_drive_image, script, static_network_data, write};

/// Ubuntu's NIC in the node fixture (world/node.rs), which the installer
/// makes dom0's eth0.
const NODE_MAC: &str = "bc:76:4e:20:1a:2b";
/// A snapshot of the node booted elsewhere.
const NEW_MAC: &str = "fa:16:3e:00:00:07";
const STAMP: &str = "/var/run/xenserver.ready";

/// Ubuntu's address came by DHCP: systemd-networkd's lease of eth0.
fn dhcp_lease(root: &Path) {
    write(&root.join("sys/class/net/eth0/ifindex"), "2\n");
    write(
        &root.join("run/systemd/netif/leases/2"),
        "# This is private data. Do not parse.\nADDRESS=203.0.171.17\n",
    );
}

/// The first run's config in the direct mode: no appliance.
fn direct(world: &mut StartWorld) {
    world.config.mode = Mode::Direct;
    world.config.network = NetworkSource::Auto;
    world.config.appliance_url.clear();
    world.config.appliance_label.clear();
    world.config.appliance_sha256 = None;
}

/// A config drive at `/dev/sr0` of the system under `root`, listed by its
/// `lsblk` (both the Ubuntu and the dom0 fixtures list `lsblk.out`).
fn insert_drive(root: &Path, format: DriveFormat, label: &str, network_data: Option<&str>) {
    config_drive_image(&root.join("dev/sr0"), format, label, network_data);
    let listing = root.join("lsblk.out");
    let mut lines: Vec<String> = std::fs::read_to_string(&listing)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.starts_with("sr0 "))
        .map(str::to_owned)
        .collect();
    let fs_type = match format {
        DriveFormat::Iso9660 => "iso9660",
        DriveFormat::Vfat => "vfat",
    };
    lines.push(format!("sr0 2026-12-03-06-00-00-00  {label} {fs_type}"));
    write(&listing, &(lines.join("\n") + "\n"));
}

/// The config drive of the node as it was converted: an iso9660 drive with
/// its own MAC and address (as Nova makes it).
fn insert_the_nodes_drive(root: &Path) {
    insert_drive(
        root,
        DriveFormat::Iso9660,
        "config-2",
        Some(&static_network_data(
            NODE_MAC,
            "203.0.171.17",
            "203.0.171.1",
        )),
    );
}

fn eject_drive(root: &Path) {
    std::fs::remove_file(root.join("dev/sr0")).unwrap();
    write(&root.join("lsblk.out"), "xvda3 u3 p3 root-vgdorj ext3\n");
}

/// dom0 as the installer left it: eth0 with the node's MAC, its PIF the
/// management interface (xapi's database from the install), lsblk.
fn boot_dom0(node: &Node) {
    let dom0 = &node.dom0;
    write(
        &dom0.path("/sys/class/net/eth0/address"),
        "BC:76:4E:20:1A:2B\n",
    );
    if !dom0.path("lsblk.out").exists() {
        write(&dom0.path("lsblk.out"), "xvda3 u3 p3 root-vgdorj ext3\n");
    }
    script(
        &dom0.path("stand-ins/lsblk"),
        "cat \"$XITC_ROOT/lsblk.out\"",
    );
    dom0.system.run("xe", &["host-list"]).unwrap();
    let mut xe = dom0.xe();
    xe["pifs"]["pif-orig"]["mac"] = NODE_MAC.into();
    std::fs::write(dom0.path("xe.json"), xe.to_string()).unwrap();
    dom0.take_xe_calls();
}

/// A snapshot of the node booted elsewhere: a new MAC, and a config drive
/// (vfat this time, its label in capitals) with a new address for it.
fn snapshot_elsewhere_with_a_vfat_drive(dom0: &Dom0) {
    write(
        &dom0.path("/sys/class/net/eth0/address"),
        "FA:16:3E:00:00:07\n",
    );
    insert_drive(
        dom0.root.path(),
        DriveFormat::Vfat,
        "CONFIG-2",
        Some(&static_network_data(
            NEW_MAC,
            "198.51.100.20",
            "198.51.100.1",
        )),
    );
}

fn management_pif(dom0: &Dom0) -> serde_json::Value {
    let xe = dom0.xe();
    let uuid = xe["management"]
        .as_str()
        .expect("a management PIF")
        .to_owned();
    xe["pifs"][&uuid].clone()
}

fn answerfile(node: &Node) -> String {
    read(
        &node
            .ubuntu
            .system
            .path(node.ubuntu.files.xsinst.join("answerfile.xml")),
    )
}

fn log(node: &Node) -> String {
    read(
        &node
            .ubuntu_root()
            .join("opt/xenapi-in-the-cloud/xitc-convert.log"),
    )
}

#[test]
fn a_direct_node_on_dhcp_stays_in_dom0_across_boots_and_a_move() {
    let node = Node::installed_with(|world| {
        direct(world);
        dhcp_lease(world.sandbox.root.path());
        // A CPU without vmx/svm: START says what that means here.
        write(
            &world.sandbox.root.path().join("proc/cpuinfo"),
            "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse2 hypervisor\n",
        );
    });
    assert!(
        log(&node).contains(
            "warning: no hardware virtualization (vmx/svm): in the direct mode xapi will \
             answer, but no HVM guest will start on this host"
        ),
        "{}",
        log(&node)
    );
    let config = node.saved_config();
    assert_eq!(config.mode, Mode::Direct);
    assert_eq!(
        config.network,
        NetworkSource::Dhcp,
        "auto: no drive, a DHCP lease"
    );
    assert!(
        answerfile(&node).contains("<admin-interface name=\"eth0\" proto=\"dhcp\"/>"),
        "{}",
        answerfile(&node)
    );
    assert!(
        !node.ubuntu.system.exists(&node.ubuntu.files.appliance_xva),
        "the direct mode downloads no appliance"
    );
    assert!(log(&node).contains("mode direct; network source dhcp"));

    let dom0 = &node.dom0;
    boot_dom0(&node);
    dom0.run(&config, State::XenserverFirstboot)
        .unwrap_or_else(|error| panic!("XENSERVER_FIRSTBOOT: {error:#}\n{}", log(&node)));
    assert_eq!(dom0.state(), "XENSERVER\n");
    assert!(dom0.path(STAMP).is_file(), "the stamp in dom0");
    assert_eq!(
        dom0.take_xe_calls(),
        [
            // management: the installed PIF has this boot's MAC; DHCP asked
            "pif-list",
            "pif-param-get",
            "pif-param-get",
            "pif-param-get",
            "pif-param-get",
            "pif-param-get",
            "pif-param-get",
            "pif-reconfigure-ip",
            "pif-list",
            // wait-ready
            "host-list",
            "pool-list",
            "sr-list",
        ]
    );
    assert_eq!(management_pif(dom0)["mode"], "DHCP");
    assert!(node.appliance.commands().is_empty(), "no appliance");

    // The next boot finds everything as it should be.
    std::fs::remove_file(dom0.path(STAMP)).unwrap();
    dom0.run(&config, State::Xenserver).unwrap();
    assert_eq!(dom0.state(), "XENSERVER\n");
    assert!(dom0.path(STAMP).is_file());
    let calls = dom0.take_xe_calls();
    assert!(
        !calls.iter().any(|call| call.contains("reconfigure")),
        "{calls:?}"
    );

    // A snapshot boots elsewhere: a new MAC, and the pool's default SR not
    // there yet. Not ready: no stamp (the old one is cleared), the state kept.
    write(
        &dom0.path("/sys/class/net/eth0/address"),
        "FA:16:3E:00:00:07\n",
    );
    write(&dom0.path("xe-no-default-sr"), "");
    let error = dom0.run(&config, State::Xenserver).unwrap_err();
    assert!(
        format!("{error:#}").contains("the pool has no default SR yet"),
        "{error:#}"
    );
    assert!(
        !dom0.path(STAMP).exists(),
        "a stale stamp must not say ready"
    );
    assert_eq!(dom0.state(), "XENSERVER\n");
    std::fs::remove_file(dom0.path("xe-no-default-sr")).unwrap();
    dom0.run(&config, State::Xenserver).unwrap();
    assert!(dom0.path(STAMP).is_file());
    let pif = management_pif(dom0);
    assert_eq!(pif["mac"], NEW_MAC);
    assert_eq!(pif["device"], "eth0");
    assert_eq!(pif["mode"], "DHCP");
    assert!(
        dom0.xe()["pifs"].get("pif-orig").is_none(),
        "the old MAC's PIF is forgotten"
    );
    assert!(
        log(&node).contains("introducing eth0 again"),
        "{}",
        log(&node)
    );
}

#[test]
fn a_direct_node_takes_its_address_from_the_config_drive_and_follows_it() {
    let node = Node::installed_with(|world| {
        direct(world);
        // The MAC in capitals: links are matched to the NIC in any case.
        insert_drive(
            world.sandbox.root.path(),
            DriveFormat::Iso9660,
            "config-2",
            Some(&static_network_data(
                "BC:76:4E:20:1A:2B",
                "203.0.171.17",
                "203.0.171.1",
            )),
        );
    });
    let config = node.saved_config();
    assert_eq!(
        config.network,
        NetworkSource::ConfigDrive,
        "auto with a drive"
    );
    assert!(
        !log(&node).contains("warning: no hardware virtualization"),
        "vmx is there"
    );
    let answers = answerfile(&node);
    for line in [
        "<admin-interface name=\"eth0\" proto=\"static\">",
        "<ipaddr>203.0.171.17</ipaddr>",
        "<subnet>255.255.255.0</subnet>",
        "<gateway>203.0.171.1</gateway>",
        "<nameserver>203.0.113.53</nameserver>",
    ] {
        assert!(answers.contains(line), "{line} in {answers}");
    }

    let dom0 = &node.dom0;
    insert_the_nodes_drive(dom0.root.path());
    boot_dom0(&node);
    dom0.run(&config, State::XenserverFirstboot).unwrap();
    assert!(dom0.path(STAMP).is_file());
    let pif = management_pif(dom0);
    assert_eq!(
        (
            pif["mode"].as_str(),
            pif["IP"].as_str(),
            pif["netmask"].as_str()
        ),
        (Some("Static"), Some("203.0.171.17"), Some("255.255.255.0"))
    );
    assert_eq!(pif["gateway"], "203.0.171.1");
    assert_eq!(pif["DNS"], "203.0.113.53");

    // A snapshot elsewhere: a new MAC and address, on a vfat drive this time.
    snapshot_elsewhere_with_a_vfat_drive(dom0);
    dom0.run(&config, State::Xenserver).unwrap();
    let pif = management_pif(dom0);
    assert_eq!(pif["mac"], NEW_MAC);
    assert_eq!(
        (
            pif["mode"].as_str(),
            pif["IP"].as_str(),
            pif["gateway"].as_str()
        ),
        (Some("Static"), Some("198.51.100.20"), Some("198.51.100.1"))
    );

    // The drive gone: dom0 keeps its settings, and is not declared ready.
    eject_drive(dom0.root.path());
    let error = dom0.run(&config, State::Xenserver).unwrap_err();
    assert!(
        format!("{error:#}").contains("no drive labelled config-2"),
        "{error:#}"
    );
    assert!(!dom0.path(STAMP).exists());
    assert_eq!(management_pif(dom0)["IP"], "198.51.100.20");
}

/// `--network config-drive` asks for the drive: without one (or with one
/// that does not describe the NIC) START refuses before any change. So does
/// the direct mode's `auto` with neither a drive nor a DHCP lease: dom0
/// would come up with no address.
#[test]
fn a_network_source_that_is_not_there_is_refused_before_any_change() {
    let elsewhere = static_network_data("02:00:00:00:00:01", "203.0.171.17", "203.0.171.1");
    for (network, drive, expected) in [
        (
            NetworkSource::ConfigDrive,
            None,
            "no drive labelled config-2",
        ),
        (
            NetworkSource::ConfigDrive,
            Some(elsewhere.clone()),
            "has no link with the MAC bc:76:4e:20:1a:2b",
        ),
        (
            NetworkSource::Auto,
            None,
            "the direct mode needs dom0's network from a config drive or DHCP",
        ),
        (
            NetworkSource::Auto,
            Some(elsewhere),
            "has no link with the MAC bc:76:4e:20:1a:2b, and eth0 has no DHCP lease",
        ),
    ] {
        let nginx = xitc_test_support::Nginx::start();
        let scratch = tempfile::tempdir().unwrap();
        let (iso, xva) = world::serve_installer(&nginx, scratch.path());
        let mut world = StartWorld::new(&nginx, &iso, &xva);
        direct(&mut world);
        world.config.network = network;
        if let Some(json) = &drive {
            insert_drive(
                world.sandbox.root.path(),
                DriveFormat::Iso9660,
                "config-2",
                Some(json),
            );
        }
        let before = world.sandbox.tree();
        let error = bin_convert::runner::run_state(
            &world.system,
            &world.files,
            &world.config,
            State::Start,
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains(expected), "{error:#}");
        assert!(
            format!("{error:#}").contains("nothing was changed"),
            "{error:#}"
        );
        let after = world.sandbox.tree();
        let changed: Vec<_> = after
            .keys()
            .filter(|path| before.get(*path) != after.get(*path))
            .filter(|path| {
                !path.to_string_lossy().ends_with(".log")
                    && !path.to_string_lossy().ends_with(".lock")
            })
            .collect();
        assert!(changed.is_empty(), "{changed:?}");
    }
}

/// The drive is read, never written: both formats, labels in either case, a
/// drive without network data (Nova before 2015), and a device that is no
/// drive at all.
#[test]
fn config_drives_are_read_without_a_mount_and_left_as_they_were() {
    let json = static_network_data(NODE_MAC, "203.0.171.17", "203.0.171.1");
    for (format, label) in [
        (DriveFormat::Iso9660, "config-2"),
        (DriveFormat::Vfat, "config-2"),
        (DriveFormat::Vfat, "CONFIG-2"),
    ] {
        let root = tempfile::tempdir().unwrap();
        insert_drive(root.path(), format, label, Some(&json));
        let bin = root.path().join("stand-ins");
        script(&bin.join("lsblk"), "cat \"$XITC_ROOT/lsblk.out\"");
        let system =
            System::new(Some(root.path().to_path_buf())).with_search_path(world::path_with(&bin));
        let image = std::fs::read(root.path().join("dev/sr0")).unwrap();
        let (device, found) = config_drive::for_nic(&system, NODE_MAC)
            .unwrap()
            .unwrap_or_else(|| panic!("{format:?} {label}: no drive found"));
        assert_eq!(device, "/dev/sr0");
        assert_eq!(
            found.describe(),
            "203.0.171.17/24 via 203.0.171.1 on bc:76:4e:20:1a:2b, name servers 203.0.113.53"
        );
        assert_eq!(
            std::fs::read(root.path().join("dev/sr0")).unwrap(),
            image,
            "{format:?}"
        );

        insert_drive(root.path(), format, label, None);
        assert!(config_drive::for_nic(&system, NODE_MAC).unwrap().is_none());

        std::fs::write(root.path().join("dev/sr0"), vec![0x5a; 1 << 16]).unwrap();
        let error = config_drive::for_nic(&system, NODE_MAC).unwrap_err();
        assert!(
            format!("{error:#}").contains("is neither iso9660 nor vfat"),
            "{error:#}"
        );
    }
}

/// The appliance mode with the config drive as its source: dom0 configures
/// the appliance from the drive on every boot, and the node never bounces
/// through Ubuntu; a snapshot's new MAC and address reach the appliance.
#[test]
fn the_appliance_takes_the_config_drive_network_on_every_boot_without_a_bounce() {
    let node = Node::installed_with(|world| {
        world.config.network = NetworkSource::Auto;
        insert_the_nodes_drive(world.sandbox.root.path());
    });
    let config = node.saved_config();
    assert_eq!(
        (config.mode, config.network),
        (Mode::Appliance, NetworkSource::ConfigDrive)
    );
    assert!(
        answerfile(&node).contains("<ipaddr>192.168.34.2</ipaddr>"),
        "the appliance mode installs dom0 on its temporary address"
    );
    let dom0 = &node.dom0;
    insert_the_nodes_drive(dom0.root.path());
    boot_dom0(&node);
    dom0.run(&config, State::XenserverFirstboot)
        .unwrap_or_else(|error| panic!("XENSERVER_FIRSTBOOT: {error:#}\n{}", log(&node)));
    assert_eq!(dom0.state(), "XENSERVER\n", "no bounce: dom0 stays");
    let appliance = &node.appliance;
    assert!(
        appliance.path(STAMP).is_file(),
        "the stamp on the appliance"
    );
    let interfaces = read(&appliance.path("/etc/network/interfaces"));
    assert!(
        interfaces.contains(
            "iface eth1 inet static\n    address 203.0.171.17\n    netmask 255.255.255.0\n    \
             gateway 203.0.171.1\n    dns-nameservers 203.0.113.53\n"
        ),
        "{interfaces}"
    );
    let summary = appliance_summary(&dom0.xe());
    assert!(
        summary.contains(&format!(
            "1 Pool-wide network associated with eth0 {NODE_MAC}"
        )),
        "{summary}"
    );
    assert_eq!(
        read(&dom0.path("/boot/grub/grub.cfg")),
        XCPNG_GRUB,
        "no Ubuntu entry"
    );
    assert!(
        !log(&node).contains("XENSERVER_FIRSTBOOT: ubuntu-"),
        "no Ubuntu step: {}",
        log(&node)
    );

    // A snapshot elsewhere: a new MAC, a new address on a vfat drive.
    std::fs::remove_file(appliance.path(STAMP)).unwrap();
    snapshot_elsewhere_with_a_vfat_drive(dom0);
    dom0.run(&config, State::Xenserver).unwrap();
    assert_eq!(dom0.state(), "XENSERVER\n");
    assert!(appliance.path(STAMP).is_file());
    let interfaces = read(&appliance.path("/etc/network/interfaces"));
    assert!(
        interfaces.contains("address 198.51.100.20\n"),
        "{interfaces}"
    );
    let summary = appliance_summary(&dom0.xe());
    assert!(
        summary.contains(&format!(
            "1 Pool-wide network associated with eth0 {NEW_MAC}"
        )),
        "{summary}"
    );
}

/// The appliance mode on a DHCP cloud (START saw a lease): the appliance's
/// cloud NIC asks the cloud's DHCP, which answers the node's MAC; no bounce.
#[test]
fn the_appliance_asks_the_clouds_dhcp_without_a_bounce() {
    let node = Node::installed_with(|world| {
        world.config.network = NetworkSource::Auto;
        dhcp_lease(world.sandbox.root.path());
    });
    let config = node.saved_config();
    assert_eq!(
        (config.mode, config.network),
        (Mode::Appliance, NetworkSource::Dhcp)
    );
    let dom0 = &node.dom0;
    boot_dom0(&node);
    dom0.run(&config, State::XenserverFirstboot)
        .unwrap_or_else(|error| panic!("XENSERVER_FIRSTBOOT: {error:#}\n{}", log(&node)));
    assert_eq!(dom0.state(), "XENSERVER\n");
    let interfaces = read(&node.appliance.path("/etc/network/interfaces"));
    assert!(
        interfaces.contains("auto eth1\niface eth1 inet dhcp\n"),
        "{interfaces}"
    );
    assert!(node.appliance.path(STAMP).is_file());
    assert!(
        log(&node).contains(&format!(
            "applying the cloud's network settings (dhcp): DHCP, MAC {NODE_MAC}"
        )),
        "{}",
        log(&node)
    );
}

/// The direct mode's management step fails half-way (an `xe` call fails
/// once: after the old PIF is forgotten, before the new one is configured,
/// before management moves): the state stays, no stamp says ready, and the
/// rerun ends as a clean run does.
#[test]
fn a_management_step_cut_short_anywhere_ends_as_a_clean_run_when_rerun() {
    let end_state = |node: &Node| {
        let pif = management_pif(&node.dom0);
        (
            node.dom0.state(),
            node.dom0.path(STAMP).is_file(),
            pif["device"].clone(),
            pif["mac"].clone(),
            pif["mode"].clone(),
            node.dom0.xe()["pifs"].as_object().unwrap().len(),
        )
    };
    let installed = || {
        let node = Node::installed_with(|world| {
            direct(world);
            dhcp_lease(world.sandbox.root.path());
        });
        boot_dom0(&node);
        // A snapshot's first boot: the management PIF must be made again.
        write(
            &node.dom0.path("/sys/class/net/eth0/address"),
            "FA:16:3E:00:00:07\n",
        );
        node
    };
    let clean = installed();
    let config = clean.saved_config();
    clean.dom0.run(&config, State::XenserverFirstboot).unwrap();
    let expected = end_state(&clean);
    assert_eq!(expected.3, NEW_MAC);
    for failing in [
        "host-management-disable",
        "pif-forget",
        "pif-introduce",
        "pif-reconfigure-ip",
        "host-management-reconfigure",
    ] {
        let node = installed();
        write(&node.dom0.path("xe-fail-once"), failing);
        let error = node
            .dom0
            .run(&config, State::XenserverFirstboot)
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("injected failure"),
            "{failing}: {error:#}"
        );
        assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n", "{failing}");
        assert!(!node.dom0.path(STAMP).exists(), "{failing}: not ready");
        node.dom0
            .run(&config, State::XenserverFirstboot)
            .unwrap_or_else(|error| panic!("{failing}: the rerun failed: {error:#}"));
        assert_eq!(end_state(&node), expected, "after {failing} failed once");
    }
}
