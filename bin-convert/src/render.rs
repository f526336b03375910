//! The files xitc-convert writes, built as data and rendered once (DESIGN §5):
//! the installer's answerfile, the GRUB entry, the edit of /etc/default/grub,
//! and the boot hooks. Nothing is patched with `sed`: inputs are parsed, values
//! escaped, and the output checked by the tools that read it (tests run
//! grub-script-check, an XML parser and systemd-analyze on them).

use std::fmt::Write as _;

use xitc_common::exit;

/// Which installer reads the answerfile: XenServer 6.x or 7+ / XCP-ng 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// XenServer 6.x: `srtype`, `<ip>`/`<subnet-mask>`, extlinux.
    XenServer6,
    /// XenServer 7+ and XCP-ng 8: `sr-type`, `<ipaddr>`/`<subnet>`, grub2.
    XenServer7,
}

/// What the unattended install needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub dialect: Dialect,
    /// `sda`: the installer's name for the disk; partition 1 (Ubuntu) is kept.
    pub disk: String,
    /// `$6$…`.
    pub root_password_hash: String,
    /// Where the installer finds the unpacked ISO (`file:///tmp/ramdisk`).
    pub source_url: String,
    /// The post-install script (`file:///tmp/ramdisk/postinst.sh`).
    pub post_install_url: String,
    pub nic: String,
}

/// The temporary static address of dom0 during the install (2014's choice; the
/// real networking is set up by the first boot).
const INSTALL_ADDRESS: (&str, &str, &str) = ("192.168.34.2", "255.255.255.0", "192.168.34.1");

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The answerfile. Every value must be printable ASCII (XS 8 and XCP-ng 8.3
/// parse it with Python 2) without surrounding spaces (the installer strips
/// them, which would change a value silently); no CDATA (it reads as empty).
pub fn answerfile(answers: &Answers) -> anyhow::Result<String> {
    for (what, value) in [
        ("disk", &answers.disk),
        ("root password hash", &answers.root_password_hash),
        ("source URL", &answers.source_url),
        ("post-install URL", &answers.post_install_url),
        ("NIC", &answers.nic),
    ] {
        if value.is_empty()
            || value.trim() != value
            || !value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(exit::usage(format!(
                "answerfile {what} must be printable ASCII without surrounding spaces, got {value:?}"
            )));
        }
    }
    let e = xml_escape;
    let (address, netmask, gateway) = INSTALL_ADDRESS;
    let (sr_attribute, address_tags, bootloader) = match answers.dialect {
        Dialect::XenServer6 => ("srtype", ("ip", "subnet-mask"), "extlinux"),
        Dialect::XenServer7 => ("sr-type", ("ipaddr", "subnet"), "grub2"),
    };
    let mut xml = String::from("<?xml version=\"1.0\"?>\n");
    let _ = writeln!(xml, "<installation {sr_attribute}=\"ext\">");
    let _ = writeln!(
        xml,
        "  <primary-disk preserve-first-partition=\"true\">{}</primary-disk>",
        e(&answers.disk)
    );
    xml.push_str("  <keymap>us</keymap>\n");
    let _ = writeln!(
        xml,
        "  <root-password type=\"hash\">{}</root-password>",
        e(&answers.root_password_hash)
    );
    let _ = writeln!(
        xml,
        "  <source type=\"url\">{}</source>",
        e(&answers.source_url)
    );
    let _ = writeln!(
        xml,
        "  <admin-interface name=\"{}\" proto=\"static\">",
        e(&answers.nic)
    );
    let _ = writeln!(xml, "    <{0}>{address}</{0}>", address_tags.0);
    let _ = writeln!(xml, "    <{0}>{netmask}</{0}>", address_tags.1);
    let _ = writeln!(xml, "    <gateway>{gateway}</gateway>");
    xml.push_str("  </admin-interface>\n  <timezone>UTC</timezone>\n");
    let _ = writeln!(
        xml,
        "  <script stage=\"filesystem-populated\" type=\"url\">{}</script>",
        e(&answers.post_install_url)
    );
    let _ = writeln!(xml, "  <bootloader>{bootloader}</bootloader>");
    xml.push_str("</installation>\n");
    Ok(xml)
}

