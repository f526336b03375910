//! Installer generations: what differs between the XenServer / XCP-ng
//! installers (host-installer) xitc-convert drives, as found on the ISO
//! ([`crate::iso`]). The facts, from the public host-installer repositories
//! (`backend.py`, `diskutil.py`, `constants.py`, `answerfile.py`):
//!
//! - XenServer 6.x reads the 6.x answerfile dialect (`srtype`, `<ip>`,
//!   extlinux). Its ISO has no `.treeinfo`; `packages.main/XS-REPOSITORY`
//!   names the platform (product `XCP`, version 1.x), not "XenServer 6".
//! - XenServer 7.x reads the 7+ dialect; its installer kernel has no virtio
//!   driver, so it cannot see a KVM cloud's `/dev/vda`.
//! - XenServer 8 (release/xs8) and XCP-ng 8.x see virtio disks (`virtio_blk`
//!   loaded by udev; the disk scan takes majors 240-254 and 259 since 2019,
//!   "CP-30566"), and convert a DOS label to GPT keeping partition 1. They
//!   need a disk of at least 46 GiB (`min_primary_disk_size`, checked on the
//!   whole disk); the older generations' minimum is not checked here.
//! - XenServer's main line (here: a XenServer ISO of version 9 or later)
//!   refuses `preserve-first-partition` on a DOS label ("Preserving initial
//!   partition on DOS unsupported") and legacy (BIOS) boot altogether.
//! - XenServer 6.x installs by BIOS only (extlinux in the boot sector); the
//!   later generations install on UEFI too (`target-boot-mode`, chosen by
//!   `/sys/firmware/efi` in the installer's dom0).

use anyhow::Context as _;
use xitc_common::xva;

use crate::iso::Iso;

/// Which answerfile an installer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// XenServer 6.x: `srtype`, `<ip>`/`<subnet-mask>`, extlinux.
    XenServer6,
    /// XenServer 7+ and XCP-ng 8: `sr-type`, `<ipaddr>`/`<subnet>`, grub2.
    XenServer7,
}

/// An installer generation (see the module comment for what tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    XenServer6,
    XenServer7,
    /// XenServer 8 (release/xs8) and XCP-ng 8.x.
    XenServer8,
    /// XenServer's main line after 8.
    XenServerMain,
}

impl Generation {
    /// The generation of an ISO with a `.treeinfo` naming `product` `version`.
    pub fn from_treeinfo(product: &str, version: &str) -> Self {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or(0);
        let xenserver = product.eq_ignore_ascii_case("XenServer");
        match major {
            _ if !xenserver => Generation::XenServer8,
            0..=6 => Generation::XenServer6,
            7 => Generation::XenServer7,
            8 => Generation::XenServer8,
            _ => Generation::XenServerMain,
        }
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Generation::XenServer6 => Dialect::XenServer6,
            _ => Dialect::XenServer7,
        }
    }

    /// Whether the installer's kernel has a virtio block driver.
    pub fn sees_virtio_disks(self) -> bool {
        matches!(self, Generation::XenServer8 | Generation::XenServerMain)
    }

    /// Whether `preserve-first-partition` works on a DOS-labelled disk.
    pub fn keeps_partition_1_on_dos(self) -> bool {
        self != Generation::XenServerMain
    }

    /// Whether it installs on a BIOS-booted machine.
    pub fn installs_on_bios(self) -> bool {
        self != Generation::XenServerMain
    }

    /// Whether it installs on a UEFI-booted machine.
    pub fn installs_on_uefi(self) -> bool {
        self != Generation::XenServer6
    }

    /// The smallest disk the installer takes, where known.
    pub fn minimum_disk_bytes(self) -> Option<u64> {
        matches!(self, Generation::XenServer8 | Generation::XenServerMain).then_some(MIN_DISK_BYTES)
    }
}

/// XenServer 8's and XCP-ng 8.3's `min_primary_disk_size` (`constants.py`).
pub const MIN_DISK_BYTES: u64 = 46 << 30;

/// Which guests the XenServer an installer installs can start (README "What
/// each installer can start", with the sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guests {
    /// PV guests, and HVM guests where the node shows vmx/svm.
    PvAndHvm,
    /// HVM guests only: on a node without vmx/svm, none at all. XCP-ng 8.3
    /// removed PV ("In XCP-ng 8.3, they won't run at all": xcp-ng-org
    /// `docs/releases/release-8-3.md`, "Deprecations and removals").
    HvmOnly,
    /// Not established here: said, never refused.
    Unknown,
}

