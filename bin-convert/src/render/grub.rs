//! The GRUB entry that boots the installer once (an `/etc/grub.d` script, so
//! `update-grub` keeps it) and the edit of `/etc/default/grub` that lets
//! `grub-reboot` work.

use xitc_common::exit;

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
    /// The node boots by UEFI: Xen is loaded by `multiboot2` (see
    /// [`grub_installer_script`]).
    pub uefi: bool,
}

/// The GRUB entry name, also given to `grub-reboot`.
pub const INSTALLER_ENTRY: &str = "XenServer installer";

/// `/etc/grub.d/45_xs-install`: a script that prints its own menu entry.
/// `fallback=0`: should the installer not boot (a broken ISO), GRUB boots the
/// first entry, the OS, instead of waiting at its menu.
///
/// The installer's consoles (README "The installer on the serial console"):
/// host-installer's `startup/preinit` runs an unattended install on the
/// *last* `console=` only, and `rt_answerfile=` (where `answerfile=` would
/// draw its text UI there) makes `init` write its log to that console as
/// plain text. So the kernel line ends `console=tty0 console=hvc0`: the log
/// reaches hvc0, which Xen (`com1=… console=com1,vga`) writes to the serial
/// port, the cloud's console log; the screen keeps tty0, where host-installer
/// also writes the same log on tty3. A serial console among them, and the last,
/// is also what makes the installer write dom0's `xe-serial` boot entry and
/// boot it by default (`install.py`, `backend.buildBootLoaderMenu`), so dom0's
/// boots show on the serial port too.
///
/// On BIOS, Xen is loaded by `multiboot`, as in 2014. On UEFI it must be
/// `multiboot2`: only Xen's multiboot2 header asks GRUB to leave the EFI boot
/// services running, and only then does the installer's dom0 see
/// `/sys/firmware/efi` and install for UEFI (host-installer's
/// `UEFI_INSTALLER`); loaded by `multiboot` there, it would install a BIOS
/// boot loader the firmware cannot start. The module comes from Ubuntu's
/// `/boot/grub/x86_64-efi` (its signed GRUB has none built in; preflight checks
/// it is there), `insmod`ed with the file systems the entry reads.
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
    let (modules, hypervisor, module) = if entry.uefi {
        (
            "    insmod part_gpt\n    insmod ext2\n    insmod multiboot2\n",
            "multiboot2",
            "module2",
        )
    } else {
        ("", "multiboot", "module")
    };
    Ok(format!(
        "#!/bin/sh\n\
         exec tail -n +3 \"$0\"\n\
         set fallback=0\n\
         menuentry '{INSTALLER_ENTRY}' {{\n\
         {modules}    \
         search --no-floppy --fs-uuid --set=root {uuid}\n    \
         {hypervisor} {dir}/xen.gz dom0_max_vcpus=1-2 dom0_mem=max:752M com1=115200,8n1 console=com1,vga\n    \
         {module} {dir}/vmlinuz console=tty0 console=hvc0 make-ramdisk={} rt_answerfile={} install\n    \
         {module} {dir}/install.img\n\
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

#[cfg(test)]
mod tests {
    use super::*;

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
            uefi: false,
        })
        .unwrap();
        assert!(
            script.starts_with(
                "#!/bin/sh\nexec tail -n +3 \"$0\"\nset fallback=0\nmenuentry 'XenServer installer' {\n    \
                 search --no-floppy --fs-uuid --set=root 0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19\n"
            )
        );
        assert!(script.contains("multiboot /opt/xs-install/xen.gz "));
        assert!(script.contains("\n    module /opt/xs-install/install.img\n"));
        assert!(!script.contains("insmod"));
        assert!(script.contains(
            "/vmlinuz console=tty0 console=hvc0 make-ramdisk=/dev/sda2 \
             rt_answerfile=file:///tmp/ramdisk/answerfile.xml install\n"
        ));
        let checked = grub_script_check(&script);
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        // On UEFI: multiboot2 and module2, the module and file systems loaded.
        let uefi = grub_installer_script(&InstallerEntry {
            files_dir: "/opt/xs-install/".into(),
            ramdisk_device: "/dev/vda2".into(),
            answerfile_url: "file:///tmp/ramdisk/answerfile.xml".into(),
            root_uuid: "0b6a8b1e-2f4c-4d53-9c1d-5f0e4c3b2a19".into(),
            uefi: true,
        })
        .unwrap();
        assert!(uefi.contains(
            "menuentry 'XenServer installer' {\n    insmod part_gpt\n    insmod ext2\n    \
             insmod multiboot2\n    search --no-floppy --fs-uuid --set=root "
        ));
        assert!(uefi.contains("\n    multiboot2 /opt/xs-install/xen.gz dom0_max_vcpus=1-2 "));
        assert!(uefi.contains(
            "\n    module2 /opt/xs-install/vmlinuz console=tty0 console=hvc0 make-ramdisk=/dev/vda2 "
        ));
        assert!(uefi.contains("\n    module2 /opt/xs-install/install.img\n}\n"));
        let checked = grub_script_check(&uefi);
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
            uefi: false,
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
}