/// Where the installer's boot files are, and how it is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallerEntry {
    /// Directory (as GRUB sees it) holding xen.gz, vmlinuz, install.img.
    pub files_dir: String,
    /// The device the installer copies `xsinst/` from (`make-ramdisk=`).
    pub ramdisk_device: String,
    pub answerfile_url: String,
    /// UUID of the file system holding `files_dir` (the root), which GRUB
    /// searches: where /boot is a partition of its own (Ubuntu 24.04 cloud
    /// images), GRUB's own root is not the one with the files.
    pub root_uuid: String,
}

/// The GRUB entry name, also given to `grub-reboot`.
pub const INSTALLER_ENTRY: &str = "XenServer installer";

/// `/etc/grub.d/45_xs-install`: a script that prints its own menu entry. The
/// kernel line has no `console=hvc0`, which hid the installer from the cloud's
/// console in 2014. `fallback=0`: should the installer not boot (a broken ISO),
/// GRUB boots the first entry, the OS, instead of waiting at its menu.
pub fn grub_installer_script(entry: &InstallerEntry) -> anyhow::Result<String> {
    for (what, value) in [
        ("boot files directory", &entry.files_dir),
        ("ramdisk device", &entry.ramdisk_device),
        ("answerfile URL", &entry.answerfile_url),
        ("root file system UUID", &entry.root_uuid),
    ] {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic()) || value.contains('\'')
        {
            return Err(exit::usage(format!(
                "GRUB entry {what} must be printable ASCII without spaces or quotes, got {value:?}"
            )));
        }
    }
    let dir = entry.files_dir.trim_end_matches('/');
    Ok(format!(
        "#!/bin/sh\n\
         exec tail -n +3 \"$0\"\n\
         set fallback=0\n\
         menuentry '{INSTALLER_ENTRY}' {{\n    \
         search --no-floppy --fs-uuid --set=root {uuid}\n    \
         multiboot {dir}/xen.gz dom0_max_vcpus=1-2 dom0_mem=max:752M com1=115200,8n1 console=com1,vga\n    \
         module {dir}/vmlinuz console=tty0 make-ramdisk={} answerfile={} install\n    \
         module {dir}/install.img\n\
         }}\n",
        entry.ramdisk_device,
        entry.answerfile_url,
        uuid = entry.root_uuid,
    ))
}

/// `/etc/default/grub` with `GRUB_DEFAULT=saved` (so `grub-reboot` can pick the
/// installer once), a visible menu with a timeout, and the hidden-timeout
/// settings commented out. Every other line is kept as it was; applying it twice
/// changes nothing more.
pub fn edit_default_grub(text: &str) -> String {
    let mut seen_default = false;
    let mut seen_style = false;
    let mut seen_timeout = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let key = line
            .trim_start()
            .split_once('=')
            .map(|(key, _)| key.trim())
            .filter(|key| !key.starts_with('#'));
        let replaced = match key {
            Some("GRUB_DEFAULT") => {
                seen_default = true;
                "GRUB_DEFAULT=saved".to_owned()
            }
            Some("GRUB_TIMEOUT_STYLE") => {
                seen_style = true;
                "GRUB_TIMEOUT_STYLE=menu".to_owned()
            }
            Some("GRUB_TIMEOUT") => {
                seen_timeout = true;
                let value = line.split_once('=').map_or("", |(_, value)| value.trim());
                let seconds: i64 = value.trim_matches('"').parse().unwrap_or(0);
                if seconds > 0 {
                    line.to_owned()
                } else {
                    "GRUB_TIMEOUT=5".to_owned()
                }
            }
            Some("GRUB_HIDDEN_TIMEOUT" | "GRUB_HIDDEN_TIMEOUT_QUIET") => format!("#{line}"),
            _ => line.to_owned(),
        };
        lines.push(replaced);
    }
    if !seen_default {
        lines.push("GRUB_DEFAULT=saved".to_owned());
    }
    if !seen_style {
        lines.push("GRUB_TIMEOUT_STYLE=menu".to_owned());
    }
    if !seen_timeout {
        lines.push("GRUB_TIMEOUT=5".to_owned());
    }
    let mut edited = lines.join("\n");
    edited.push('\n');
    edited
}

