//! The installer's answerfile, in the dialect of the installer generation
//! found on the ISO ([`Dialect`]).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use xitc_common::exit;

use crate::network::netmask;

use crate::installer::Dialect;

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
    /// How dom0's management interface on `nic` gets its address.
    pub admin: Admin,
    /// The installer is booted by UEFI: it then installs dom0's GRUB on a new
    /// ESP, and is told not to write a UEFI boot entry (see [`answerfile`]).
    pub uefi: bool,
}

/// dom0's management interface, as installed (`<admin-interface>`, and
/// `<nameserver>` for a static one; host-installer's answerfile.py,
/// `parseInterface` and `parseNSConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// The appliance mode: a temporary static address (2014's choice); the
    /// first boot moves dom0 behind the appliance.
    Temporary,
    /// The direct mode on a DHCP cloud.
    Dhcp,
    /// The direct mode with the config drive's static settings.
    Static {
        address: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
        nameservers: Vec<IpAddr>,
    },
}

/// The temporary static address of dom0 during the install (2014's choice; the
/// real networking is set up by the first boot).
const INSTALL_ADDRESS: (&str, &str, &str) = ("192.168.34.2", "255.255.255.0", "192.168.34.1");

/// Escapes text for XML element content and attribute values.
fn xml_escape(text: &str) -> String {
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
    admin_interface(&mut xml, answers, address_tags);
    xml.push_str("  <timezone>UTC</timezone>\n");
    let _ = writeln!(
        xml,
        "  <script stage=\"filesystem-populated\" type=\"url\">{}</script>",
        e(&answers.post_install_url)
    );
    // On UEFI, `write-boot-entry` (default true) makes the installer run
    // `efibootmgr`, whose failure aborts a fresh install (host-installer
    // backend.py, setEfiBootEntry), and an entry in NVRAM would not survive a
    // snapshot booted elsewhere anyway. Without it the firmware boots the ESP's
    // removable-media path, EFI/BOOT/BOOTX64.EFI, which XCP-ng's grub-efi
    // package installs and the post-install script adds where it is missing.
    // Older parsers ignore the attribute; XenServer 6.x installs by BIOS only.
    let write_boot_entry = match (answers.uefi, answers.dialect) {
        (false, _) => "",
        (true, Dialect::XenServer7) => " write-boot-entry=\"false\"",
        (true, Dialect::XenServer6) => {
            return Err(exit::usage(
                "XenServer 6.x installs by BIOS only, and this node boots by UEFI".to_owned(),
            ));
        }
    };
    let _ = writeln!(
        xml,
        "  <bootloader{write_boot_entry}>{bootloader}</bootloader>"
    );
    xml.push_str("</installation>\n");
    Ok(xml)
}

