//! The node's platform, read from the running system: how it booted (BIOS or
//! UEFI, and with Secure Boot on or off) and whether its CPU shows hardware
//! virtualization. Preflight reports both, and refuses a UEFI node whose
//! installer cannot boot (README "Supported images").
//!
//! Sources: the kernel exposes `/sys/firmware/efi` only when it was booted by
//! UEFI; the Secure Boot state is the UEFI global variable `SecureBoot`
//! (efivarfs: 4 bytes of attributes, then the value, 1 = on); on a UEFI node,
//! GRUB can boot Xen by `multiboot2` only with that module, which Ubuntu's
//! signed GRUB lacks built in and `grub-efi-amd64-bin` puts in
//! `/boot/grub/x86_64-efi/` (grub-install copies it there; Ubuntu's and
//! Debian's shim-signed depend on that package). With Secure Boot off, the
//! signed GRUB loads it: GRUB enforces signatures on modules only under Secure
//! Boot. Where the module is missing, the node is refused with the remedy.

use crate::system::System;

/// The efivarfs file of the UEFI global variable `SecureBoot`.
pub const SECURE_BOOT_VARIABLE: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// Where GRUB's multiboot2 module is when the node's GRUB can load it.
pub const MULTIBOOT2_MODULE: &str = "/boot/grub/x86_64-efi/multiboot2.mod";

/// How the node booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi { secure_boot: SecureBoot },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureBoot {
    On,
    Off,
    /// The variable is there but cannot be read, or says nothing we know
    /// (why, for the refusal).
    Unknown(String),
}

impl Firmware {
    pub fn read(system: &System) -> Self {
        if !system.exists("/sys/firmware/efi") {
            return Firmware::Bios;
        }
        let variable = system.path(SECURE_BOOT_VARIABLE);
        // No variable: firmware without Secure Boot at all. Read front to
        // back, never by seeking: efivarfs files cannot seek (a tail read
        // failed there in the real-VM test and took Secure Boot for off).
        let secure_boot = if variable.exists() {
            match xitc_common::files::read_bounded(&variable, "the UEFI variable", 64) {
                Err(error) => SecureBoot::Unknown(format!("{error:#}")),
                Ok(bytes) => match bytes.get(4) {
                    Some(1) => SecureBoot::On,
                    Some(0) => SecureBoot::Off,
                    _ => SecureBoot::Unknown(format!(
                        "the UEFI variable SecureBoot holds {bytes:02x?}, not 0 or 1"
                    )),
                },
            }
        } else {
            SecureBoot::Off
        };
        Firmware::Uefi { secure_boot }
    }
}

/// How the installer is booted on this node: what START's GRUB entry (Xen by
/// `multiboot` on BIOS, `multiboot2` on UEFI) and the answerfile follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    Bios,
    /// UEFI with Secure Boot off, and GRUB's multiboot2 module on disk.
    Uefi,
}

impl Boot {
    /// The boot this node allows, or why it cannot boot the installer: Secure
    /// Boot on (or unreadable), or a UEFI GRUB without the multiboot2 module.
    pub fn read(system: &System) -> Result<Boot, String> {
        match Firmware::read(system) {
            Firmware::Bios => Ok(Boot::Bios),
            Firmware::Uefi {
                secure_boot: SecureBoot::On,
            } => Err(
                "Secure Boot is on (UEFI variable SecureBoot): neither the installer nor \
                 Xen booted by multiboot2 can start under it; boot the node from an image or \
                 flavor without Secure Boot"
                    .to_owned(),
            ),
            Firmware::Uefi {
                secure_boot: SecureBoot::Unknown(why),
            } => Err(format!("cannot tell whether Secure Boot is on: {why}")),
            Firmware::Uefi {
                secure_boot: SecureBoot::Off,
            } if system.exists(MULTIBOOT2_MODULE) => Ok(Boot::Uefi),
            Firmware::Uefi { .. } => Err(format!(
                "the node boots by UEFI and its GRUB cannot load multiboot2, which boots Xen \
                 there: {MULTIBOOT2_MODULE} is missing (apt-get install grub-efi-amd64-bin, \
                 then grub-install --target=x86_64-efi --no-nvram)"
            )),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Boot::Bios => "BIOS: GRUB boots Xen for the installer by multiboot",
            Boot::Uefi => {
                "UEFI, Secure Boot off: GRUB boots Xen for the installer by multiboot2 \
                 (insmod from /boot/grub/x86_64-efi); the installer writes no UEFI boot \
                 entry, the firmware finds dom0's GRUB by the removable-media path"
            }
        }
    }
}

