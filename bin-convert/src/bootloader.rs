//! dom0's boot loader: extlinux on XenServer 6.x, GRUB2 on XenServer 7+ and
//! XCP-ng 8 (BIOS or EFI). The conversion adds one Ubuntu entry and flips the
//! default between Ubuntu and XenServer on every cycle.
//!
//! Edits parse the file and change only what they mean to: the default and our
//! own entry; everything else is written back as it was. The XenServer entry
//! that was the default when the Ubuntu entry was added is remembered in a
//! comment beside it, so switching back returns to exactly that entry. Adding
//! is idempotent: a file never grows over cycles.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::system::System;

/// The title/label of our entry.
pub const UBUNTU_ENTRY: &str = "Ubuntu (xitc-convert)";
const EXTLINUX_LABEL: &str = "xitc-ubuntu";
const REMEMBER: &str = "# xitc-convert: XenServer default: ";

/// Which boot loader, and where its configuration is (a node path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootLoader {
    Extlinux(String),
    Grub(String),
}

/// Keeps Ubuntu, booted from dom0's menu, off XenServer's partitions: on a disk
/// the installer has laid out, systemd-gpt-auto-generator finds dom0's swap
/// partition (GPT type Linux swap, on the root's disk) and Ubuntu swaps on it
/// (seen in the real-VM test's bounce). systemd 242 and later read this
/// (systemd-gpt-auto-generator(8)); older ones, and kernels, ignore it.
pub const NO_GPT_AUTO: &str = "systemd.gpt_auto=0";

/// The boot files of the Ubuntu entry, as dom0's boot loader sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbuntuEntry {
    pub kernel: String,
    pub initrd: String,
    /// Ubuntu's root (by UUID: device names differ between Ubuntu and dom0)
    /// and its own kernel arguments, after `root=UUID=… ro`.
    pub ubuntu: UbuntuBoot,
    /// The UUID of dom0's file system that holds `kernel` and `initrd`. GRUB
    /// needs it: its `search` makes that file system the entry's root, which
    /// it is not by default where grub.cfg lives on the EFI system partition
    /// (and searching for Ubuntu's file system instead would look for the
    /// copies where they are not). extlinux reads only its own file system and
    /// needs none.
    pub files_uuid: Option<String>,
}

impl UbuntuEntry {
    /// The kernel's arguments: Ubuntu's root, [`NO_GPT_AUTO`], then Ubuntu's
    /// own.
    fn kernel_args(&self) -> String {
        let UbuntuBoot { root_uuid, args } = &self.ubuntu;
        if args.is_empty() {
            format!("root=UUID={root_uuid} ro {NO_GPT_AUTO}")
        } else {
            format!("root=UUID={root_uuid} ro {NO_GPT_AUTO} {args}")
        }
    }
}

/// What START records in Ubuntu for the entry dom0 adds later, as JSON in the
/// install dir: dom0 sees neither Ubuntu's command line nor, on XenServer
/// 6.x (CentOS 5), a `findmnt` to ask for Ubuntu's UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UbuntuBoot {
    /// The UUID of Ubuntu's root file system.
    pub root_uuid: String,
    /// [`kept_kernel_args`] of Ubuntu's command line, space-separated.
    pub args: String,
}