impl Guests {
    /// The guests of `product` `version`, as `.treeinfo` names them.
    pub fn of(product: &str, version: &str) -> Self {
        if product.eq_ignore_ascii_case("XCP-ng") {
            let mut numbers = version.split('.').map(|part| part.parse::<u32>().ok());
            return match (numbers.next().flatten(), numbers.next().flatten()) {
                (Some(major), Some(minor)) if (major, minor) >= (8, 3) => Guests::HvmOnly,
                (Some(_), Some(_)) => Guests::PvAndHvm,
                _ => Guests::Unknown,
            };
        }
        match Generation::from_treeinfo(product, version) {
            Generation::XenServer6 | Generation::XenServer7 => Guests::PvAndHvm,
            Generation::XenServer8 | Generation::XenServerMain => Guests::Unknown,
        }
    }
}

/// The appliance mode's VM must be able to start: refused (with what to do
/// instead) when `name`'s `guests` are HVM only and the node shows no
/// hardware virtualization (`hardware_virtualization` false; unknown counts
/// as present: not refused on a guess).
pub fn check_appliance_can_start(
    name: &str,
    guests: Guests,
    hardware_virtualization: bool,
) -> Result<(), String> {
    if guests == Guests::HvmOnly && !hardware_virtualization {
        return Err(format!(
            "{name} runs no PV guest, and HVM guests need hardware virtualization, which this \
             node does not show (no vmx or svm in /proc/cpuinfo): the appliance VM could never \
             start. Use --mode direct (no appliance), a flavor with nested virtualization, or \
             an installer that still runs PV guests (XCP-ng 8.2, --iso-url)"
        ));
    }
    Ok(())
}

/// The appliance VM an XVA holds must be able to start on what `name`
/// installs (its `guests`) on this node: xapi starts an HVM, PVH or
/// PV-in-PVH VM only on a host whose capabilities include `hvm`
/// (`Xapi_vm_helpers.assert_can_boot_here`, `VM_HVM_REQUIRED`), and an
/// installer without PV runs no PV VM. `hardware_virtualization` false means
/// the node shows no vmx/svm (unknown counts as present: not refused on a
/// guess).
pub fn check_appliance_boots(
    name: &str,
    guests: Guests,
    vm: &xva::Vm,
    hardware_virtualization: bool,
) -> Result<(), String> {
    let kind = format!(
        "the appliance {:?} is a {} VM{}",
        vm.name_label,
        vm.domain_type.name(),
        if vm.derived {
            " (its export names no domain_type; xapi derives it from HVM_boot_policy)"
        } else {
            ""
        }
    );
    if vm.domain_type == xva::DomainType::Pv && guests == Guests::HvmOnly {
        return Err(format!(
            "{kind}, and {name} runs no PV guest: it could never start. Use an HVM build of \
             the appliance, or an installer that still runs PV guests (XCP-ng 8.2, --iso-url)"
        ));
    }
    if vm.domain_type.needs_hardware_virtualization() && !hardware_virtualization {
        return Err(format!(
            "{kind}, which xapi starts only where the host has hardware virtualization \
             (VM_HVM_REQUIRED), and this node shows no vmx or svm in /proc/cpuinfo: it could \
             never start. Use --mode direct (no appliance), a flavor with nested \
             virtualization, or a PV appliance on an installer that runs PV guests"
        ));
    }
    Ok(())
}

/// The installer an ISO URL's file name names, for `--check` and preflight
/// before the download (XCP-ng's own names: `xcp-ng-8.3.0-20250606.2.iso`);
/// START reads the ISO's `.treeinfo` itself once it has it.
pub fn named_by_url(url: &str) -> Option<(String, String)> {
    let name = url
        .split(['?', '#'])
        .next()?
        .rsplit('/')
        .next()?
        .to_ascii_lowercase();
    let rest = name.strip_prefix("xcp-ng-")?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.');
    (version.contains('.') && version.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| ("XCP-ng".to_owned(), version.to_owned()))
}

/// Which installer an ISO holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installer {
    /// What the ISO calls itself (for the log).
    pub product: String,
    pub version: String,
    pub generation: Generation,
}