/// `<admin-interface>` (and `<nameserver>`s) for `answers.admin`, with the
/// dialect's names of the address and netmask elements.
fn admin_interface(xml: &mut String, answers: &Answers, address_tags: (&str, &str)) {
    let (address, mask, gateway, nameservers) = match &answers.admin {
        Admin::Dhcp => {
            let _ = writeln!(
                xml,
                "  <admin-interface name=\"{}\" proto=\"dhcp\"/>",
                xml_escape(&answers.nic)
            );
            (None, None, None, &[][..])
        }
        Admin::Temporary => {
            let (address, mask, gateway) = INSTALL_ADDRESS;
            (
                Some(address.to_owned()),
                Some(mask.to_owned()),
                Some(gateway.to_owned()),
                &[][..],
            )
        }
        Admin::Static {
            address,
            prefix,
            gateway,
            nameservers,
        } => (
            Some(address.to_string()),
            Some(netmask(*prefix).to_string()),
            Some(gateway.to_string()),
            nameservers.as_slice(),
        ),
    };
    if let (Some(address), Some(mask), Some(gateway)) = (address, mask, gateway) {
        let _ = writeln!(
            xml,
            "  <admin-interface name=\"{}\" proto=\"static\">",
            xml_escape(&answers.nic)
        );
        let _ = writeln!(xml, "    <{0}>{address}</{0}>", address_tags.0);
        let _ = writeln!(xml, "    <{0}>{mask}</{0}>", address_tags.1);
        let _ = writeln!(xml, "    <gateway>{gateway}</gateway>");
        xml.push_str("  </admin-interface>\n");
    }
    for server in nameservers {
        let _ = writeln!(xml, "  <nameserver>{server}</nameserver>");
    }
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
            admin: Admin::Temporary,
            uefi: false,
        }
    }

    fn parse(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap()
    }

    #[test]
    fn the_direct_mode_installs_dom0_on_the_clouds_network() {
        let dhcp = answerfile(&Answers {
            admin: Admin::Dhcp,
            ..answers(Dialect::XenServer7)
        })
        .unwrap();
        let document = parse(&dhcp);
        let interface = document
            .descendants()
            .find(|node| node.tag_name().name() == "admin-interface")
            .unwrap();
        assert_eq!(interface.attribute("name"), Some("eth0"));
        assert_eq!(interface.attribute("proto"), Some("dhcp"));
        assert_eq!(interface.children().count(), 0, "{dhcp}");
        assert!(!dhcp.contains("nameserver"), "{dhcp}");

        for (dialect, address_tag, mask_tag) in [
            (Dialect::XenServer7, "ipaddr", "subnet"),
            (Dialect::XenServer6, "ip", "subnet-mask"),
        ] {
            let fixed = answerfile(&Answers {
                admin: Admin::Static {
                    address: "203.0.113.7".parse().unwrap(),
                    prefix: 22,
                    gateway: "203.0.113.1".parse().unwrap(),
                    nameservers: vec![
                        "203.0.113.53".parse().unwrap(),
                        "2001:db8::53".parse().unwrap(),
                    ],
                },
                ..answers(dialect)
            })
            .unwrap();
            let document = parse(&fixed);
            let text = |name: &str| -> Vec<&str> {
                document
                    .descendants()
                    .filter(|node| node.tag_name().name() == name)
                    .filter_map(|node| node.text())
                    .collect()
            };
            assert_eq!(text(address_tag), ["203.0.113.7"]);
            assert_eq!(text(mask_tag), ["255.255.252.0"]);
            assert_eq!(text("gateway"), ["203.0.113.1"]);
            // Top-level, as parseNSConfig reads them.
            let servers: Vec<&str> = document
                .root_element()
                .children()
                .filter(|node| node.tag_name().name() == "nameserver")
                .filter_map(|node| node.text())
                .collect();
            assert_eq!(servers, ["203.0.113.53", "2001:db8::53"]);
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
            assert_eq!(child("bootloader").attribute("write-boot-entry"), None);
            assert!(xml.is_ascii());
        }
    }

    #[test]
    fn a_uefi_install_writes_no_boot_entry() {
        let uefi = Answers {
            uefi: true,
            ..answers(Dialect::XenServer7)
        };
        let xml = answerfile(&uefi).unwrap();
        let document = roxmltree::Document::parse(&xml).unwrap();
        let bootloader = document
            .descendants()
            .find(|node| node.tag_name().name() == "bootloader")
            .unwrap();
        assert_eq!(bootloader.text(), Some("grub2"));
        assert_eq!(bootloader.attribute("write-boot-entry"), Some("false"));
        let xs6 = Answers {
            uefi: true,
            ..answers(Dialect::XenServer6)
        };
        assert!(
            answerfile(&xs6)
                .unwrap_err()
                .to_string()
                .contains("BIOS only")
        );
    }

    #[test]
    fn answerfile_values_must_be_plain_ascii() {
        for bad in ["", " sda", "sdä", "sd\na"] {
            let mut wrong = answers(Dialect::XenServer7);
            wrong.disk = bad.into();
            assert!(answerfile(&wrong).is_err(), "{bad:?}");
        }
    }
}