impl UbuntuBoot {
    pub fn load(system: &System, path: &Path) -> anyhow::Result<UbuntuBoot> {
        let text = system
            .read_to_string(path)
            .with_context(|| format!("reading {} (START records it)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }
}

/// The arguments of Ubuntu's kernel command line (`/proc/cmdline`) that its
/// entry in dom0's boot loader keeps, and those it leaves out: out go what the
/// entry sets itself (`BOOT_IMAGE=`, `root=`, `ro`, `rw`, `initrd=`), what
/// follows `--` (init's), and any argument with a character GRUB's script
/// syntax would read (quotes, `$`, `;`, `\\`, braces…). Kept are the ones that
/// make Ubuntu boot the same from dom0's menu as from its own: the consoles a
/// cloud shows in its console log, `net.ifnames=0` (without which `eth0`
/// becomes `ens3` and Ubuntu's network configuration finds no interface)…
pub fn kept_kernel_args(cmdline: &str) -> (Vec<&str>, Vec<&str>) {
    let plain = |arg: &str| {
        arg.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._,:=/+-@%~".contains(c))
    };
    let set_by_the_entry = |arg: &str| {
        matches!(arg, "ro" | "rw")
            || ["BOOT_IMAGE=", "root=", "initrd="]
                .iter()
                .any(|prefix| arg.starts_with(prefix))
    };
    cmdline
        .split_whitespace()
        .take_while(|arg| *arg != "--")
        .filter(|arg| !set_by_the_entry(arg))
        .partition(|arg| plain(arg))
}

/// Finds dom0's boot loader under `boot_root` (dom0's `/`, or where Ubuntu
/// mounted it): the EFI GRUB configuration, the BIOS one, then extlinux.
pub fn detect(system: &System, boot_root: &str) -> anyhow::Result<BootLoader> {
    let root = boot_root.trim_end_matches('/');
    for (candidate, grub) in [
        (format!("{root}/boot/efi/EFI/xenserver/grub.cfg"), true),
        (format!("{root}/boot/grub/grub.cfg"), true),
        (format!("{root}/boot/extlinux.conf"), false),
    ] {
        if system.exists(&candidate) {
            return Ok(if grub {
                BootLoader::Grub(candidate)
            } else {
                BootLoader::Extlinux(candidate)
            });
        }
    }
    anyhow::bail!("no boot loader configuration found under {root}/boot (GRUB2 or extlinux)")
}

impl BootLoader {
    fn path(&self) -> &str {
        match self {
            BootLoader::Extlinux(path) | BootLoader::Grub(path) => path,
        }
    }

    fn edit(
        &self,
        system: &System,
        change: impl FnOnce(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        let path = self.path();
        let text = system
            .read_to_string(path)
            .with_context(|| format!("reading {path}"))?;
        let changed = change(&text)?;
        if changed != text {
            system.write_atomic(Path::new(path), changed.as_bytes(), 0o644)?;
        }
        Ok(())
    }

    /// Adds the Ubuntu entry unless it is there.
    pub fn add_ubuntu(&self, system: &System, entry: &UbuntuEntry) -> anyhow::Result<()> {
        match self {
            BootLoader::Extlinux(_) => self.edit(system, |text| Ok(extlinux_add(text, entry))),
            BootLoader::Grub(_) => self.edit(system, |text| grub_add(text, entry)),
        }
    }

    /// Makes Ubuntu (`true`) or XenServer the default.
    pub fn set_default(&self, system: &System, ubuntu: bool) -> anyhow::Result<()> {
        match self {
            BootLoader::Extlinux(_) => self.edit(system, |text| extlinux_default(text, ubuntu)),
            BootLoader::Grub(_) => self.edit(system, |text| grub_default(text, ubuntu)),
        }
    }
}

fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The value of the first top-level `default X` line of an extlinux.conf.
fn extlinux_current_default(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words
            .next()
            .filter(|word| word.eq_ignore_ascii_case("default"))
            .and_then(|_| words.next())
            .map(str::to_owned)
    })
}

pub fn extlinux_add(text: &str, entry: &UbuntuEntry) -> String {
    let has_label = text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case("label"))
            && words.next() == Some(EXTLINUX_LABEL)
    });
    if has_label {
        return text.to_owned();
    }
    let remembered = extlinux_current_default(text).unwrap_or_else(|| "xe".to_owned());
    let out = with_newline(text.to_owned());
    format!(
        "{out}\n{REMEMBER}{remembered}\nlabel {EXTLINUX_LABEL}\n  # {UBUNTU_ENTRY}\n  kernel {}\n  \
         append {}\n  initrd {}\n",
        entry.kernel,
        entry.kernel_args(),
        entry.initrd
    )
}

fn remembered(text: &str) -> anyhow::Result<String> {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(REMEMBER)
                .map(|value| value.trim().to_owned())
        })
        .context("the boot loader configuration has no Ubuntu entry yet")
}

pub fn extlinux_default(text: &str, ubuntu: bool) -> anyhow::Result<String> {
    let wanted = if ubuntu {
        EXTLINUX_LABEL.to_owned()
    } else {
        remembered(text)?
    };
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let is_default = line
                .split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case("default"));
            if is_default && !replaced {
                replaced = true;
                format!("default {wanted}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let mut out = lines.join("\n");
    if !replaced {
        out = format!("default {wanted}\n{out}");
    }
    Ok(with_newline(out))
}

/// The value of the top-level `set default=…` line of a grub.cfg.
fn grub_current_default(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("set default=")
            .map(|value| value.trim().trim_matches('"').trim_matches('\'').to_owned())
    })
}

pub fn grub_add(text: &str, entry: &UbuntuEntry) -> anyhow::Result<String> {
    if text.contains(&format!("menuentry '{UBUNTU_ENTRY}'")) {
        return Ok(text.to_owned());
    }
    let files_uuid = entry
        .files_uuid
        .as_deref()
        .context("GRUB's Ubuntu entry needs the UUID of the file system holding its kernel")?;
    let remembered = grub_current_default(text).unwrap_or_else(|| "0".to_owned());
    let out = with_newline(text.to_owned());
    Ok(format!(
        "{out}\n{REMEMBER}{remembered}\nmenuentry '{UBUNTU_ENTRY}' {{\n\tsearch --no-floppy --fs-uuid --set root {files_uuid}\n\t\
         linux {} {}\n\tinitrd {}\n}}\n",
        entry.kernel,
        entry.kernel_args(),
        entry.initrd,
    ))
}

