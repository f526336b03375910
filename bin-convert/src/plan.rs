//! What each state does: an ordered list of named steps (ARCHITECTURE.md has
//! the cycle). The runner runs them in order and records the next state only
//! when all have succeeded, so a crash or power loss anywhere re-runs the
//! state; every step is idempotent for that reason.

use crate::config::{Config, Mode, NetworkSource};
use crate::shared::{self, appliance, direct, dom0};
use crate::state::State;
use crate::steps::{setup_installer, start, ubuntu, xenserver_firstboot};
use crate::work::{Action, Step};

const fn step(name: &'static str, does: &'static str, action: Action) -> Step {
    Step::new(name, does, action)
}

/// Whether dom0 learns the network without Ubuntu: the direct mode, and the
/// appliance mode with DHCP or the config drive as its source. Then the node
/// stays in dom0 once it runs there: no bounce.
pub fn stays_in_dom0(config: &Config) -> bool {
    config.mode == Mode::Direct
        || matches!(
            config.network,
            NetworkSource::Dhcp | NetworkSource::ConfigDrive
        )
}

fn in_dom0(state: State) -> bool {
    matches!(state, State::XenserverFirstboot | State::Xenserver)
}

/// The state after `state`'s steps, and whether the node reboots then. With
/// no bounce ([`stays_in_dom0`]) dom0 stays in XENSERVER: no Ubuntu boot, no
/// reboot.
pub fn next(state: State, config: &Config) -> (State, bool) {
    if in_dom0(state) && stays_in_dom0(config) {
        return (State::Xenserver, false);
    }
    state.next()
}

/// The steps of `state` with `config`'s mode and network source, in order.
pub fn steps(state: State, config: &Config) -> &'static [Step] {
    if in_dom0(state) && config.mode == Mode::Direct {
        return &DIRECT_DOM0;
    }
    if in_dom0(state) && stays_in_dom0(config) {
        return APPLIANCE_DOM0_NO_BOUNCE;
    }
    match state {
        State::Start if config.mode == Mode::Direct => &START_DIRECT,
        State::Start => &START,
        State::SetupInstaller => &SETUP_INSTALLER,
        State::XenserverFirstboot => &XENSERVER_FIRSTBOOT,
        State::Ubuntu => &UBUNTU,
        State::Xenserver => &XENSERVER,
    }
}

