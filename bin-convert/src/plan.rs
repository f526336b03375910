//! What each state does: an ordered list of named steps (DESIGN §5). The frame
//! runs them in order and records the next state only when all have succeeded,
//! so a crash or power loss anywhere re-runs the state; every step is
//! idempotent for that reason.
//!
//! The steps' work is being built (issues "xitc-convert part 1/2"): a step
//! without its work yet has no action, and a real run refuses, before any
//! change, to start while any state has such a step.

use crate::dom0;
use crate::setup_installer;
use crate::start;
use crate::state::State;
use crate::work::{self, Work};

/// A step's work.
pub type Action = fn(&mut Work<'_>) -> anyhow::Result<()>;

/// One step: its name, what it does (for `--dry-run`), and its work.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub name: &'static str,
    pub does: &'static str,
    pub action: Option<Action>,
}

const fn todo(name: &'static str, does: &'static str) -> Step {
    Step {
        name,
        does,
        action: None,
    }
}

const fn step(name: &'static str, does: &'static str, action: Action) -> Step {
    Step {
        name,
        does,
        action: Some(action),
    }
}

/// The steps of `state`, in order.
pub fn steps(state: State) -> &'static [Step] {
    match state {
        State::Start => &START,
        State::SetupInstaller => &SETUP_INSTALLER,
        State::XenserverFirstboot => &XENSERVER_FIRSTBOOT,
        State::Ubuntu => &UBUNTU,
        State::Xenserver => &XENSERVER,
    }
}

const START: [Step; 9] = [
    step(
        "preflight",
        "check root, the root file system, space, GRUB2 and the network before any change",
        start::preflight,
    ),
    step(
        "save-config",
        "save this run's settings (0600, password as a hash) for the boot-time runs",
        start::save_config,
    ),
    step(
        "boot-hook",
        "install the systemd unit (upstart job without systemd) that re-runs xitc-convert on every boot",
        start::boot_hook,
    ),
    step(
        "download",
        "download the XenServer ISO and the appliance XVA in parallel, resumable, SHA-256 checked",
        start::download,
    ),
    step(
        "installer-files",
        "read install.img, boot/xen.gz, boot/vmlinuz and .treeinfo out of the ISO",
        start::installer_files,
    ),
    step(
        "ramdisk-source",
        "write the installer's xsinst/ (ISO, answerfile.xml, post-install script, dom0 boot hook)",
        start::ramdisk_source,
    ),
    step(
        "grub-entry",
        "add the \"XenServer installer\" GRUB entry, GRUB_DEFAULT=saved, update-grub",
        start::grub_entry,
    ),
    step(
        "shrink-hook",
        "install the initramfs hook that shrinks the root file system and partition 1; update-initramfs",
        start::shrink_hook,
    ),
    step("prepare-reboot", "sync", work::sync),
];

const SETUP_INSTALLER: [Step; 6] = [
    step(
        "inspect",
        "read the node again (root device, disk, network)",
        setup_installer::inspect,
    ),
    step(
        "remove-shrink-hook",
        "remove the initramfs hook and rebuild the initramfs",
        setup_installer::remove_shrink_hook,
    ),
    step(
        "verify-shrink",
        "check that the root file system and partition 1 were shrunk (stop otherwise)",
        setup_installer::verify_shrink,
    ),
    step(
        "save-settings",
        "save the network settings and /root/.ssh/authorized_keys into xsinst/",
        setup_installer::save_settings,
    ),
    step(
        "ramdisk-partition",
        "create partition 2 (ext3) behind the root and copy xsinst/ onto it",
        setup_installer::ramdisk_partition,
    ),
    step(
        "boot-installer-once",
        "boot the XenServer installer next, once (grub-reboot)",
        setup_installer::boot_installer_once,
    ),
];

// Steps both dom0 states run (DESIGN §5: XENSERVER repeats FIRSTBOOT's network
// and boot-loader work on every boot).
const WAIT_XAPI: Step = step(
    "wait-xapi",
    "wait for xapi to finish starting",
    dom0::wait_xapi,
);
const FORGET_NETWORKING: Step = step(
    "forget-networking",
    "forget dom0's networking; VLAN 100 management network with 192.168.33.2",
    dom0::forget_networking,
);
const BOOT_UBUNTU_NEXT: Step = step(
    "boot-ubuntu-next",
    "make Ubuntu the next boot; sync",
    dom0::boot_ubuntu_next,
);
const STAMP: Step = todo("stamp", "touch the stamp file on the appliance");

const XENSERVER_FIRSTBOOT: [Step; 6] = [
    WAIT_XAPI,
    FORGET_NETWORKING,
    todo(
        "appliance",
        "import and configure the appliance (VIFs, VCPUs, key, its network), reboot it",
    ),
    step(
        "ubuntu-boot-entry",
        "copy Ubuntu's kernel and initrd to dom0 and add an Ubuntu entry to its boot loader",
        dom0::ubuntu_boot_entry,
    ),
    BOOT_UBUNTU_NEXT,
    STAMP,
];

const UBUNTU: [Step; 5] = [
    step(
        "mount-dom0",
        "mount dom0's root file system (found by its label)",
        dom0::mount_dom0,
    ),
    step(
        "wait-network",
        "wait for a default route and name resolution",
        dom0::wait_network,
    ),
    step(
        "save-settings",
        "save the network settings and authorized_keys into dom0",
        dom0::save_settings,
    ),
    step(
        "boot-xenserver-next",
        "make XenServer the next boot",
        dom0::boot_xenserver_next,
    ),
    step("prepare-reboot", "sync", work::sync),
];

const XENSERVER: [Step; 5] = [
    WAIT_XAPI,
    FORGET_NETWORKING,
    todo(
        "appliance-settings",
        "re-apply the saved settings to the appliance",
    ),
    BOOT_UBUNTU_NEXT,
    STAMP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_steps_with_unique_names() {
        for state in State::ALL {
            let names: Vec<&str> = steps(state).iter().map(|step| step.name).collect();
            assert!(!names.is_empty(), "{state}");
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{state}: {names:?}");
        }
    }
}
