//! Where things are on the node: the files of a run in the install dir
//! (README "Options" lists them for users), and where each OS mounts the
//! other's root file system. All are node paths; [`crate::system::System`]
//! maps them under `--root` in a sandbox.

use std::path::PathBuf;

/// Where dom0 sees the Ubuntu root file system (its boot script mounts it).
pub const UBUNTU_MOUNT: &str = "/mnt/ubuntu";
/// Where Ubuntu mounts dom0's root file system.
pub const DOM0_MOUNT: &str = "/mnt/dom0";

/// Where START turns GRUB's initrd-less first boot off (`GRUB_FORCE_PARTUUID`,
/// [`crate::layout`]) for the shrink; SETUP_INSTALLER removes it again.
pub const INITRD_BOOT_DROP_IN: &str = "/etc/default/grub.d/99-xitc-convert.cfg";

/// The files of a run, as node paths.
#[derive(Debug, Clone)]
pub struct Files {
    pub install_dir: PathBuf,
    /// This program, where the boot hook starts it.
    pub binary: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub lock: PathBuf,
    /// Ubuntu's root UUID and kernel arguments, recorded by START for the
    /// Ubuntu entry dom0 adds to its boot loader
    /// ([`crate::bootloader::UbuntuBoot`]).
    pub ubuntu_boot: PathBuf,
    /// The size START's initramfs hook shrinks the root to (bytes).
    pub shrink_target: PathBuf,
    /// The downloads.
    pub iso: PathBuf,
    pub appliance_xva: PathBuf,
    /// install.img, xen.gz and vmlinuz read out of the ISO, for the installer
    /// entry.
    pub installer_dir: PathBuf,
    /// What the installer's ramdisk gets (the ISO, the answerfile, the
    /// post-install script, the cloud settings, authorized_keys).
    pub xsinst: PathBuf,
}

impl Files {
    pub fn new(install_dir: PathBuf) -> Self {
        let at = |name: &str| install_dir.join(name);
        Files {
            binary: at("xitc-convert"),
            state: at("xitc-convert.state"),
            config: at("xitc-convert.config"),
            log: at("xitc-convert.log"),
            lock: at("xitc-convert.lock"),
            ubuntu_boot: at("xitc-convert.ubuntu-boot"),
            shrink_target: at("xitc-convert.shrink-target"),
            iso: at("xenserver.iso"),
            appliance_xva: at("appliance.xva"),
            installer_dir: at("installer"),
            xsinst: at("xsinst"),
            install_dir,
        }
    }
}