// Every refusal START can make (preflight, an installer that cannot install
// on this node, no room for --ubuntu-size) comes before its first change
// outside the install dir (save-config on): a refused START leaves the node as
// it was, and the runner removes what it had put in the install dir
// (`start::forget_refused`; README "The lifecycle").
const START: [Step; 13] = [
    step(
        "preflight",
        "check root, the root file system, space, GRUB2 and the network before any change",
        start::preflight,
    ),
    step(
        "download",
        "download the XenServer ISO and the appliance XVA in parallel, resumable, SHA-256 checked",
        start::download,
    ),
    step(
        "installer-files",
        "read install.img, boot/xen.gz, boot/vmlinuz and .treeinfo out of the ISO; refuse an installer that cannot install on this node",
        start::installer_files,
    ),
    step(
        "appliance",
        "read the appliance XVA as xapi's import will (ova.xml, every chunk and checksum); refuse one xapi would refuse or that cannot start on this installer and node",
        start::appliance,
    ),
    step(
        "shrink-target",
        "the size the root is shrunk to, with the downloads on it; refuse an --ubuntu-size too small for them",
        start::shrink_target,
    ),
    step(
        "save-config",
        "save this run's settings (0600, password as a hash) for the boot-time runs",
        start::save_config,
    ),
    step(
        "ubuntu-boot",
        "record Ubuntu's root UUID and kernel arguments (consoles, interface naming) for its entry in dom0's boot loader",
        start::ubuntu_boot,
    ),
    step(
        "boot-hook",
        "install the systemd unit (upstart job without systemd) that re-runs xitc-convert on every boot",
        start::boot_hook,
    ),
    step(
        "ramdisk-source",
        "write the installer's xsinst/ (ISO, answerfile.xml, post-install script, dom0 boot hook)",
        start::ramdisk_source,
    ),
    step(
        "initrd-boot",
        "where GRUB boots without the initrd first (GRUB_FORCE_PARTUUID), boot with it until the shrink has run",
        start::initrd_boot,
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
    step("prepare-reboot", "sync", shared::sync),
];

/// START's steps that may refuse the node: the ones before its first change
/// outside the install dir.
pub const START_CHECKS: usize = 5;

/// START in the direct mode: the same steps, but there is no appliance to
/// download.
const START_DIRECT: [Step; 13] = {
    let mut steps = START;
    steps[1] = step(
        "download",
        "download the XenServer ISO, resumable, SHA-256 checked (the direct mode has no appliance)",
        start::download,
    );
    steps[3] = step(
        "appliance",
        "nothing: the direct mode imports no appliance",
        start::appliance,
    );
    steps
};

const SETUP_INSTALLER: [Step; 9] = [
    step(
        "inspect",
        "wait for a default route; read the node again (root device, disk, layout, network)",
        setup_installer::inspect,
    ),
    step(
        "verify-shrink",
        "check that the root file system and partition 1 were shrunk (stop otherwise, the shrink hook kept for the next boot)",
        setup_installer::verify_shrink,
    ),
    step(
        "remove-shrink-hook",
        "remove the initramfs hook and rebuild the initramfs",
        setup_installer::remove_shrink_hook,
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
        "copy-kernels",
        "a separate /boot: copy its kernels and initrds to partition 1's own /boot",
        setup_installer::copy_kernels,
    ),
    step(
        "restore-initrd-boot",
        "give GRUB back its initrd-less first boot, if START turned it off",
        setup_installer::restore_initrd_boot,
    ),
    step(
        "fstab",
        "comment out the fstab lines of partitions the installer deletes",
        setup_installer::fstab,
    ),
    step(
        "boot-installer-once",
        "boot the XenServer installer next, once (grub-reboot)",
        setup_installer::boot_installer_once,
    ),
];

// Steps both dom0 states run: XENSERVER repeats FIRSTBOOT's network and
// appliance work on every boot, with this boot's cloud settings.
pub const WAIT_XAPI: Step = step(
    "wait-xapi",
    "wait for xapi to finish starting",
    dom0::wait_xapi,
);
const STOP_APPLIANCE: Step = step(
    "stop-appliance",
    "shut the appliance down if it runs (a re-run: xapi keeps the networks of a running VM)",
    appliance::stop,
);
const FORGET_NETWORKING: Step = step(
    "forget-networking",
    "forget dom0's networking; VLAN 100 management network with 192.168.33.2",
    dom0::forget_networking,
);
const APPLIANCE_VM: Step = step(
    "appliance-vm",
    "import the appliance unless a VM has its name-label; VCPUs; its three VIFs; start it; wait for its address",
    appliance::vm,
);
const APPLIANCE_KEY: Step = step(
    "appliance-key",
    "once per appliance: dom0's key via xenstore, the key updater's crontab emptied, the appliance user's own key",
    appliance::key,
);
const APPLIANCE_NETWORK: Step = step(
    "appliance-network",
    "the cloud settings and authorized_keys onto the appliance, its user's key into dom0 (once); xe vm-reboot",
    appliance::network,
);
const INTERFACE_RECONFIGURE: Step = step(
    "interface-reconfigure",
    "interface-reconfigure rewrite (XenServer 6.x; absent later)",
    dom0::interface_reconfigure,
);
const BOOT_UBUNTU_NEXT: Step = step(
    "boot-ubuntu-next",
    "make Ubuntu the next boot; sync",
    dom0::boot_ubuntu_next,
);
const STAMP: Step = step(
    "stamp",
    "touch the stamp on the appliance over SSH (sudo touch), retried until it works",
    appliance::stamp,
);

const XENSERVER_FIRSTBOOT: [Step; 10] = [
    WAIT_XAPI,
    STOP_APPLIANCE,
    FORGET_NETWORKING,
    APPLIANCE_VM,
    APPLIANCE_KEY,
    APPLIANCE_NETWORK,
    INTERFACE_RECONFIGURE,
    step(
        "ubuntu-fstab",
        "comment out Ubuntu's fstab lines of the partitions the installer deleted (made optional before it)",
        xenserver_firstboot::ubuntu_fstab,
    ),
    step(
        "ubuntu-boot-entry",
        "copy Ubuntu's kernel and initrd to dom0 and add an Ubuntu entry to its boot loader",
        xenserver_firstboot::ubuntu_boot_entry,
    ),
    BOOT_UBUNTU_NEXT,
];

const UBUNTU: [Step; 6] = [
    step(
        "mount-dom0",
        "mount dom0's root file system (found by its label)",
        ubuntu::mount_dom0,
    ),
    step(
        "wait-network",
        "wait for a default route and name resolution",
        ubuntu::wait_network,
    ),
    step(
        "save-settings",
        "save the network settings and authorized_keys into dom0",
        ubuntu::save_settings,
    ),
    step(
        "keep-off-the-boot-sector",
        "keep Ubuntu's GRUB packages from reinstalling over dom0's boot loader (debconf)",
        ubuntu::keep_off_the_boot_sector,
    ),
    step(
        "boot-xenserver-next",
        "make XenServer the next boot",
        ubuntu::boot_xenserver_next,
    ),
    step("prepare-reboot", "sync", shared::sync),
];

const XENSERVER: [Step; 8] = [
    WAIT_XAPI,
    STOP_APPLIANCE,
    FORGET_NETWORKING,
    APPLIANCE_VM,
    APPLIANCE_KEY,
    APPLIANCE_NETWORK,
    INTERFACE_RECONFIGURE,
    BOOT_UBUNTU_NEXT,
];

// The appliance mode's dom0 states where dom0 learns the network itself
// (DHCP, the config drive): XENSERVER's steps without its last, the bounce's
// boot-ubuntu-next (a unit test below holds that).
const APPLIANCE_DOM0_NO_BOUNCE: &[Step] = match XENSERVER.split_last() {
    Some((_, rest)) => rest,
    None => &[],
};

// The direct mode's dom0 states, on every boot (shared/direct.rs says why
// each).
const DIRECT_DOM0: [Step; 4] = [
    step(
        "clear-stamp",
        "remove an earlier run's stamp: it says ready again only after this boot's checks",
        direct::clear_stamp,
    ),
    WAIT_XAPI,
    step(
        "management",
        "dom0's management interface on the cloud NIC with this boot's MAC, configured from the network source (DHCP or the config drive)",
        direct::management,
    ),
    step(
        "wait-ready",
        "wait until xe host-list answers and the pool has a default SR",
        direct::wait_ready,
    ),
];

const DIRECT_STAMP: Step = step(
    "stamp",
    "touch the stamp in dom0, where xitc-wait-until-done looks for it at the cloud's address",
    direct::stamp,
);

/// What a dom0 boot in state UBUNTU runs when it has no network settings to
/// start the appliance with: Ubuntu next, then the runner reboots (the bounce).
pub const BOUNCE_AGAIN: [Step; 1] = [BOOT_UBUNTU_NEXT];

/// Steps that run after the next state is recorded (the 2014 cycle: "UBUNTU,
/// sync, touch stamp"). The stamp tells the user the node is ready; if touching it
/// fails, the conversion itself is done and the next boot goes on with the
/// cycle, so it must not make the state run again.
pub fn after_recording(state: State, config: &Config) -> &'static [Step] {
    if in_dom0(state) && config.mode == Mode::Direct {
        return &[DIRECT_STAMP];
    }
    match state {
        State::XenserverFirstboot | State::Xenserver => &[STAMP],
        State::Start | State::SetupInstaller | State::Ubuntu => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_steps_with_unique_names() {
        for (state, config) in State::ALL
            .into_iter()
            .flat_map(|state| configs().into_iter().map(move |config| (state, config)))
        {
            let mode = (config.mode, config.network);
            let names: Vec<&str> = steps(state, &config)
                .iter()
                .chain(after_recording(state, &config))
                .map(|step| step.name)
                .collect();
            assert!(!names.is_empty(), "{state} {mode:?}");
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{state} {mode:?}: {names:?}");
        }
    }

    #[test]
    fn start_makes_its_first_change_after_every_step_that_may_refuse() {
        for config in configs() {
            let names: Vec<&str> = steps(State::Start, &config)
                .iter()
                .map(|step| step.name)
                .collect();
            assert_eq!(
                names[..START_CHECKS],
                [
                    "preflight",
                    "download",
                    "installer-files",
                    "appliance",
                    "shrink-target"
                ],
                "{:?}",
                config.mode
            );
            assert_eq!(names[START_CHECKS], "save-config");
        }
    }

    #[test]
    fn no_step_of_the_direct_mode_speaks_of_an_appliance_it_does_not_have() {
        for config in configs()
            .iter()
            .filter(|config| config.mode == Mode::Direct)
        {
            for state in State::ALL {
                for step in steps(state, config)
                    .iter()
                    .chain(after_recording(state, config))
                {
                    assert!(
                        !step.does.contains("appliance XVA")
                            && !step.does.contains("the appliance (")
                            && !step.does.contains("xapi's import"),
                        "{state} {}: {}",
                        step.name,
                        step.does
                    );
                }
            }
        }
        // The appliance mode's download does speak of it: the check above can fail.
        let appliance = &configs()[0];
        assert!(
            steps(State::Start, appliance)[1]
                .does
                .contains("appliance XVA")
        );
    }

    fn configs() -> Vec<Config> {
        [
            (Mode::Appliance, NetworkSource::Bounce),
            (Mode::Appliance, NetworkSource::Dhcp),
            (Mode::Appliance, NetworkSource::ConfigDrive),
            (Mode::Direct, NetworkSource::Dhcp),
            (Mode::Direct, NetworkSource::ConfigDrive),
        ]
        .into_iter()
        .map(|(mode, network)| Config {
            mode,
            network,
            ..Config::example()
        })
        .collect()
    }

    /// The states from START, every run succeeding, until dom0 has made the
    /// node ready `readies` times; and the reboots on the way.
    fn states_until_ready(config: &Config, readies: usize) -> (Vec<State>, u32) {
        let mut state = State::Start;
        let mut seen = vec![state];
        let (mut ready, mut reboots) = (0, 0);
        while ready < readies {
            if in_dom0(state) {
                ready += 1;
            }
            let (next_state, reboot) = next(state, config);
            reboots += u32::from(reboot);
            state = next_state;
            seen.push(state);
        }
        (seen, reboots)
    }

    #[test]
    fn without_the_bounce_xenserver_loses_only_its_boot_ubuntu_next() {
        let names = |steps: &[Step]| steps.iter().map(|step| step.name).collect::<Vec<_>>();
        let mut expected = names(APPLIANCE_DOM0_NO_BOUNCE);
        expected.push(BOOT_UBUNTU_NEXT.name);
        assert_eq!(names(&XENSERVER), expected);
    }

    #[test]
    fn only_the_bounce_boots_ubuntu_after_the_install() {
        for config in configs() {
            let (states, reboots) = states_until_ready(&config, 3);
            let what = format!("{:?} {:?}: {states:?}", config.mode, config.network);
            let ubuntu_after_install = states
                .iter()
                .skip(2)
                .filter(|state| state.runs_on() == "Ubuntu")
                .count();
            let bounce = config.network == NetworkSource::Bounce;
            assert_eq!(ubuntu_after_install > 0, bounce, "{what}");
            // START and SETUP_INSTALLER reboot by themselves; the bounce's
            // UBUNTU once for each later dom0 run.
            assert_eq!(reboots, if bounce { 4 } else { 2 }, "{what}");
            for dom0_state in [State::XenserverFirstboot, State::Xenserver] {
                let names: Vec<&str> = steps(dom0_state, &config)
                    .iter()
                    .map(|step| step.name)
                    .collect();
                assert_eq!(
                    names.iter().any(|name| name.contains("ubuntu")),
                    bounce,
                    "{what}: {names:?}"
                );
                assert_eq!(
                    names.iter().any(|name| name.contains("appliance")),
                    config.mode == Mode::Appliance,
                    "{what}: {names:?}"
                );
            }
        }
    }
}