/// Quotes a path for a systemd `ExecStart=` line (`%` is a specifier there).
fn systemd_quote(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    )
}

/// The systemd unit that runs xitc-convert on every boot, after the network is
/// up. No password in it: the run reads the saved config.
pub fn systemd_unit(binary: &str, install_dir: &str) -> String {
    format!(
        "[Unit]\n\
         Description=xitc-convert: continue converting this node to XenServer\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} --install-dir {}\n\
         TimeoutStartSec=infinity\n\
         StandardOutput=journal+console\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        systemd_quote(binary),
        systemd_quote(install_dir)
    )
}

/// The upstart job for nodes without systemd (Ubuntu 14.04).
pub fn upstart_job(binary: &str, install_dir: &str) -> String {
    let quote = xitc_common::shell::shell_quote;
    format!(
        "description \"xitc-convert: continue converting this node to XenServer\"\n\
         start on stopped rc RUNLEVEL=[2345]\n\
         task\n\
         exec {} --install-dir {}\n",
        quote(binary),
        quote(install_dir)
    )
}

/// The appliance's `/etc/network/interfaces` (ifupdown): DHCP on eth0 (the
/// host-internal network, where dom0 reaches it), the cloud's settings on eth1
/// (the VIF with the cloud's MAC), 192.168.33.1/24 on eth2 (the management
/// VLAN, shared with dom0).
pub fn appliance_interfaces(settings: &crate::settings::CloudSettings) -> String {
    let mut text = format!(
        "# Written by xitc-convert on every XenServer boot from the cloud's settings;\n\
         # edits here are lost.\n\
         auto lo\niface lo inet loopback\n\n\
         auto eth0\niface eth0 inet dhcp\n\n\
         auto eth1\niface eth1 inet static\n    address {}\n    netmask {}\n    gateway {}\n",
        settings.address, settings.netmask, settings.gateway
    );
    if !settings.nameservers.is_empty() {
        let servers: Vec<String> = settings
            .nameservers
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(text, "    dns-nameservers {}", servers.join(" "));
    }
    let (address, netmask) = (
        crate::dom0::APPLIANCE_ADDRESS,
        crate::dom0::MANAGEMENT_NETMASK,
    );
    let _ = write!(
        text,
        "\nauto eth2\niface eth2 inet static\n    address {address}\n    netmask {netmask}\n"
    );
    text
}

#[derive(serde::Serialize)]
struct Netplan {
    network: NetplanNetwork,
}

#[derive(serde::Serialize)]
struct NetplanNetwork {
    version: u8,
    ethernets: std::collections::BTreeMap<&'static str, NetplanEthernet>,
}

#[derive(serde::Serialize, Default)]
struct NetplanEthernet {
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp4: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<NetplanRoute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nameservers: Option<NetplanNameservers>,
}

#[derive(serde::Serialize)]
struct NetplanRoute {
    to: &'static str,
    via: String,
}

#[derive(serde::Serialize)]
struct NetplanNameservers {
    addresses: Vec<String>,
}

