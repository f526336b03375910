//! The files xitc-convert writes, built as data and rendered once, one file
//! per artefact: the installer's answerfile, its GRUB entry and the edit of
//! /etc/default/grub, the boot hooks (systemd, upstart, dom0's boot script,
//! the installer's post-install script), the initramfs shrink, Ubuntu's fstab
//! around the install, and the appliance's network configuration. Nothing is patched with `sed`: inputs
//! are parsed, values escaped, and the output checked by the tools that read
//! it (tests run grub-script-check, an XML parser, shellcheck and
//! systemd-analyze on them).

pub mod answerfile;
pub mod appliance_network;
pub mod boot_hooks;
pub mod fstab;
pub mod grub;
pub mod shrink;

pub use answerfile::{Admin, Answers, answerfile};
pub use appliance_network::{appliance_interfaces, appliance_netplan};
pub use boot_hooks::{
    Dom0Hook, dom0_boot_script, post_install_script, systemd_program_problem, systemd_unit,
    upstart_job,
};
pub use grub::{INSTALLER_ENTRY, InstallerEntry, edit_default_grub, grub_installer_script};
pub use shrink::{SHRINK_HOOK, SHRINK_MARGIN_SECTORS, Shrink, shrink_premount_script};