/// Hardware virtualization as the node's CPU flags show it. Without it, the
/// XenServer that runs here nested starts no HVM guest, and on an installer
/// without PV guests (XCP-ng 8.3) none at all: the appliance mode is refused
/// there (`installer::check_appliance_can_start`), the direct mode warned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Virtualization {
    /// `vmx` (Intel VT-x) or `svm` (AMD-V) among the flags.
    Present(&'static str),
    /// Neither flag.
    Absent,
    /// `/proc/cpuinfo` could not be read (why).
    Unknown(String),
}

impl Virtualization {
    /// Reads the flags in `/proc/cpuinfo`.
    pub fn read(system: &System) -> Self {
        match system.read_to_string("/proc/cpuinfo") {
            Err(error) => Virtualization::Unknown(format!("cannot read /proc/cpuinfo: {error}")),
            Ok(text) => {
                let has = |flag: &str| {
                    text.lines()
                        .filter(|line| line.starts_with("flags"))
                        .any(|line| line.split_whitespace().any(|word| word == flag))
                };
                if has("vmx") {
                    Virtualization::Present("Intel VT-x (vmx)")
                } else if has("svm") {
                    Virtualization::Present("AMD-V (svm)")
                } else {
                    Virtualization::Absent
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Virtualization::Present(what) => format!(
                "{what}: HVM guests can run (PV guests too, on installers that still run them)"
            ),
            Virtualization::Absent => "none (no vmx or svm in /proc/cpuinfo): no HVM guest \
                 will start, and on an installer without PV guests (XCP-ng 8.3) no guest at all"
                .to_owned(),
            Virtualization::Unknown(why) => format!("unknown ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> (tempfile::TempDir, System) {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        (dir, system)
    }

    #[test]
    fn virtualization_comes_from_the_cpu_flags() {
        let (dir, system) = sandbox();
        assert!(matches!(
            Virtualization::read(&system),
            Virtualization::Unknown(_)
        ));
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        for (flags, expected) in [
            (
                "fpu vme vmx sse2",
                Virtualization::Present("Intel VT-x (vmx)"),
            ),
            ("fpu svm lm", Virtualization::Present("AMD-V (svm)")),
            ("fpu vme sse2 hypervisor", Virtualization::Absent),
            // A word that contains the flag is not the flag.
            ("fpu vmxe", Virtualization::Absent),
        ] {
            std::fs::write(
                dir.path().join("proc/cpuinfo"),
                format!(
                    "processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
                ),
            )
            .unwrap();
            assert_eq!(Virtualization::read(&system), expected, "{flags}");
        }
    }

    #[test]
    fn firmware_secure_boot_and_the_boot_it_allows() {
        let (dir, system) = sandbox();
        assert_eq!(Firmware::read(&system), Firmware::Bios);
        let efivars = dir.path().join("sys/firmware/efi/efivars");
        std::fs::create_dir_all(&efivars).unwrap();
        let uefi = |secure_boot| Firmware::Uefi { secure_boot };
        assert_eq!(
            Firmware::read(&system),
            uefi(SecureBoot::Off),
            "no variable"
        );
        let variable = system.path(SECURE_BOOT_VARIABLE);
        for (value, expected) in [
            (1u8, SecureBoot::On),
            (0, SecureBoot::Off),
            (
                7,
                SecureBoot::Unknown(
                    "the UEFI variable SecureBoot holds [06, 00, 00, 00, 07], not 0 or 1".into(),
                ),
            ),
        ] {
            std::fs::write(&variable, [6, 0, 0, 0, value]).unwrap();
            assert_eq!(Firmware::read(&system), uefi(expected), "{value}");
        }
        std::fs::write(&variable, [6, 0, 0, 0, 1]).unwrap();
        assert!(
            Boot::read(&system)
                .unwrap_err()
                .contains("Secure Boot is on")
        );
        std::fs::write(&variable, [6, 0, 0, 0, 7]).unwrap();
        assert!(
            Boot::read(&system)
                .unwrap_err()
                .contains("holds [06, 00, 00, 00, 07]")
        );
        // Unreadable: refused, never taken for off.
        std::fs::remove_file(&variable).unwrap();
        std::fs::create_dir(&variable).unwrap();
        assert!(
            Boot::read(&system)
                .unwrap_err()
                .starts_with("cannot tell whether Secure Boot is on: the UEFI variable ")
        );
        std::fs::remove_dir(&variable).unwrap();
        std::fs::write(&variable, [6, 0, 0, 0, 0]).unwrap();
        assert!(
            Boot::read(&system)
                .unwrap_err()
                .contains("multiboot2.mod is missing")
        );
        let module = system.path(MULTIBOOT2_MODULE);
        std::fs::create_dir_all(module.parent().unwrap()).unwrap();
        std::fs::write(&module, "").unwrap();
        assert_eq!(Boot::read(&system), Ok(Boot::Uefi));
        std::fs::remove_dir_all(dir.path().join("sys/firmware/efi")).unwrap();
        assert_eq!(Boot::read(&system), Ok(Boot::Bios));
    }
}
