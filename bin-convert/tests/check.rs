//! `--check`, sandboxed with --root: the node read from the live system
//! (mounts, sysfs, df, the network), every problem reported at once, room for
//! the downloads; nothing changed.

use xitc_test_support::assert_one_line_error;

mod world;
use world::*;

/// The sandbox's node booted by UEFI, its `SecureBoot` variable (efivarfs:
/// four bytes of attributes, then the value) saying `secure_boot`.
fn booted_by_uefi(sandbox: &Sandbox, secure_boot: u8) {
    let efivars = sandbox.root.path().join("sys/firmware/efi/efivars");
    std::fs::create_dir_all(&efivars).unwrap();
    std::fs::write(
        efivars.join("SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        [6, 0, 0, 0, secure_boot],
    )
    .unwrap();
}

#[test]
fn check_reads_the_node_from_the_live_system_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    std::os::unix::fs::chown(sandbox.root.path().join("proc/self"), Some(0), Some(0))
        .expect("this test runs as root (as CI does), to give the fixture's /proc/self to root");
    let before = sandbox.tree();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--iso-url",
            LOOPBACK_ISO,
            "--ubuntu-size",
            "8G",
            "pw",
            URL,
            "L",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "preflight: the node can be converted\n  root: /dev/xvda1 (ext4), partition 1 of xvda\n  \
         layout: DOS, 1 partition, the root on 1; installer disk sda (the node's /dev/xvda, \
         emulated hardware to the installer)\n  \
         installers: XCP-ng 8.x, XenServer 8, XenServer 7.x, XenServer 6.x; not XenServer's main \
         line (it installs on UEFI only) (a DOS label: all of these keep partition 1 on it)\n  \
         space on /: 2147483648 bytes used, 30064771072 bytes free\n  \
         network: eth0 203.0.171.17/24 via 203.15.171.1, MAC bc:76:4e:20:1a:2b, \
         name servers 203.0.113.53, 198.51.100.53\n  \
         mode: appliance\n  \
         network source: bounce (Ubuntu boots between dom0 boots and saves the network it was \
         given: no config drive with network data, and no DHCP lease of eth0)\n  \
         boot: BIOS: GRUB boots Xen for the installer by multiboot\n  \
         virtualization: Intel VT-x (vmx): HVM guests can run (PV guests too, on installers \
         that still run them)\nnothing was changed\n"
    );
    assert_eq!(sandbox.tree(), before);
}

/// The direct mode's `--check`: the network source it chose and why (here a
/// config drive, a real iso9660 image), and on a CPU without vmx/svm the
/// warning that no HVM guest will start there (xapi answers all the same);
/// nothing changed.
#[test]
fn check_in_the_direct_mode_names_the_network_source_and_warns_without_virtualization() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    let root = sandbox.root.path();
    std::os::unix::fs::chown(root.join("proc/self"), Some(0), Some(0))
        .expect("this test runs as root (as CI does), to give the fixture's /proc/self to root");
    config_drive_image(
        &root.join("dev/sr0"),
        DriveFormat::Iso9660,
        "config-2",
        Some(&static_network_data(
            "BC:76:4E:20:1A:2B",
            "203.0.171.17",
            "203.15.171.1",
        )),
    );
    let listing = std::fs::read_to_string(root.join("lsblk.out")).unwrap();
    std::fs::write(
        root.join("lsblk.out"),
        format!("{listing}sr0 2026-12-03-06-00-00-00  config-2 iso9660\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("proc/cpuinfo"),
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse2 hypervisor\n",
    )
    .unwrap();
    let before = sandbox.tree();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--mode",
            "direct",
            "--iso-url",
            LOOPBACK_ISO,
            "pw",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "\n  mode: direct\n  network source: config-drive (the config drive /dev/sr0: \
             203.0.171.17/24 via 203.15.171.1 on bc:76:4e:20:1a:2b, name servers 203.0.113.53)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\n  warning: no hardware virtualization (vmx/svm): in the direct mode xapi will \
             answer, but no HVM guest will start on this host, and on an installer without PV \
             guests (XCP-ng 8.3, the default) no VM at all\nnothing was changed\n"
        ),
        "{stdout}"
    );
    assert_eq!(sandbox.tree(), before);
}

/// A node booted by UEFI with Secure Boot off (no SecureBoot variable, or one
/// saying 0) passes when its GRUB has the multiboot2 module, and says how it
/// will boot and which installers can install there; without the module it is
/// refused with the remedy, and nothing changes either way.
#[test]
fn check_takes_a_uefi_node_whose_grub_can_load_multiboot2() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    std::os::unix::fs::chown(sandbox.root.path().join("proc/self"), Some(0), Some(0))
        .expect("this test runs as root (as CI does), to give the fixture's /proc/self to root");
    booted_by_uefi(&sandbox, 0);
    let check = || {
        sandbox
            .convert()
            .env("PATH", path_with(&bin))
            .args(["--check", "--iso-url", LOOPBACK_ISO, "pw", URL, "L"])
            .output()
            .unwrap()
    };
    let before = sandbox.tree();
    assert_one_line_error(
        "UEFI without multiboot2.mod",
        TOOL,
        &check(),
        2,
        "the node cannot be converted, nothing was changed: the node boots by UEFI and its GRUB \
         cannot load multiboot2, which boots Xen there: /boot/grub/x86_64-efi/multiboot2.mod is \
         missing (apt-get install grub-efi-amd64-bin, then grub-install --target=x86_64-efi \
         --no-nvram)",
    );
    assert_eq!(sandbox.tree(), before);
    let modules = sandbox.root.path().join("boot/grub/x86_64-efi");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(modules.join("multiboot2.mod"), "").unwrap();
    let before = sandbox.tree();
    let output = check();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "\n  boot: UEFI, Secure Boot off: GRUB boots Xen for the installer by multiboot2 \
             (insmod from /boot/grub/x86_64-efi); the installer writes no UEFI boot entry, the \
             firmware finds dom0's GRUB by the removable-media path\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\n  installers: XenServer's main line, XCP-ng 8.x, XenServer 8, XenServer 7.x; not \
             XenServer 6.x (it installs by BIOS only) (a DOS label"
        ),
        "{stdout}"
    );
    assert_eq!(sandbox.tree(), before);
}