/// What the installer must cope with on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDisk<'a> {
    /// The disk as the installer names it (`sda`, `vda`, `nvme0n1`).
    pub installer_name: &'a str,
    pub dos_label: bool,
    pub bytes: u64,
    /// Whether the installer will be booted by UEFI.
    pub uefi: bool,
}

impl Installer {
    /// The guests its XenServer can start.
    pub fn guests(&self) -> Guests {
        Guests::of(&self.product, &self.version)
    }

    /// Product and version, as the log and the refusals name it.
    pub fn name(&self) -> String {
        format!("{} {}", self.product, self.version)
    }

    /// Refuses an installer that cannot do this node's install, with the
    /// reason; checked before the disk is touched.
    pub fn check_node(&self, disk: NodeDisk<'_>) -> Result<(), String> {
        let name = self.name();
        if disk.uefi && !self.generation.installs_on_uefi() {
            return Err(format!(
                "{name}'s installer installs by BIOS only, and this node boots by UEFI: \
                 use XCP-ng 8.3 or XenServer 8 (--iso-url)"
            ));
        }
        if !disk.uefi && !self.generation.installs_on_bios() {
            return Err(format!(
                "{name}'s installer installs on UEFI only, and this node boots by BIOS: \
                 use XCP-ng 8.3 or XenServer 8 (--iso-url)"
            ));
        }
        if disk.installer_name.starts_with("vd") && !self.generation.sees_virtio_disks() {
            return Err(format!(
                "{name}'s installer has no virtio driver and cannot see this node's disk \
                 (/dev/{}): use XCP-ng 8.x or XenServer 8 (--iso-url)",
                disk.installer_name
            ));
        }
        if let Some(minimum) = self.generation.minimum_disk_bytes()
            && disk.bytes < minimum
        {
            return Err(format!(
                "{name}'s installer needs a disk of at least {} GiB, and this node's has {} GiB: \
                 use a larger flavor",
                minimum >> 30,
                disk.bytes >> 30
            ));
        }
        if disk.dos_label && !self.generation.keeps_partition_1_on_dos() {
            return Err(format!(
                "{name}'s installer does not keep partition 1 of a DOS-labelled disk, which \
                 this node has: use XCP-ng 8.3 or XenServer 8 (--iso-url)"
            ));
        }
        Ok(())
    }
}

/// Which installer generations can install on a node with this disk, and
/// why not the others, for `--check` (the ISO itself is checked once
/// downloaded, by [`Installer::check_node`]).
pub fn who_can_install(disk: NodeDisk<'_>) -> String {
    let mut can = vec![];
    let mut cannot = vec![];
    if disk.uefi {
        can.push("XenServer's main line");
    } else {
        cannot.push("XenServer's main line (it installs on UEFI only)".to_owned());
    }
    if disk.bytes >= MIN_DISK_BYTES {
        can.extend(["XCP-ng 8.x", "XenServer 8"]);
    } else {
        cannot.push(format!(
            "XCP-ng 8.x and XenServer 8 (they need a disk of {} GiB, this one has {} GiB)",
            MIN_DISK_BYTES >> 30,
            disk.bytes >> 30
        ));
    }
    if disk.installer_name.starts_with("vd") {
        cannot.push("XenServer 6.x and 7.x (no virtio driver)".to_owned());
    } else if disk.uefi {
        can.push("XenServer 7.x");
        cannot.push("XenServer 6.x (it installs by BIOS only)".to_owned());
    } else {
        can.extend(["XenServer 7.x", "XenServer 6.x"]);
    }
    let can = if can.is_empty() {
        "none".to_owned()
    } else {
        can.join(", ")
    };
    let mut text = if cannot.is_empty() {
        can
    } else {
        format!("{can}; not {}", cannot.join(", not "))
    };
    if disk.dos_label {
        text.push_str(" (a DOS label: all of these keep partition 1 on it)");
    }
    text
}