pub fn grub_default(text: &str, ubuntu: bool) -> anyhow::Result<String> {
    let wanted = if ubuntu {
        format!("\"{UBUNTU_ENTRY}\"")
    } else {
        let value = remembered(text)?;
        if value.chars().all(|c| c.is_ascii_digit()) {
            value
        } else {
            format!("\"{value}\"")
        }
    };
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim().starts_with("set default=") && !replaced {
                replaced = true;
                format!("set default={wanted}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let mut out = lines.join("\n");
    if !replaced {
        out = format!("set default={wanted}\n{out}");
    }
    Ok(with_newline(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XS62_EXTLINUX: &str = "# location mbr\nserial 0 115200\ndefault xe-serial\nprompt 1\ntimeout 50\n\n\
        label xe\n  # XenServer\n  kernel mboot.c32\n  append /boot/xen.gz dom0_mem=752M,max:752M --- \
        /boot/vmlinuz-2.6-xen root=LABEL=root-abc ro --- /boot/initrd-2.6-xen.img\n\n\
        label xe-serial\n  # XenServer (Serial)\n  kernel mboot.c32\n  append /boot/xen.gz com1=115200,8n1 \
        console=com1 --- /boot/vmlinuz-2.6-xen root=LABEL=root-abc ro console=hvc0 --- /boot/initrd-2.6-xen.img\n\n\
        label safe\n  # XenServer in Safe Mode\n  kernel mboot.c32\n  append /boot/xen.gz nosmp --- \
        /boot/vmlinuz-2.6-xen nousb root=LABEL=root-abc ro --- /boot/initrd-2.6-xen.img\n";

    const XCPNG83_GRUB: &str = "serial --unit=0 --speed=115200\nterminal_input serial console\n\
        terminal_output serial console\nset default=0\nset timeout=5\n\
        menuentry 'XCP-ng' {\n\tsearch --label --set root root-vgdorj\n\tmultiboot2 /boot/xen.gz dom0_mem=2048M,max:2048M\n\
        \tmodule2 /boot/vmlinuz-4.19-xen root=LABEL=root-vgdorj ro\n\tmodule2 /boot/initrd-4.19-xen.img\n}\n\
        menuentry 'XCP-ng (Serial)' {\n\tsearch --label --set root root-vgdorj\n\tmultiboot2 /boot/xen.gz com1=115200,8n1\n\
        \tmodule2 /boot/vmlinuz-4.19-xen root=LABEL=root-vgdorj ro console=hvc0\n\tmodule2 /boot/initrd-4.19-xen.img\n}\n";

    fn entry() -> UbuntuEntry {
        UbuntuEntry {
            kernel: "/boot/vmlinuz-ubuntu".into(),
            initrd: "/boot/initrd-ubuntu".into(),
            ubuntu: UbuntuBoot {
                root_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".into(),
                args: "console=tty1 console=ttyS0 net.ifnames=0".into(),
            },
            files_uuid: Some("5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b".into()),
        }
    }

    #[test]
    fn ubuntus_own_kernel_arguments_are_kept_unless_the_entry_sets_them_or_grub_would_read_them() {
        let (kept, left_out) = kept_kernel_args(
            "BOOT_IMAGE=/boot/vmlinuz-6.8.0-31-generic root=UUID=0b6a8b1e ro console=tty1 \
             console=ttyS0,115200n8 net.ifnames=0 biosdevname=0 nvme_core.io_timeout=4294967295 \
             quiet splash rw initrd=/x evil=$(reboot) a;b x=\"y z\" -- single\n",
        );
        assert_eq!(
            kept,
            [
                "console=tty1",
                "console=ttyS0,115200n8",
                "net.ifnames=0",
                "biosdevname=0",
                "nvme_core.io_timeout=4294967295",
                "quiet",
                "splash",
            ]
        );
        assert_eq!(left_out, ["evil=$(reboot)", "a;b", "x=\"y", "z\""]);
        assert_eq!(kept_kernel_args(""), (vec![], vec![]));
    }

    #[test]
    fn extlinux_gets_one_entry_and_flips_back_to_the_original_default() {
        let added = extlinux_add(XS62_EXTLINUX, &entry());
        assert!(
            added.starts_with(XS62_EXTLINUX),
            "the rest is kept as it was"
        );
        assert!(added.contains("label xitc-ubuntu\n"));
        assert!(added.contains(
            "append root=UUID=0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19 ro systemd.gpt_auto=0 console=tty1 console=ttyS0 net.ifnames=0\n"
        ));
        assert_eq!(
            extlinux_add(&added, &entry()),
            added,
            "adding twice changes nothing"
        );
        let ubuntu = extlinux_default(&added, true).unwrap();
        assert_eq!(
            extlinux_current_default(&ubuntu).as_deref(),
            Some("xitc-ubuntu")
        );
        let xenserver = extlinux_default(&ubuntu, false).unwrap();
        assert_eq!(xenserver, added, "back to xe-serial, byte for byte");
        // Cycles do not grow the file.
        let mut text = added.clone();
        for _ in 0..5 {
            text = extlinux_default(&extlinux_default(&text, true).unwrap(), false).unwrap();
        }
        assert_eq!(text, added);
    }

    #[test]
    fn grub_gets_one_entry_and_flips_back_to_the_original_default() {
        let added = grub_add(XCPNG83_GRUB, &entry()).unwrap();
        assert!(added.starts_with(XCPNG83_GRUB));
        // The kernel and initrd are found on dom0's file system, Ubuntu's is
        // the kernel's root.
        assert!(added.contains(
            "menuentry 'Ubuntu (xitc-convert)' {\n\tsearch --no-floppy --fs-uuid --set root 5d1c7e0a-88b3-4f0e-a6a1-2c9d3e4f5a6b\n\t\
             linux /boot/vmlinuz-ubuntu root=UUID=0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19 ro systemd.gpt_auto=0 \
             console=tty1 console=ttyS0 net.ifnames=0\n"
        ));
        assert_eq!(grub_add(&added, &entry()).unwrap(), added);
        let ubuntu = grub_default(&added, true).unwrap();
        assert_eq!(
            grub_current_default(&ubuntu).as_deref(),
            Some("Ubuntu (xitc-convert)")
        );
        assert!(ubuntu.contains("set default=\"Ubuntu (xitc-convert)\"\n"));
        assert_eq!(grub_default(&ubuntu, false).unwrap(), added);
    }

    #[test]
    fn switching_back_needs_the_entry_first() {
        assert!(extlinux_default(XS62_EXTLINUX, false).is_err());
        assert!(grub_default(XCPNG83_GRUB, false).is_err());
    }

    #[test]
    fn a_grub_entry_without_the_files_file_system_is_refused() {
        let entry = UbuntuEntry {
            files_uuid: None,
            ..entry()
        };
        assert!(grub_add(XCPNG83_GRUB, &entry).is_err());
        assert!(extlinux_add(XS62_EXTLINUX, &entry).contains("label xitc-ubuntu\n"));
    }

    #[test]
    fn the_grub_entry_passes_grub_script_check() {
        use std::io::Write as _;
        let text = grub_default(&grub_add(XCPNG83_GRUB, &entry()).unwrap(), true).unwrap();
        let mut child = std::process::Command::new("grub-script-check")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("grub-script-check (scripts/install-test-deps)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn detection_prefers_efi_then_bios_grub_then_extlinux() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        assert!(detect(&system, "/").is_err());
        std::fs::create_dir_all(dir.path().join("boot/grub")).unwrap();
        std::fs::write(dir.path().join("boot/extlinux.conf"), XS62_EXTLINUX).unwrap();
        assert_eq!(
            detect(&system, "/").unwrap(),
            BootLoader::Extlinux("/boot/extlinux.conf".into())
        );
        std::fs::write(dir.path().join("boot/grub/grub.cfg"), XCPNG83_GRUB).unwrap();
        assert_eq!(
            detect(&system, "/").unwrap(),
            BootLoader::Grub("/boot/grub/grub.cfg".into())
        );
        std::fs::create_dir_all(dir.path().join("mnt/dom0/boot/efi/EFI/xenserver")).unwrap();
        std::fs::write(
            dir.path().join("mnt/dom0/boot/efi/EFI/xenserver/grub.cfg"),
            XCPNG83_GRUB,
        )
        .unwrap();
        let efi = detect(&system, "/mnt/dom0").unwrap();
        assert_eq!(
            efi,
            BootLoader::Grub("/mnt/dom0/boot/efi/EFI/xenserver/grub.cfg".into())
        );
        efi.add_ubuntu(&system, &entry()).unwrap();
        efi.set_default(&system, true).unwrap();
        let written =
            std::fs::read_to_string(dir.path().join("mnt/dom0/boot/efi/EFI/xenserver/grub.cfg"))
                .unwrap();
        assert!(written.contains("set default=\"Ubuntu (xitc-convert)\""));
    }
}
