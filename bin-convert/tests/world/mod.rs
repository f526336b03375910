//! The sandboxed node the xitc-convert tests share: a root directory with
//! the files, /proc, /sys and stand-in programs a state reads and runs, the
//! installer served by a real nginx. Each test file uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use bin_convert::config::Config;
use bin_convert::system::System;
use xitc_common::secret::Secret;

mod node;
pub use node::*;

pub const TOOL: &str = "xitc-convert";

pub const INSTALL: &str = "/opt/xenapi-in-the-cloud";

pub const URL: &str = "http://127.0.0.1:9/appliance.xva";

pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(INSTALL.trim_start_matches('/'))).unwrap();
        std::fs::create_dir_all(root.path().join("etc/default")).unwrap();
        std::fs::write(root.path().join("etc/default/grub"), "GRUB_DEFAULT=0\n").unwrap();
        Sandbox { root }
    }

    pub fn system(&self) -> System {
        System::new(Some(self.root.path().to_path_buf()))
    }

    pub fn convert(&self) -> Command {
        let mut command = xitc_test_support::tool!("xitc-convert");
        command
            .arg("--root")
            .arg(self.root.path())
            .args(["--install-dir", INSTALL]);
        command
    }

    /// Every file under the root with its contents (a symbolic link: its
    /// target): to prove nothing changed.
    pub fn tree(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
                if kind.is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    into.insert(path, target.into_os_string().into_encoded_bytes());
                } else if kind.is_dir() {
                    into.insert(path.clone(), Vec::new());
                    walk(&path, into);
                } else if path.extension().is_some_and(|extension| extension == "img") {
                    // A sandbox disk (sparse, gigabytes): its partition table.
                    into.insert(path.clone(), partition_table(&path).into_bytes());
                } else {
                    into.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut tree = BTreeMap::new();
        walk(self.root.path(), &mut tree);
        tree
    }

    pub fn save_config(&self) -> Config {
        let config = Config {
            ubuntu_size: Some(8 << 30),
            ..config(URL, bin_convert::DEFAULT_ISO_URL)
        };
        config
            .save(
                &self.system(),
                &Path::new(INSTALL).join("xitc-convert.config"),
            )
            .unwrap();
        config
    }

    pub fn set_state(&self, state: &str) {
        std::fs::write(
            self.root
                .path()
                .join(INSTALL.trim_start_matches('/'))
                .join("xitc-convert.state"),
            format!("{state}\n"),
        )
        .unwrap();
    }
}

pub fn path_with(bin: &Path) -> String {
    format!("{}:/usr/bin:/bin", bin.display())
}