/// The same as [`appliance_interfaces`] for an appliance with netplan. The
/// default route is written as `to: 0.0.0.0/0`, which every netplan reads
/// (`to: default` and `gateway4` are not understood by all of them).
pub fn appliance_netplan(settings: &crate::settings::CloudSettings) -> String {
    let mut ethernets = std::collections::BTreeMap::new();
    ethernets.insert(
        "eth0",
        NetplanEthernet {
            dhcp4: Some(true),
            ..NetplanEthernet::default()
        },
    );
    ethernets.insert(
        "eth1",
        NetplanEthernet {
            dhcp4: Some(false),
            addresses: vec![format!("{}/{}", settings.address, settings.prefix)],
            routes: vec![NetplanRoute {
                to: "0.0.0.0/0",
                via: settings.gateway.to_string(),
            }],
            nameservers: (!settings.nameservers.is_empty()).then(|| NetplanNameservers {
                addresses: settings
                    .nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            }),
        },
    );
    ethernets.insert(
        "eth2",
        NetplanEthernet {
            dhcp4: Some(false),
            addresses: vec![format!("{}/24", crate::dom0::APPLIANCE_ADDRESS)],
            ..NetplanEthernet::default()
        },
    );
    let yaml = serde_yaml_ng::to_string(&Netplan {
        network: NetplanNetwork {
            version: 2,
            ethernets,
        },
    })
    .unwrap_or_default();
    format!(
        "# Written by xitc-convert on every XenServer boot from the cloud's settings;\n\
         # edits here are lost.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(dialect: Dialect) -> Answers {
        Answers {
            dialect,
            disk: "sda".into(),
            root_password_hash: "$6$salt$h<a>s&h".into(),
            source_url: "file:///tmp/ramdisk".into(),
            post_install_url: "file:///tmp/ramdisk/postinst.sh".into(),
            nic: "eth0".into(),
        }
    }

    #[test]
    fn answerfiles_parse_and_follow_their_dialect() {
        for (dialect, sr, address, netmask, bootloader) in [
            (Dialect::XenServer7, "sr-type", "ipaddr", "subnet", "grub2"),
            (
                Dialect::XenServer6,
                "srtype",
                "ip",
                "subnet-mask",
                "extlinux",
            ),
        ] {
            let xml = answerfile(&answers(dialect)).unwrap();
            assert!(!xml.contains("CDATA"));
            let document = roxmltree::Document::parse(&xml).unwrap();
            let root = document.root_element();
            assert_eq!(root.tag_name().name(), "installation");
            assert_eq!(root.attribute(sr), Some("ext"));
            let child = |name: &str| {
                root.descendants()
                    .find(|node| node.tag_name().name() == name)
                    .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
            };
            let disk = child("primary-disk");
            assert_eq!(disk.text(), Some("sda"));
            assert_eq!(disk.attribute("preserve-first-partition"), Some("true"));
            let password = child("root-password");
            assert_eq!(password.attribute("type"), Some("hash"));
            assert_eq!(password.text(), Some("$6$salt$h<a>s&h"));
            assert_eq!(child("source").attribute("type"), Some("url"));
            assert_eq!(child("source").text(), Some("file:///tmp/ramdisk"));
            let interface = child("admin-interface");
            assert_eq!(interface.attribute("name"), Some("eth0"));
            assert_eq!(interface.attribute("proto"), Some("static"));
            assert_eq!(child(address).text(), Some("192.168.34.2"));
            assert_eq!(child(netmask).text(), Some("255.255.255.0"));
            assert_eq!(child("gateway").text(), Some("192.168.34.1"));
            assert_eq!(child("timezone").text(), Some("UTC"));
            let script = child("script");
            assert_eq!(script.attribute("stage"), Some("filesystem-populated"));
            assert_eq!(script.text(), Some("file:///tmp/ramdisk/postinst.sh"));
            assert_eq!(child("bootloader").text(), Some(bootloader));
            assert!(xml.is_ascii());
        }
    }

    #[test]
    fn answerfile_values_must_be_plain_ascii() {
        for bad in ["", " sda", "sdä", "sd\na"] {
            let mut wrong = answers(Dialect::XenServer7);
            wrong.disk = bad.into();
            assert!(answerfile(&wrong).is_err(), "{bad:?}");
        }
    }

    fn grub_script_check(script: &str) -> std::process::Output {
        use std::io::Write as _;
        let mut child = std::process::Command::new("grub-script-check")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("grub-script-check (apt-get install grub-common; scripts/install-test-deps)");
        // What update-grub takes from the script: its output after line 2.
        let mut entry = script.lines().skip(2).collect::<Vec<_>>().join("\n");
        entry.push('\n');
        child
            .stdin
            .take()
            .unwrap()
            .write_all(entry.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn the_grub_entry_passes_grub_script_check() {
        let script = grub_installer_script(&InstallerEntry {
            files_dir: "/opt/xs-install/".into(),
            ramdisk_device: "/dev/sda2".into(),
            answerfile_url: "file:///tmp/ramdisk/answerfile.xml".into(),
            root_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".into(),
        })
        .unwrap();
        assert!(
            script.starts_with(
                "#!/bin/sh\nexec tail -n +3 \"$0\"\nset fallback=0\nmenuentry 'XenServer installer' {\n    \
                 search --no-floppy --fs-uuid --set=root 0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19\n"
            )
        );
        assert!(script.contains("multiboot /opt/xs-install/xen.gz "));
        assert!(script.contains(
            " make-ramdisk=/dev/sda2 answerfile=file:///tmp/ramdisk/answerfile.xml install\n"
        ));
        assert!(!script.contains("hvc0"));
        let checked = grub_script_check(&script);
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        // The checker is real: a broken entry fails it.
        let broken = grub_script_check("#!/bin/sh\nexec tail\nmenuentry 'x' {\n");
        assert!(!broken.status.success());
    }

    #[test]
    fn grub_entry_values_are_checked() {
        let entry = InstallerEntry {
            files_dir: "/opt/xs install".into(),
            ramdisk_device: "/dev/sda2".into(),
            answerfile_url: "file:///a".into(),
            root_uuid: "x".into(),
        };
        assert!(grub_installer_script(&entry).is_err());
    }

    #[test]
    fn default_grub_is_edited_by_parsing_and_idempotently() {
        let ubuntu = "# If you change this file, run 'update-grub'\n\
                      GRUB_DEFAULT=0\n\
                      GRUB_HIDDEN_TIMEOUT=0\n\
                      GRUB_HIDDEN_TIMEOUT_QUIET=true\n\
                      GRUB_TIMEOUT=0\n\
                      GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n\
                      GRUB_CMDLINE_LINUX_DEFAULT=\"console=hvc0 GRUB_DEFAULT=1\"\n\
                      #GRUB_TERMINAL=console\n";
        let edited = edit_default_grub(ubuntu);
        assert_eq!(
            edited,
            "# If you change this file, run 'update-grub'\n\
             GRUB_DEFAULT=saved\n\
             #GRUB_HIDDEN_TIMEOUT=0\n\
             #GRUB_HIDDEN_TIMEOUT_QUIET=true\n\
             GRUB_TIMEOUT=5\n\
             GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n\
             GRUB_CMDLINE_LINUX_DEFAULT=\"console=hvc0 GRUB_DEFAULT=1\"\n\
             #GRUB_TERMINAL=console\n\
             GRUB_TIMEOUT_STYLE=menu\n"
        );
        assert_eq!(edit_default_grub(&edited), edited);
        assert_eq!(
            edit_default_grub("GRUB_TIMEOUT=\"10\"\n"),
            "GRUB_TIMEOUT=\"10\"\nGRUB_DEFAULT=saved\nGRUB_TIMEOUT_STYLE=menu\n"
        );
    }

    #[test]
    fn boot_hooks_run_the_binary_without_a_password() {
        let unit = systemd_unit("/opt/xitc 100%/xitc-convert", "/opt/xitc 100%");
        assert!(unit.contains(
            "ExecStart=\"/opt/xitc 100%%/xitc-convert\" --install-dir \"/opt/xitc 100%%\"\n"
        ));
        assert!(unit.contains("Type=oneshot\n") && unit.contains("After=network-online.target\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xitc-convert.service");
        std::fs::write(&path, systemd_unit("/bin/true", "/opt/xenapi-in-the-cloud")).unwrap();
        let verified = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (Debian systemd)");
        let complaints = String::from_utf8_lossy(&verified.stderr);
        assert!(
            !complaints.contains("xitc-convert.service:"),
            "systemd-analyze complains about the unit: {complaints}"
        );
        let job = upstart_job("/opt/a b/xitc-convert", "/opt/a b");
        assert!(job.contains("exec '/opt/a b/xitc-convert' --install-dir '/opt/a b'\n"));
        assert!(job.contains("start on stopped rc RUNLEVEL=[2345]\n"));
    }
}

/// What the boot-time shrink works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shrink {
    /// The root partition (`/dev/xvda1`), partition 1 of `disk`.
    pub partition: String,
    /// Its disk (`/dev/xvda`), whose partition table is rewritten.
    pub disk: String,
    /// The size the file system is shrunk to.
    pub target_bytes: u64,
}

/// Sectors partition 1 keeps beyond the end of its file system.
pub const SHRINK_MARGIN_SECTORS: u64 = 2048;

/// The initramfs local-premount script that shrinks the root file system to
/// `target_bytes`, then partition 1 to the file system's real size (its block
/// count times its block size, read back with dumpe2fs) plus a margin. It runs
/// before / is mounted. POSIX sh for klibc's shell: no grep, sed or awk, only
/// the programs the hook copies in. Any problem leaves the disk as it is and lets
/// the boot go on (SETUP_INSTALLER then sees no shrink and stops); running it
/// again changes nothing more.
pub fn shrink_premount_script(shrink: &Shrink) -> anyhow::Result<String> {
    for (what, value) in [("partition", &shrink.partition), ("disk", &shrink.disk)] {
        if !value.starts_with('/')
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        {
            return Err(exit::usage(format!(
                "shrink {what} {value:?} is not a device path"
            )));
        }
    }
    let target_kib = shrink.target_bytes / 1024;
    if target_kib == 0 {
        return Err(exit::usage("the shrink target is 0"));
    }
    Ok(format!(
        r#"#!/bin/sh
# xitc-convert: shrink the root file system and partition 1 before / is mounted.
PREREQ=""
prereqs() {{ echo "$PREREQ"; }}
case "$1" in prereqs) prereqs; exit 0 ;; esac

PART='{partition}'
DISK='{disk}'
TARGET_KIB={target_kib}
MARGIN_SECTORS={SHRINK_MARGIN_SECTORS}

say() {{ echo "xitc-shrink: $*"; }}
give_up() {{ say "$*; the disk is left as it is"; exit 0; }}

# Sets BLOCK_SIZE and BLOCK_COUNT from the file system's superblock.
read_geometry() {{
    BLOCK_SIZE=
    BLOCK_COUNT=
    header=$(dumpe2fs -h "$PART" 2> /dev/null) || give_up "dumpe2fs $PART failed"
    while IFS=: read -r key value; do
        case "$key" in
            "Block size") BLOCK_SIZE=${{value##* }} ;;
            "Block count") BLOCK_COUNT=${{value##* }} ;;
        esac
    done << HEADER
$header
HEADER
    if [ -z "$BLOCK_SIZE" ] || [ -z "$BLOCK_COUNT" ]; then
        give_up "no block size or count for $PART"
    fi
}}

e2fsck -fy "$PART" > /dev/null 2>&1
status=$?
[ "$status" -le 1 ] || give_up "e2fsck $PART found errors it did not fix ($status)"

read_geometry
if [ $((BLOCK_COUNT * BLOCK_SIZE / 1024)) -gt "$TARGET_KIB" ]; then
    minimum=$(resize2fs -P "$PART" 2> /dev/null) || give_up "resize2fs -P $PART failed"
    minimum=${{minimum##* }}
    if [ $((minimum * BLOCK_SIZE / 1024)) -gt "$TARGET_KIB" ]; then
        give_up "the file system needs $((minimum * BLOCK_SIZE / 1024)) KiB, more than $TARGET_KIB KiB: it does not fit"
    fi
    say "shrinking the file system on $PART to $TARGET_KIB KiB"
    resize2fs "$PART" "${{TARGET_KIB}}K" > /dev/null 2>&1 || give_up "resize2fs $PART failed"
    read_geometry
fi

fs_sectors=$(((BLOCK_COUNT * BLOCK_SIZE + 511) / 512))
new_sectors=$((fs_sectors + MARGIN_SECTORS))
old_sectors=$(blockdev --getsz "$PART") || give_up "blockdev --getsz $PART failed"
if [ "$new_sectors" -ge "$old_sectors" ]; then
    say "partition 1 is already $old_sectors sectors; nothing to do"
    exit 0
fi
say "shrinking partition 1 of $DISK from $old_sectors to $new_sectors sectors"
tries=0
until echo ",$new_sectors" | sfdisk -q -N 1 --no-reread "$DISK" > /dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || give_up "sfdisk could not rewrite the partition table of $DISK"
    sleep 1
done
if [ -b "$DISK" ]; then
    blockdev --rereadpt "$DISK" > /dev/null 2>&1 || say "the kernel will see the new table at the next boot"
fi
say "done"
"#,
        partition = shrink.partition,
        disk = shrink.disk,
    ))
}

/// The initramfs hook that puts the shrink's programs into the initramfs (an
/// initramfs without busybox has only klibc's tools).
pub const SHRINK_HOOK: &str = r#"#!/bin/sh
# xitc-convert: the programs the shrink script needs, in the initramfs.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for program in e2fsck resize2fs dumpe2fs sfdisk blockdev; do
    path=$(command -v "$program") || { echo "xitc-convert hook: $program not found" >&2; exit 1; }
    copy_exec "$path" /sbin
done
"#;

/// Where the pieces of the dom0 side are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dom0Hook {
    /// The installer's copy of `xsinst/` (`/tmp/ramdisk`).
    pub ramdisk_dir: String,
    /// UUID of the Ubuntu root file system, which dom0 mounts to run the binary.
    pub ubuntu_uuid: String,
    /// Where dom0 mounts it.
    pub ubuntu_mount: String,
    /// The install dir as Ubuntu sees it (`/opt/xenapi-in-the-cloud`).
    pub install_dir: String,
}

/// The script dom0 runs on every boot: mount the Ubuntu partition (by UUID, not
/// by a device name that differs between Ubuntu and dom0) and run xitc-convert
/// from it with its state there. No password: the saved config has all. Its
/// output goes where the hook's goes (the journal, or the console from
/// rc.local): xitc-convert writes its log file itself.
pub fn dom0_boot_script(hook: &Dom0Hook) -> String {
    let quote = xitc_common::shell::shell_quote;
    let mount = quote(&hook.ubuntu_mount);
    let install = quote(&format!(
        "{}/{}",
        hook.ubuntu_mount.trim_end_matches('/'),
        hook.install_dir.trim_start_matches('/')
    ));
    format!(
        "#!/bin/sh\n\
         # xitc-convert: continue the conversion from the Ubuntu partition.\n\
         mkdir -p {mount}\n\
         if ! mountpoint -q {mount}; then\n    \
         mount UUID={uuid} {mount} || {{ echo \"xitc-convert: cannot mount the Ubuntu partition\" >&2; exit 1; }}\n\
         fi\n\
         exec {install}/xitc-convert --install-dir {install}\n",
        uuid = quote(&hook.ubuntu_uuid),
    )
}

/// The installer's post-install script (`filesystem-populated` stage; it gets
/// the new root's mount point as `$1`; its first line must be exactly
/// `#!/bin/sh`, and its exit code is ignored, so it checks and reports itself).
/// It copies the saved cloud settings and authorized_keys into dom0 and
/// installs the dom0 boot hook: a systemd unit where dom0 has systemd
/// (XenServer 7+, XCP-ng 8), `rc.local` otherwise (XenServer 6.x).
pub fn post_install_script(hook: &Dom0Hook) -> String {
    let quote = xitc_common::shell::shell_quote;
    let unit = "[Unit]\nDescription=xitc-convert: continue converting this node\n\
                After=xapi.service\n\n[Service]\nType=oneshot\n\
                ExecStart=/opt/xitc/xitc-dom0-boot\nTimeoutStartSec=infinity\n\n\
                [Install]\nWantedBy=multi-user.target\n";
    format!(
        r#"#!/bin/sh
# xitc-convert: runs in the XenServer installer after the new root is populated.
root="$1"
ramdisk={ramdisk}
log="$root/root/xitc-postinst.log"
if [ -z "$root" ] || [ ! -d "$root" ]; then
    echo "xitc postinst: no new root given" >&2
    exit 1
fi
mkdir -p "$root/root/.ssh" "$root/opt/xitc"
exec >> "$log" 2>&1
echo "xitc postinst: new root $root"
cp "$ramdisk/cloud-settings.json" "$root/root/cloud-settings.json" || echo "xitc postinst: no cloud-settings.json"
cp "$ramdisk/authorized_keys" "$root/root/.ssh/authorized_keys" || echo "xitc postinst: no authorized_keys"
chmod 0600 "$root/root/.ssh/authorized_keys" 2> /dev/null
cp "$ramdisk/xitc-dom0-boot" "$root/opt/xitc/xitc-dom0-boot" || echo "xitc postinst: no boot script"
chmod 0755 "$root/opt/xitc/xitc-dom0-boot"
if [ -d "$root/etc/systemd/system" ]; then
    cat > "$root/etc/systemd/system/xitc-convert.service" << 'UNIT'
{unit}UNIT
    mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
    ln -sf ../xitc-convert.service "$root/etc/systemd/system/multi-user.target.wants/xitc-convert.service"
    echo "xitc postinst: systemd unit installed"
else
    echo "/opt/xitc/xitc-dom0-boot &" >> "$root/etc/rc.d/rc.local"
    chmod +x "$root/etc/rc.d/rc.local"
    echo "xitc postinst: rc.local hook installed"
fi
"#,
        ramdisk = quote(&hook.ramdisk_dir),
    )
}

#[cfg(test)]
mod appliance_network_tests {
    use super::*;
    use crate::settings::CloudSettings;

    fn settings(nameservers: &[&str]) -> CloudSettings {
        CloudSettings {
            version: 1,
            interface: "ens3".into(),
            address: "203.0.113.7".parse().unwrap(),
            prefix: 26,
            netmask: "255.255.255.192".parse().unwrap(),
            gateway: "203.0.113.1".parse().unwrap(),
            mac: "bc:76:4e:20:1a:2b".into(),
            nameservers: nameservers.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn ifupdown_config_puts_the_cloud_on_eth1_and_the_vlan_on_eth2() {
        let text = appliance_interfaces(&settings(&["203.0.113.53", "2001:db8::53"]));
        assert!(text.contains("auto eth0\niface eth0 inet dhcp\n"), "{text}");
        assert!(
            text.contains(
                "iface eth1 inet static\n    address 203.0.113.7\n    netmask 255.255.255.192\n    \
                 gateway 203.0.113.1\n    dns-nameservers 203.0.113.53 2001:db8::53\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "iface eth2 inet static\n    address 192.168.33.1\n    netmask 255.255.255.0\n"
            ),
            "{text}"
        );
        assert!(!appliance_interfaces(&settings(&[])).contains("dns-nameservers"));
    }

    #[test]
    fn netplan_config_reads_back_as_the_same_settings() {
        let text = appliance_netplan(&settings(&["203.0.113.53"]));
        let yaml: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let ethernets = &yaml["network"]["ethernets"];
        assert_eq!(yaml["network"]["version"], 2);
        assert_eq!(ethernets["eth0"]["dhcp4"], true);
        assert_eq!(ethernets["eth1"]["addresses"][0], "203.0.113.7/26");
        assert_eq!(ethernets["eth1"]["routes"][0]["to"], "0.0.0.0/0");
        assert_eq!(ethernets["eth1"]["routes"][0]["via"], "203.0.113.1");
        assert_eq!(
            ethernets["eth1"]["nameservers"]["addresses"][0],
            "203.0.113.53"
        );
        assert_eq!(ethernets["eth2"]["addresses"][0], "192.168.33.1/24");
        let without = appliance_netplan(&settings(&[]));
        let yaml: serde_json::Value = serde_yaml_ng::from_str(&without).unwrap();
        assert!(
            yaml["network"]["ethernets"]["eth1"]
                .get("nameservers")
                .is_none()
        );
    }
}