/// Tells the installer apart by what each generation carries
/// (this module's [`Generation`]): XenServer 7+ and XCP-ng carry `.treeinfo`, which
/// names product and version; an ISO with none but
/// `packages.main/XS-REPOSITORY` is XenServer 6.x, whatever platform that file
/// names (6.2 says product `XCP`, version 1.8.0).
pub fn identify(iso: &mut Iso) -> anyhow::Result<Installer> {
    if let Some(treeinfo) = iso.read_text(".treeinfo")? {
        let (product, version) = treeinfo_identity(&treeinfo)
            .context("the ISO's .treeinfo names no family and version")?;
        let generation = Generation::from_treeinfo(&product, &version);
        return Ok(Installer {
            product,
            version,
            generation,
        });
    }
    if let Some(repository) = iso.read_text("packages.main/XS-REPOSITORY")? {
        let document = roxmltree::Document::parse(&repository)
            .context("the ISO's packages.main/XS-REPOSITORY is not XML")?;
        let root = document.root_element();
        let platform = [root.attribute("product"), root.attribute("version")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        return Ok(Installer {
            product: "XenServer".to_owned(),
            version: format!("6.x (platform {platform})"),
            generation: Generation::XenServer6,
        });
    }
    anyhow::bail!(
        "the ISO is no XenServer or XCP-ng installer (no .treeinfo, no packages.main/XS-REPOSITORY)"
    )
}

/// `family`/`name` and `version` from the `[general]` or `[release]` section.
fn treeinfo_identity(text: &str) -> Option<(String, String)> {
    let mut section = "";
    let (mut product, mut version) = (None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = name;
            continue;
        }
        if !matches!(section, "general" | "release") {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            match key.trim() {
                "family" | "name" => product = product.or_else(|| Some(value.trim().to_owned())),
                "version" => version = version.or_else(|| Some(value.trim().to_owned())),
                _ => {}
            }
        }
    }
    Some((product?, version?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn treeinfo_sections() {
        let xcp = "[general]\nfamily = XCP-ng\nversion = 8.3.0\narch = x86_64\n";
        assert_eq!(
            treeinfo_identity(xcp),
            Some(("XCP-ng".into(), "8.3.0".into()))
        );
        let newer = "[header]\nversion = 1.2\n[release]\nname = XenServer\nversion = 8.4.0\n";
        assert_eq!(
            treeinfo_identity(newer),
            Some(("XenServer".into(), "8.4.0".into()))
        );
        assert_eq!(treeinfo_identity("[general]\narch = x86_64\n"), None);
    }

    #[test]
    fn guests_by_product_and_version() {
        for (product, version, guests) in [
            ("XCP-ng", "8.3.0", Guests::HvmOnly),
            ("XCP-ng", "8.4", Guests::HvmOnly),
            ("XCP-ng", "9.0.1", Guests::HvmOnly),
            ("XCP-ng", "8.2.1", Guests::PvAndHvm),
            ("XCP-ng", "7.6.0", Guests::PvAndHvm),
            ("XCP-ng", "eight", Guests::Unknown),
            ("XenServer", "7.1.2", Guests::PvAndHvm),
            ("XenServer", "8.4.0", Guests::Unknown),
            ("XenServer", "25.1.0", Guests::Unknown),
        ] {
            assert_eq!(Guests::of(product, version), guests, "{product} {version}");
        }
        assert_eq!(
            Guests::of("XenServer", "6.x (platform XCP 1.8.0)"),
            Guests::PvAndHvm
        );
    }

    #[test]
    fn only_an_hvm_only_installer_on_a_node_without_vmx_or_svm_is_refused() {
        let refused = check_appliance_can_start("XCP-ng 8.3.0", Guests::HvmOnly, false);
        assert!(
            refused
                .as_ref()
                .unwrap_err()
                .contains("XCP-ng 8.3.0 runs no PV guest"),
            "{refused:?}"
        );
        assert!(refused.unwrap_err().contains("--mode direct"));
        for (guests, virtualization) in [
            (Guests::HvmOnly, true),
            (Guests::PvAndHvm, false),
            (Guests::Unknown, false),
        ] {
            assert_eq!(
                check_appliance_can_start("x", guests, virtualization),
                Ok(()),
                "{guests:?} {virtualization}"
            );
        }
    }

    #[test]
    fn installers_named_by_their_url() {
        let named = |url: &str| named_by_url(url);
        assert_eq!(
            named("https://mirrors.xcp-ng.org/isos/8.3/xcp-ng-8.3.0-20250606.2.iso?https=1"),
            Some(("XCP-ng".to_owned(), "8.3.0".to_owned()))
        );
        assert_eq!(
            named("http://mirror/XCP-NG-8.2.1.iso"),
            Some(("XCP-ng".to_owned(), "8.2.1".to_owned()))
        );
        for url in [
            "http://mirror/installer.iso",
            "http://mirror/xcp-ng-latest.iso",
            "http://mirror/xcp-ng-8.iso",
            "http://mirror/xcp-ng-8.3/other.iso",
        ] {
            assert_eq!(named(url), None, "{url}");
        }
    }

    #[test]
    fn generations_by_product_and_version() {
        for (product, version, generation) in [
            ("XenServer", "6.2.0", Generation::XenServer6),
            ("XenServer", "7.1.2", Generation::XenServer7),
            ("XenServer", "8.4.0", Generation::XenServer8),
            ("XenServer", "9.0.1", Generation::XenServerMain),
            ("XCP-ng", "8.3.0", Generation::XenServer8),
            ("XCP-ng", "8.2.1", Generation::XenServer8),
        ] {
            assert_eq!(
                Generation::from_treeinfo(product, version),
                generation,
                "{product} {version}"
            );
        }
        assert_eq!(Generation::XenServer6.dialect(), Dialect::XenServer6);
        assert_eq!(Generation::XenServer8.dialect(), Dialect::XenServer7);
    }

    fn installer(generation: Generation) -> Installer {
        Installer {
            product: "P".into(),
            version: "V".into(),
            generation,
        }
    }

    #[test]
    fn each_generation_takes_the_nodes_it_can_install_on() {
        let virtio_gpt = NodeDisk {
            installer_name: "vda",
            dos_label: false,
            bytes: 50 << 30,
            uefi: false,
        };
        let xen_dos = NodeDisk {
            installer_name: "sda",
            dos_label: true,
            bytes: 40 << 30,
            uefi: false,
        };
        let nvme_dos = NodeDisk {
            installer_name: "nvme0n1",
            dos_label: true,
            bytes: 46 << 30,
            uefi: false,
        };
        let xs8 = installer(Generation::XenServer8);
        for disk in [virtio_gpt, nvme_dos] {
            assert_eq!(xs8.check_node(disk), Ok(()), "{disk:?}");
        }
        assert_eq!(
            xs8.check_node(xen_dos),
            Err(
                "P V's installer needs a disk of at least 46 GiB, and this node's has 40 GiB: \
                 use a larger flavor"
                    .into()
            ),
            "the 2014 flavor's 40 GB disk is too small for XenServer 8"
        );
        for old in [Generation::XenServer6, Generation::XenServer7] {
            let error = installer(old).check_node(virtio_gpt).unwrap_err();
            assert!(error.contains("no virtio driver"), "{error}");
            assert!(error.contains("/dev/vda"), "{error}");
            assert_eq!(installer(old).check_node(xen_dos), Ok(()));
        }
        let main = installer(Generation::XenServerMain);
        assert!(
            main.check_node(virtio_gpt)
                .unwrap_err()
                .contains("UEFI only")
        );
        // A UEFI node: the main line installs there, XenServer 6.x does not.
        let uefi = NodeDisk {
            uefi: true,
            ..virtio_gpt
        };
        assert_eq!(main.check_node(uefi), Ok(()));
        assert_eq!(xs8.check_node(uefi), Ok(()));
        let xen_uefi = NodeDisk {
            uefi: true,
            ..xen_dos
        };
        assert!(
            installer(Generation::XenServer6)
                .check_node(xen_uefi)
                .unwrap_err()
                .contains("installs by BIOS only, and this node boots by UEFI")
        );
    }

    #[test]
    fn who_can_install_follows_the_boot() {
        let disk = NodeDisk {
            installer_name: "sda",
            dos_label: false,
            bytes: 50 << 30,
            uefi: true,
        };
        assert_eq!(
            who_can_install(disk),
            "XenServer's main line, XCP-ng 8.x, XenServer 8, XenServer 7.x; not XenServer 6.x \
             (it installs by BIOS only)"
        );
        let bios = NodeDisk {
            uefi: false,
            ..disk
        };
        assert_eq!(
            who_can_install(bios),
            "XCP-ng 8.x, XenServer 8, XenServer 7.x, XenServer 6.x; not XenServer's main line \
             (it installs on UEFI only)"
        );
    }
}