#[test]
fn check_reports_every_problem_at_once() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "xfs", 2);
    for missing in ["update-grub", "grub-reboot"] {
        std::fs::remove_file(bin.join(missing)).unwrap();
    }
    // Ubuntu 14.04's sfdisk.
    std::fs::write(
        bin.join("sfdisk"),
        "#!/bin/sh\necho 'sfdisk from util-linux 2.20.1'\n",
    )
    .unwrap();
    // Booted by UEFI, with Secure Boot on.
    booted_by_uefi(&sandbox, 1);
    std::fs::write(
        sandbox.root.path().join("proc/net/route"),
        "Iface\tDestination\n",
    )
    .unwrap();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--iso-url",
            LOOPBACK_ISO,
            "--ubuntu-size",
            "2G",
            "pw",
            URL,
            "L",
        ])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for problem in [
        "nothing was changed",
        "update-grub not found in PATH",
        "grub-reboot not found in PATH",
        "/ is xfs, not ext2/3/4",
        "/ is on partition 2 of its disk; it must be partition 1",
        "--ubuntu-size 2147483648 bytes is too small",
        "there is no default route",
        "sfdisk is util-linux 2.20; the shrink needs 2.26 or later",
        "Secure Boot is on (UEFI variable SecureBoot): neither the installer nor Xen booted by \
         multiboot2 can start under it; boot the node from an image or flavor without Secure Boot",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem:?} missing from {stderr}"
        );
    }
}

#[test]
fn check_needs_room_for_the_downloads() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    // 1 GiB free: not enough for 2 MB of downloads plus the 1 GiB margin.
    std::fs::write(
        bin.join("df"),
        "#!/bin/sh\nprintf '     Used    Avail\\n2147483648 1073741824\\n'\n",
    )
    .unwrap();
    let nginx = xitc_test_support::Nginx::start();
    std::fs::write(nginx.root().join("big.xva"), vec![0u8; 2_000_000]).unwrap();
    let output = sandbox
        .convert()
        .env("PATH", path_with(&bin))
        .args([
            "--check",
            "--iso-url",
            LOOPBACK_ISO,
            "pw",
            &nginx.url("big.xva"),
            "L",
        ])
        .output()
        .unwrap();
    assert_one_line_error(
        "no room",
        TOOL,
        &output,
        2,
        "the downloads need 2000000 bytes more on /, plus a margin of 1073741824, and only 1073741824 are free",
    );
}

/// The appliance mode on a CPU without vmx/svm, with an installer the URL
/// names: XCP-ng 8.3 runs no PV guest, so the appliance could never start:
/// refused (exit 2) with what to do instead; XCP-ng 8.2 still runs PV guests:
/// passes. Nothing changed either way.
#[test]
fn check_refuses_the_appliance_mode_where_no_guest_can_start() {
    let sandbox = Sandbox::new();
    let bin = node_fixture(&sandbox, "ext4", 1);
    std::os::unix::fs::chown(sandbox.root.path().join("proc/self"), Some(0), Some(0))
        .expect("this test runs as root (as CI does), to give the fixture's /proc/self to root");
    std::fs::write(
        sandbox.root.path().join("proc/cpuinfo"),
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse2 hypervisor\n",
    )
    .unwrap();
    let before = sandbox.tree();
    let check = |iso: &str| {
        sandbox
            .convert()
            .env("PATH", path_with(&bin))
            .args(["--check", "--iso-url", iso, "pw", URL, "L"])
            .output()
            .unwrap()
    };
    let output = check("http://127.0.0.1:9/isos/8.3/xcp-ng-8.3.0-20260806.iso?https=1");
    assert_one_line_error(
        "XCP-ng 8.3 without vmx/svm",
        "xitc-convert",
        &output,
        2,
        "XCP-ng 8.3.0 (as --iso-url names it) runs no PV guest, and HVM guests need hardware \
         virtualization, which this node does not show (no vmx or svm in /proc/cpuinfo): the \
         appliance VM could never start. Use --mode direct (no appliance)",
    );
    let output = check("http://127.0.0.1:9/isos/8.2/xcp-ng-8.2.1-20231130.iso");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "\n  virtualization: none (no vmx or svm in /proc/cpuinfo): no HVM guest will \
             start, and on an installer without PV guests (XCP-ng 8.3) no guest at all\n"
        ),
        "{stdout}"
    );
    assert_eq!(sandbox.tree(), before);
}
