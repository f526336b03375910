//! The XenServer toolstack, through `xe` (found in PATH like every program).
//!
//! Every call goes through [`Xe::call`]: arguments are passed one by one, never
//! through a shell, so a name-label with spaces, quotes or `;` arrives as one
//! argument; a failure names the command line (xitc passes no password to
//! `xe`: dom0 runs it locally as root). `--minimal` output (comma-separated
//! uuids) and the `networks` VM parameter are parsed here.

use std::net::Ipv4Addr;

use anyhow::Context as _;

use crate::system::System;

/// `xe` for one dom0.
#[derive(Debug, Clone, Copy)]
pub struct Xe<'a> {
    system: &'a System,
}

/// Splits `--minimal` output: `uuid1,uuid2` (empty: none).
pub fn minimal_list(output: &str) -> Vec<String> {
    output
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The IPv4 address of device `device` in a VM's `networks` parameter
/// (`0/ip: 10.0.0.5; 0/ipv4/0: 10.0.0.5; 0/ipv6/0: fe80::1`).
pub fn vm_ipv4(networks: &str, device: u32) -> Option<Ipv4Addr> {
    let prefixes = [format!("{device}/ip"), format!("{device}/ipv4/0")];
    networks.split(';').find_map(|pair| {
        let (key, value) = pair.split_once(':')?;
        prefixes
            .iter()
            .any(|prefix| key.trim() == prefix)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

impl<'a> Xe<'a> {
    pub fn new(system: &'a System) -> Self {
        Xe { system }
    }

    /// Runs `xe ARGS…`; its trimmed output.
    pub fn call(&self, args: &[&str]) -> anyhow::Result<String> {
        // System::run's error names the command line, quoted.
        self.system
            .run("xe", args)
            .map(|output| output.trim().to_owned())
    }

    /// Runs `xe ARGS… --minimal` and splits the list.
    pub fn list(&self, args: &[&str]) -> anyhow::Result<Vec<String>> {
        let mut with_minimal = args.to_vec();
        with_minimal.push("--minimal");
        self.call(&with_minimal).map(|output| minimal_list(&output))
    }

    /// The uuid of the VM named `label`, if exactly one has that name.
    pub fn vm_by_label(&self, label: &str) -> anyhow::Result<Option<String>> {
        let name = format!("name-label={label}");
        let vms = self.list(&["vm-list", &name])?;
        match vms.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            several => anyhow::bail!(
                "{} VMs are named {label:?} ({}): rename all but one",
                several.len(),
                several.join(", ")
            ),
        }
    }

    /// `xe pif-introduce` of the NIC `device` with `mac` on this host (the
    /// one host of a fresh install); the new PIF's uuid.
    pub fn introduce_pif(&self, device: &str, mac: &str) -> anyhow::Result<String> {
        let host = self
            .list(&["host-list"])?
            .into_iter()
            .next()
            .context("xe host-list names no host")?;
        self.call(&[
            "pif-introduce",
            &format!("device={device}"),
            &format!("host-uuid={host}"),
            &format!("mac={mac}"),
        ])
    }

    /// Sets VCPUs so that VCPUs-max is never below VCPUs-at-startup on the way.
    pub fn set_vcpus(&self, vm: &str, count: u32, current_max: u32) -> anyhow::Result<()> {
        let uuid = format!("uuid={vm}");
        let max = format!("VCPUs-max={count}");
        let at_startup = format!("VCPUs-at-startup={count}");
        if count > current_max {
            self.call(&["vm-param-set", &uuid, &max])?;
            self.call(&["vm-param-set", &uuid, &at_startup])?;
        } else {
            self.call(&["vm-param-set", &uuid, &at_startup])?;
            self.call(&["vm-param-set", &uuid, &max])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn minimal_lists() {
        assert_eq!(minimal_list("a,b ,c\n"), ["a", "b", "c"]);
        assert!(minimal_list("\n").is_empty());
        assert_eq!(minimal_list("only"), ["only"]);
    }

    #[test]
    fn vm_networks() {
        let networks = "0/ip: 10.0.0.5; 0/ipv6/0: fe80::1; 2/ip: 192.168.33.1";
        assert_eq!(vm_ipv4(networks, 0), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(vm_ipv4(networks, 2), Some(Ipv4Addr::new(192, 168, 33, 1)));
        assert_eq!(vm_ipv4(networks, 1), None);
        assert_eq!(
            vm_ipv4("0/ipv4/0: 10.1.1.1", 0),
            Some(Ipv4Addr::new(10, 1, 1, 1))
        );
        assert_eq!(vm_ipv4("<not in database>", 0), None);
    }

    /// A stand-in `xe` that records each argument on its own line and answers
    /// from `$XE_ANSWER`.
    fn recording_xe() -> (tempfile::TempDir, System) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let xe = bin.join("xe");
        std::fs::write(
            &xe,
            "#!/bin/sh\nfor arg in \"$@\"; do printf '[%s]\\n' \"$arg\" >> \"$XITC_ROOT/xe.log\"; done\n\
             echo --- >> \"$XITC_ROOT/xe.log\"\n[ \"$1\" = fail ] && { echo 'The uuid you supplied was invalid.' >&2; exit 1; }\n\
             cat \"$XITC_ROOT/answer\" 2>/dev/null || true\n",
        )
        .unwrap();
        std::fs::set_permissions(&xe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let system = System::new(Some(dir.path().to_path_buf()))
            .with_search_path(format!("{}:/usr/bin:/bin", bin.display()));
        (dir, system)
    }

    #[test]
    fn hostile_labels_reach_xe_as_one_argument() {
        let (dir, system) = recording_xe();
        let xe = Xe::new(&system);
        std::fs::write(dir.path().join("answer"), "vm-1\n").unwrap();
        for label in [
            "Devstack",
            "my appliance",
            "it's \"quoted\"",
            "a;b",
            "$(reboot)",
            "x y;rm -rf /",
        ] {
            std::fs::write(dir.path().join("xe.log"), "").unwrap();
            assert_eq!(xe.vm_by_label(label).unwrap().as_deref(), Some("vm-1"));
            let log = std::fs::read_to_string(dir.path().join("xe.log")).unwrap();
            assert_eq!(
                log,
                format!("[vm-list]\n[name-label={label}]\n[--minimal]\n---\n"),
                "{label}"
            );
        }
        std::fs::write(dir.path().join("answer"), "vm-1,vm-2\n").unwrap();
        let error = xe.vm_by_label("twin").unwrap_err();
        assert!(
            error.to_string().contains("2 VMs are named \"twin\""),
            "{error}"
        );
        std::fs::write(dir.path().join("answer"), "\n").unwrap();
        assert_eq!(xe.vm_by_label("none").unwrap(), None);
    }

    #[test]
    fn a_failed_call_names_its_command_line() {
        let (_dir, system) = recording_xe();
        let error = Xe::new(&system).call(&["fail", "uuid=x y"]).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.starts_with("xe fail 'uuid=x y' failed (exit status: 1): "),
            "{message}"
        );
        assert!(
            message.contains("The uuid you supplied was invalid."),
            "{message}"
        );
    }

    #[test]
    fn vcpus_never_go_below_the_start_count() {
        let (dir, system) = recording_xe();
        let xe = Xe::new(&system);
        let order = |count, current| {
            std::fs::write(dir.path().join("xe.log"), "").unwrap();
            xe.set_vcpus("vm-1", count, current).unwrap();
            let log = std::fs::read_to_string(dir.path().join("xe.log")).unwrap();
            log.lines()
                .filter(|line| line.starts_with("[VCPUs"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(order(4, 1), ["[VCPUs-max=4]", "[VCPUs-at-startup=4]"]);
        assert_eq!(order(1, 4), ["[VCPUs-at-startup=1]", "[VCPUs-max=1]"]);
    }
}