/// Stand-ins that record how they were called in `$XITC_ROOT/commands.log`.
pub fn recording_stand_ins(bin: &Path) {
    for (name, output) in [
        ("update-grub", ""),
        ("update-initramfs", ""),
        ("sync", ""),
        ("reboot", ""),
        ("blkid", "echo 0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19"),
        (
            "debconf-set-selections",
            "cat >> \"$XITC_ROOT/debconf.selections\"",
        ),
    ] {
        let path = bin.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n{KILL_PRELUDE}\necho \"{name} $*\" >> \"$XITC_ROOT/commands.log\"\n{output}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

pub fn installer_iso(dir: &Path) -> Vec<u8> {
    installer_iso_of(dir, "[general]\nfamily = XCP-ng\nversion = 8.3.0\n")
}

/// An installer ISO whose `.treeinfo` is `treeinfo`.
pub fn installer_iso_of(dir: &Path, treeinfo: &str) -> Vec<u8> {
    let tree = dir.join("iso-tree");
    for (path, bytes) in [
        (".treeinfo", treeinfo.as_bytes().to_vec()),
        ("install.img", vec![7u8; 300_000]),
        ("boot/xen.gz", vec![8u8; 20_000]),
        ("boot/vmlinuz", vec![9u8; 40_000]),
    ] {
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let iso = dir.join("installer.iso");
    xitc_test_support::mkisofs(&["-R"], &iso, &tree);
    std::fs::read(iso).unwrap()
}

/// The real system's files that START and SETUP_INSTALLER write in their
/// sandbox: they must be exactly as they were.
pub fn outside_the_sandbox() -> Vec<(&'static str, Option<Vec<u8>>)> {
    [
        "/etc/default/grub",
        "/etc/grub.d/45_xitc-installer",
        "/etc/systemd/system/xitc-convert.service",
        "/etc/init/xitc-convert.conf",
        "/usr/share/initramfs-tools/hooks/xitc-shrink",
        "/usr/share/initramfs-tools/scripts/local-premount/xitc-shrink",
        "/opt/xenapi-in-the-cloud/xitc-convert.state",
        "/mnt/xitc-ramdisk/xsinst/answerfile.xml",
    ]
    .into_iter()
    .map(|path| (path, std::fs::read(path).ok()))
    .collect()
}

/// The node after START's reboot: sysfs for the (shrunk) partition 1, the user's
/// keys, and stand-ins for the programs SETUP_INSTALLER runs (dumpe2fs reports
/// the block count in `bin/fs-blocks`).
pub fn setup_installer_world(root: &Path, bin: &Path) {
    setup_installer_world_on(root, bin, "xvda");
}

/// [`setup_installer_world`] for the node's disk `disk`.
pub fn setup_installer_world_on(root: &Path, bin: &Path, disk: &str) {
    let image = root.join(format!("{disk}.img"));
    let table = partition_table(&image);
    let part1 = bin_convert::disk::partition_name(disk, 1);
    let start: u64 = table
        .lines()
        .find(|line| line.starts_with(&format!("/dev/{part1} :")))
        .and_then(|line| line.split("start=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|start| start.trim().parse().ok())
        .unwrap();
    let part = std::fs::canonicalize(root.join(format!("sys/class/block/{part1}"))).unwrap();
    let shrunk = (4u64 << 30) / 512 + 2048;
    std::fs::write(part.join("start"), format!("{start}\n")).unwrap();
    std::fs::write(part.join("size"), format!("{shrunk}\n")).unwrap();
    // What the shrink did to the partition table.
    write_table(
        root,
        disk,
        &["--no-reread", "-N", "1"],
        &format!(",{shrunk}\n"),
    );
    std::fs::create_dir_all(root.join("root/.ssh")).unwrap();
    std::fs::write(
        root.join("root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA user@laptop\n",
    )
    .unwrap();
    let record = "echo \"$(basename \"$0\") $*\" >> \"$XITC_ROOT/commands.log\"";
    for (name, body) in [
        (
            "dumpe2fs",
            "printf 'Block count:              %s\\nBlock size:               4096\\n' \"$(cat \"$(dirname \"$0\")/fs-blocks\")\"".to_owned(),
        ),
        ("partx", record.to_owned()),
        ("mkfs.ext3", record.to_owned()),
        ("mount", record.to_owned()),
        ("umount", record.to_owned()),
        ("grub-reboot", record.to_owned()),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Puts an installer ISO and an appliance on `nginx`; returns their bytes.
pub fn serve_installer(nginx: &xitc_test_support::Nginx, scratch: &Path) -> (Vec<u8>, Vec<u8>) {
    let iso = installer_iso(scratch);
    std::fs::write(nginx.root().join("installer.iso"), &iso).unwrap();
    let xva = xitc_test_support::appliance_xva(xitc_common::xva::DomainType::Hvm);
    std::fs::write(nginx.root().join("appliance.xva"), &xva).unwrap();
    (iso, xva)
}

/// A node ready for START: the sandbox, its stand-ins, and the run's config.
pub struct StartWorld {
    pub sandbox: Sandbox,
    pub bin: PathBuf,
    pub system: System,
    pub files: bin_convert::paths::Files,
    pub config: Config,
}

impl StartWorld {
    pub fn new(nginx: &xitc_test_support::Nginx, iso: &[u8], xva: &[u8]) -> Self {
        Self::on(nginx, iso, xva, |sandbox| node_fixture(sandbox, "ext4", 1))
    }

    /// [`StartWorld::new`] on the node `fixture` makes.
    pub fn on(
        nginx: &xitc_test_support::Nginx,
        iso: &[u8],
        xva: &[u8],
        fixture: impl FnOnce(&Sandbox) -> PathBuf,
    ) -> Self {
        let sandbox = Sandbox::new();
        let root = sandbox.root.path().to_path_buf();
        let bin = fixture(&sandbox);
        recording_stand_ins(&bin);
        std::os::unix::fs::chown(root.join("proc/self"), Some(0), Some(0))
            .expect("this test runs as root (as CI does)");
        for dir in [
            "run/systemd/system",
            "etc/grub.d",
            "usr/share/initramfs-tools/hooks",
            "usr/share/initramfs-tools/scripts/local-premount",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let config = Config {
            iso_sha256: Some(sha256_hex(iso)),
            appliance_sha256: Some(sha256_hex(xva)),
            ..config(&nginx.url("appliance.xva"), &nginx.url("installer.iso"))
        };
        let system = System::new(Some(root)).with_search_path(path_with(&bin));
        StartWorld {
            sandbox,
            bin,
            system,
            files: bin_convert::paths::Files::new(PathBuf::from(INSTALL)),
            config,
        }
    }

    /// The sandbox's files without logs and temp names, relative to its root:
    /// what must be the same however START got to its end.
    pub fn outcome(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let root = self.sandbox.root.path();
        self.sandbox
            .tree()
            .into_iter()
            .filter(|(path, _)| {
                let name = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or("");
                let is_log = path.extension().is_some_and(|extension| extension == "log");
                !(is_log
                    || name == "xitc-convert.config"
                    || name == "answerfile.xml"
                    || name == "kill-count"
                    || name == "killed")
            })
            .map(|(path, bytes)| (path.strip_prefix(root).unwrap().to_path_buf(), bytes))
            .collect()
    }
}

/// Asserts two START outcomes ([`StartWorld::outcome`]) have the same files with
/// the same contents, but for the commands log and the test's stand-ins.
pub fn assert_same_start_outcome(
    outcome: &BTreeMap<PathBuf, Vec<u8>>,
    expected: &BTreeMap<PathBuf, Vec<u8>>,
    what: &str,
) {
    let relevant = |tree: &BTreeMap<PathBuf, Vec<u8>>| -> BTreeMap<PathBuf, Vec<u8>> {
        tree.iter()
            .filter(|(path, _)| path.as_path() != Path::new("commands.log"))
            .map(|(path, bytes)| {
                // The bin dir holds the test's stand-ins; their contents differ by design.
                let bytes = if path.starts_with("stand-ins") {
                    Vec::new()
                } else {
                    bytes.clone()
                };
                (path.clone(), bytes)
            })
            .collect()
    };
    let (outcome, expected) = (relevant(outcome), relevant(expected));
    let keys: Vec<_> = outcome.keys().collect();
    let expected_keys: Vec<_> = expected.keys().collect();
    assert_eq!(keys, expected_keys, "{what}: different files");
    for (path, bytes) in &outcome {
        assert_eq!(bytes, &expected[path], "{what}: {} differs", path.display());
    }
}

/// Lets tests/stand-ins/kill-point stop xitc-convert at this call (crash tests).
pub const KILL_PRELUDE: &str =
    "[ -z \"$XITC_TEST_KILL_POINT\" ] || \"$XITC_TEST_KILL_POINT\" \"$PPID\" || exit 1";

/// Writes `text` to `path`, making its directory.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A `#!/bin/sh` script with `body` at `path`, executable.
pub fn script(path: &Path, body: &str) {
    write(path, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A first run's config for the appliance "Devstack" at `appliance_url` and
/// the ISO at `iso_url`, everything else as the CLI's defaults; tests change
/// what they need with `..config(…)`.
pub fn config(appliance_url: &str, iso_url: &str) -> Config {
    Config {
        mode: bin_convert::config::Mode::Appliance,
        network: bin_convert::config::NetworkSource::Bounce,
        appliance_url: appliance_url.into(),
        appliance_label: "Devstack".into(),
        iso_url: iso_url.into(),
        iso_sha256: None,
        appliance_sha256: None,
        ubuntu_size: None,
        installer_disk: None,
        installer_nic: "eth0".into(),
        root_password_hash: bin_convert::config::hash_password(&Secret::new("pw")).unwrap(),
        appliance_vcpus: None,
        appliance_user: bin_convert::config::DEFAULT_APPLIANCE_USER.into(),
        stamp_path: xitc_common::stamp::DEFAULT_STAMP_PATH.into(),
    }
}

/// --check asks the ISO's server for its size: tests must never reach the real
/// default mirror (loopback only; nothing listens on port 9).
pub const LOOPBACK_ISO: &str = "http://127.0.0.1:9/installer.iso";

/// stdout and stderr of `output`, as text.
pub fn text(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// How a config drive is made: Nova makes iso9660 (genisoimage, Rock Ridge
/// and Joliet) by default and vfat when asked (`config_drive_format`).
#[derive(Debug, Clone, Copy)]
pub enum DriveFormat {
    Iso9660,
    Vfat,
}

/// Writes a real config drive image at `image` labelled `label`, holding
/// `openstack/latest/network_data.json` with `network_data` (none: a drive
/// of the time before network data). iso9660 by xorriso, vfat by mtools.
pub fn config_drive_image(
    image: &Path,
    format: DriveFormat,
    label: &str,
    network_data: Option<&str>,
) {
    let tree = tempfile::tempdir().unwrap();
    let latest = tree.path().join("openstack/latest");
    std::fs::create_dir_all(&latest).unwrap();
    write(
        &latest.join("meta_data.json"),
        r#"{"uuid": "d8e02d56-2648-49a3-bf97-6be8f1204f38"}"#,
    );
    if let Some(json) = network_data {
        write(&latest.join("network_data.json"), json);
    }
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(image);
    // mtools: xitc_test_support::stdout_of fails the test, naming the tool
    // and its stderr, when one fails or is not installed.
    let mtools = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        command.args(args);
        xitc_test_support::stdout_of(command);
    };
    let image_text = image.to_str().unwrap();
    match format {
        DriveFormat::Iso9660 => {
            xitc_test_support::mkisofs(&["-r", "-J", "-V", label], image, tree.path());
        }
        DriveFormat::Vfat => {
            std::fs::File::create(image)
                .unwrap()
                .set_len(2 << 20)
                .unwrap();
            mtools("mformat", &["-i", image_text, "-v", label, "::"]);
            mtools(
                "mmd",
                &["-i", image_text, "::/openstack", "::/openstack/latest"],
            );
            for name in ["meta_data.json", "network_data.json"] {
                let file = latest.join(name);
                if file.exists() {
                    mtools(
                        "mcopy",
                        &[
                            "-i",
                            image_text,
                            file.to_str().unwrap(),
                            &format!("::/openstack/latest/{name}"),
                        ],
                    );
                }
            }
        }
    }
}

/// Nova's network_data.json for one NIC with a fixed address (a Neutron
/// port), as the tests' config drives carry it.
pub fn static_network_data(mac: &str, address: &str, gateway: &str) -> String {
    format!(
        r#"{{"links": [{{"id": "tap0", "type": "ovs", "mtu": 1450, "ethernet_mac_address": "{mac}"}}],
  "networks": [{{"id": "network0", "type": "ipv4", "link": "tap0", "ip_address": "{address}",
    "netmask": "255.255.255.0",
    "routes": [{{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "{gateway}"}}]}}],
  "services": [{{"type": "dns", "address": "203.0.113.53"}}]}}"#
    )
}
