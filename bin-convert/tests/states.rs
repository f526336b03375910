//! A state and a dom0 step alone in the sandbox: UBUNTU handing the cloud's
//! settings to dom0 and booting XenServer, and forget-networking putting dom0
//! on VLAN 100, the same when repeated.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use bin_convert::system::System;

mod world;
use world::*;

#[test]
fn the_ubuntu_state_hands_the_cloud_settings_to_dom0_and_boots_xenserver() {
    ubuntu_state_on(false);
}

/// A dom0 installed by UEFI keeps its GRUB on its own ESP (vfat `BOOT-…`,
/// host-installer's label), mounted at /boot/efi in dom0: Ubuntu mounts it
/// there too, and switches that grub.cfg.
#[test]
fn the_ubuntu_state_switches_a_uefi_dom0s_grub_on_its_esp() {
    ubuntu_state_on(true);
}

fn ubuntu_state_on(uefi: bool) {
    use bin_convert::state::State;
    let sandbox = Sandbox::new();
    let root = sandbox.root.path().to_path_buf();
    let bin = node_fixture(&sandbox, "ext4", 1);
    recording_stand_ins(&bin);
    let record = "echo \"$(basename \"$0\") $*\" >> \"$XITC_ROOT/commands.log\"";
    for (name, body) in [
        ("mountpoint", format!("{record}\nexit 1")),
        (
            "lsblk",
            format!(
                "printf 'xvda    \\nxvda1 u1 p1 cloudimg-rootfs ext4\\nxvda2 u2 p2 root-vgdorj ext3\\n{}'",
                if uefi {
                    "xvda5 u5 p5 BOOT-VGDORJ vfat\\n"
                } else {
                    ""
                }
            ),
        ),
        ("mount", record.to_owned()),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(root.join("root/.ssh")).unwrap();
    std::fs::write(
        root.join("root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA new@laptop\n",
    )
    .unwrap();
    // dom0's root as Ubuntu sees it once mounted, after a first dom0 boot.
    let grub = "set default=0\nmenuentry 'XCP-ng' {\n\tmultiboot2 /boot/xen.gz\n}\n";
    let dom0_grub = root.join(if uefi {
        "mnt/dom0/boot/efi/EFI/xenserver/grub.cfg"
    } else {
        "mnt/dom0/boot/grub/grub.cfg"
    });
    std::fs::create_dir_all(dom0_grub.parent().unwrap()).unwrap();
    let with_ubuntu = bin_convert::bootloader::grub_default(
        &bin_convert::bootloader::grub_add(
            grub,
            &bin_convert::bootloader::UbuntuEntry {
                kernel: "/boot/vmlinuz-ubuntu".into(),
                initrd: "/boot/initrd-ubuntu".into(),
                ubuntu: bin_convert::bootloader::UbuntuBoot {
                    root_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".into(),
                    args: "console=ttyS0".into(),
                },
                files_uuid: Some("5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b".into()),
            },
        )
        .unwrap(),
        true,
    )
    .unwrap();
    std::fs::write(&dom0_grub, &with_ubuntu).unwrap();
    let config = sandbox.save_config();
    let system = System::new(Some(root.clone())).with_search_path(path_with(&bin));
    let files = bin_convert::paths::Files::new(PathBuf::from(INSTALL));
    if let Err(error) = bin_convert::runner::run_state(&system, &files, &config, State::Ubuntu) {
        panic!("UBUNTU failed: {error:#}");
    }
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    assert_eq!(
        read(&format!(
            "{}/xitc-convert.state",
            INSTALL.trim_start_matches('/')
        )),
        "XENSERVER\n"
    );
    let esp_mount = if uefi {
        "mountpoint -q /mnt/dom0/boot/efi\nmount /dev/xvda5 /mnt/dom0/boot/efi\n"
    } else {
        ""
    };
    assert_eq!(
        read("commands.log"),
        format!(
            "mountpoint -q /mnt/dom0\nmount /dev/xvda2 /mnt/dom0\n{esp_mount}\
             debconf-set-selections \nsync \nreboot \n"
        )
    );
    // Ubuntu's GRUB packages stay off dom0's boot sector.
    assert_eq!(
        read("debconf.selections"),
        bin_convert::steps::ubuntu::KEEP_OFF_THE_BOOT_SECTOR
    );
    let settings =
        bin_convert::settings::CloudSettings::from_json(&read("mnt/dom0/root/cloud-settings.json"))
            .unwrap();
    assert_eq!(settings.address.to_string(), "203.0.171.17");
    assert_eq!(
        read("mnt/dom0/root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA new@laptop\n"
    );
    let flipped = std::fs::read_to_string(&dom0_grub).unwrap();
    assert!(flipped.contains("set default=0\n"), "{flipped}");
    assert_eq!(
        flipped.matches("menuentry 'Ubuntu (xitc-convert)'").count(),
        1
    );
}

#[test]
fn forget_networking_puts_dom0_on_vlan_100_and_ends_the_same_when_repeated() {
    let sandbox = Sandbox::new();
    let root = sandbox.root.path().to_path_buf();
    let config = sandbox.save_config();
    let settings = bin_convert::settings::CloudSettings {
        version: 1,
        interface: "eth0".into(),
        address: "203.0.113.7".parse().unwrap(),
        prefix: 24,
        netmask: "255.255.255.0".parse().unwrap(),
        gateway: "203.0.113.1".parse().unwrap(),
        mac: "bc:76:4e:20:1a:2b".into(),
        nameservers: vec!["203.0.113.53".parse().unwrap()],
    };
    std::fs::create_dir_all(root.join("root")).unwrap();
    std::fs::write(
        root.join("root/cloud-settings.json"),
        serde_json::to_string(&settings).unwrap(),
    )
    .unwrap();
    // xe, backed by a state file (uuids persist between calls).
    let stand_ins = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand-ins");
    let system = System::new(Some(root.clone())).with_search_path(path_with(&stand_ins));
    let files = bin_convert::paths::Files::new(PathBuf::from(INSTALL));
    let state = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root.join("xe.json")).unwrap()).unwrap()
    };
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let log = bin_convert::log::Log::new(&system, Path::new("/xitc.log"));
        let mut work = bin_convert::work::Work {
            system: &system,
            files: &files,
            config: &config,
            log,
            node: None,
            installer: None,
            limits: bin_convert::work::Limits::default(),
        };
        if let Err(error) = bin_convert::shared::dom0::forget_networking(&mut work) {
            panic!("forget-networking failed: {error:#}");
        }
        let xe = state();
        let pifs = xe["pifs"].as_object().unwrap();
        assert_eq!(pifs.len(), 2, "the NIC and its VLAN: {xe}");
        let physical = pifs.values().find(|pif| pif["VLAN"] == "-1").unwrap();
        assert_eq!(physical["mac"], "bc:76:4e:20:1a:2b");
        assert_eq!(physical["IP"], "0.0.0.0");
        let (vlan_uuid, vlan) = pifs.iter().find(|(_, pif)| pif["VLAN"] == "100").unwrap();
        assert_eq!(vlan["IP"], "192.168.33.2");
        assert_eq!(xe["management"], vlan_uuid.as_str());
        let management_networks = xe["networks"]
            .as_object()
            .unwrap()
            .values()
            .filter(|name| *name == "xitc-management")
            .count();
        assert_eq!(management_networks, 1, "no new network on a re-run: {xe}");
        outcomes.push(xe["networks"].clone());
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let calls = std::fs::read_to_string(root.join("xe.log")).unwrap();
    assert!(
        calls.starts_with("host-management-disable\nvlan-list --minimal\n"),
        "{calls}"
    );
    assert!(
        std::fs::read_to_string(root.join("xitc.log"))
            .unwrap()
            .contains("applying the cloud's network settings (bounce): eth0 203.0.113.7/24")
    );
}
