//! dom0's states under faults, in the sandbox: xapi never ready, an appliance
//! that reports no address, an xe call failing once, the real binary killed
//! (SIGKILL) at every step boundary of XENSERVER_FIRSTBOOT and run again, and
//! hostile values through xe and SSH. Each ends as an uninterrupted run does,
//! or fails with a clear log and nothing changed. The node: node/mod.rs.

use bin_convert::state::State;

mod node;
mod world;
use node::*;
use world::{KILL_PRELUDE, script, write};

#[test]
fn xapi_never_ready_fails_the_state_with_a_clear_log_and_changes_nothing() {
    let node = Firstboot::new();
    std::fs::remove_file(node.dom0.path("/var/run/xapi_init_complete.cookie")).unwrap();
    let error = node.run().unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("xapi did not finish starting within 2s"),
        "{message}"
    );
    assert_eq!(
        xitc_common::exit::kind_of(&error),
        xitc_common::exit::Kind::Failed,
        "exit 1: xitc-convert has no --timeout"
    );
    assert!(
        node.log()
            .contains("wait-xapi failed: xapi did not finish starting")
    );
    assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
    assert!(
        !node.dom0.path("xe.log").exists(),
        "no xe call before xapi is up"
    );
}

#[test]
fn an_appliance_that_never_reports_an_address_fails_the_state() {
    let node = Firstboot::new();
    std::fs::remove_file(node.dom0.path("appliance-ip")).unwrap();
    let error = node.run().unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("reported no address on its device 0 within 3s"),
        "{message}"
    );
    assert_eq!(
        xitc_common::exit::kind_of(&error),
        xitc_common::exit::Kind::Failed
    );
    assert!(node.log().contains("appliance-vm failed"));
    assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
    assert!(node.appliance.commands().is_empty());
}

/// The end state of an uninterrupted XENSERVER_FIRSTBOOT (computed once).
fn clean_outcome() -> &'static str {
    static CLEAN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLEAN.get_or_init(|| {
        let node = Firstboot::new();
        if let Err(error) = node.run() {
            panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
        }
        node.outcome()
    })
}

#[test]
fn an_xe_call_failing_mid_state_fails_it_and_a_rerun_ends_as_a_clean_run() {
    for failing in ["vif-create", "vm-reboot"] {
        let node = Firstboot::new();
        write(&node.dom0.path("xe-fail-once"), failing);
        let error = node.run().unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("xe {failing} ")) && message.contains("injected failure"),
            "{message}"
        );
        assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
        if let Err(error) = node.run() {
            panic!("rerun after {failing} failed: {error:#}");
        }
        assert_eq!(
            node.outcome(),
            clean_outcome(),
            "after {failing} failed once"
        );
    }
}

#[test]
fn every_failed_try_to_touch_the_stamp_is_logged_with_its_reason() {
    let node = Firstboot::new();
    write(&node.appliance.path("touch-refusals"), "2");
    if let Err(error) = node.run() {
        panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
    }
    let log = node.log();
    let tries: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("touching /var/run/xenserver.ready on the appliance: try"))
        .collect();
    assert_eq!(tries.len(), 2, "{log}");
    for (number, line) in tries.iter().enumerate() {
        assert!(
            line.contains(&format!(": try {} failed: ", number + 1))
                && line.contains("still booting")
                && line.ends_with("; retrying"),
            "{line}"
        );
    }
    assert!(log.contains("stamp /var/run/xenserver.ready touched on the appliance"));
    assert_eq!(node.outcome(), clean_outcome());
}

/// Kills xitc-convert (the real binary, SIGKILL) at the first external
/// program of `step`, reruns it, and expects the end of a clean run.
fn killed_at(step: &str) {
    let node = Firstboot::new();
    // XenServer 6.x has interface-reconfigure (here a stand-in in its
    // libexec): its step then has a program to be killed at.
    script(
        &node
            .dom0
            .path("/opt/xensource/libexec/interface-reconfigure"),
        &format!("{KILL_PRELUDE}\necho \"$*\" >> \"$XITC_ROOT/interface-reconfigure.log\""),
    );
    let log = node.dom0.system.path(&node.dom0.files.log);
    let output = run_to_end(
        node.convert()
            .env("XITC_TEST_KILL_POINT", stand_ins().join("kill-point"))
            .env("XITC_TEST_KILL_STEP", step)
            .env("XITC_TEST_LOG", &log),
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&output.status),
        Some(9),
        "{step}: not killed; {}",
        node.log()
    );
    assert_eq!(read(&node.dom0.path("killed")).trim(), step);
    let output = run_to_end(&mut node.convert());
    assert!(
        output.status.success(),
        "{step}: the rerun failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        node.log()
    );
    assert_eq!(
        read(&node.dom0.path("interface-reconfigure.log"))
            .lines()
            .last(),
        Some("rewrite")
    );
    assert_eq!(node.outcome(), clean_outcome(), "killed at {step}");
}

#[test]
fn killed_at_stop_appliance() {
    killed_at("stop-appliance");
}

#[test]
fn killed_at_forget_networking() {
    killed_at("forget-networking");
}

#[test]
fn killed_at_appliance_vm() {
    killed_at("appliance-vm");
}

#[test]
fn killed_at_appliance_key() {
    killed_at("appliance-key");
}

#[test]
fn killed_at_appliance_network() {
    killed_at("appliance-network");
}

#[test]
fn killed_at_interface_reconfigure() {
    killed_at("interface-reconfigure");
}

#[test]
fn killed_at_ubuntu_boot_entry() {
    killed_at("ubuntu-boot-entry");
}

#[test]
fn killed_at_boot_ubuntu_next() {
    killed_at("boot-ubuntu-next");
}

#[test]
fn killed_at_stamp_the_stamp_is_touched_by_the_rerun() {
    killed_at("stamp");
}

#[test]
fn every_step_of_firstboot_has_a_kill_test() {
    // The 2014 cycle's config: the appliance mode with the bounce.
    let config = world::config("http://127.0.0.1:9/a.xva", "http://127.0.0.1:9/x.iso");
    let names: Vec<&str> = bin_convert::plan::steps(State::XenserverFirstboot, &config)
        .iter()
        .chain(bin_convert::plan::after_recording(
            State::XenserverFirstboot,
            &config,
        ))
        .map(|step| step.name)
        .collect();
    // wait-xapi runs no program: a kill there is a kill before anything;
    // ubuntu-fstab runs none either, and its one write is atomic.
    assert_eq!(
        names,
        [
            "wait-xapi",
            "stop-appliance",
            "forget-networking",
            "appliance-vm",
            "appliance-key",
            "appliance-network",
            "interface-reconfigure",
            "ubuntu-fstab",
            "ubuntu-boot-entry",
            "boot-ubuntu-next",
            "stamp"
        ],
        "a new step needs its killed_at test"
    );
}

#[test]
fn hostile_values_reach_xe_and_the_appliance_as_single_arguments() {
    let install = "/opt/my xitc; it's";
    let stamp = "/var/run/x y;'z' $(id).ready";
    let node = Firstboot::with(install, LABEL, stamp);
    // An appliance with netplan gets its settings there.
    std::fs::create_dir_all(node.appliance.path("/etc/netplan")).unwrap();
    if let Err(error) = node.run() {
        panic!("XENSERVER_FIRSTBOOT failed: {error:#}");
    }
    let argv: Vec<Vec<String>> = read(&node.dom0.path("xe.argv"))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let import = argv.iter().find(|args| args[0] == "vm-import").unwrap();
    assert_eq!(
        import[1..],
        [format!("filename=/mnt/ubuntu{install}/appliance.xva")]
    );
    assert!(
        argv.iter()
            .any(|args| args[0] == "vm-param-set" && args[2] == format!("name-label={LABEL}"))
    );
    assert!(
        node.appliance.path(stamp).is_file(),
        "the stamp, by its exact name"
    );
    assert!(node.appliance.commands().contains(&vec![
        "sudo".to_owned(),
        "touch".to_owned(),
        stamp.to_owned()
    ]));
    let netplan = read(&node.appliance.path(bin_convert::shared::appliance::NETPLAN));
    assert!(netplan.contains("203.0.113.7/24"), "{netplan}");
    assert!(!node.appliance.path("/etc/network/interfaces").exists());

    // Any value, through SSH to the appliance's shell, arrives as one argument.
    let shell = bin_convert::appliance_ssh::Shell::new(
        &node.dom0.system,
        &node.config.appliance_user,
        "127.0.0.1",
    );
    let values = [
        "two words",
        "it's",
        "\"double\"",
        "a;b",
        "$(id)",
        "`id`",
        "a|b && c",
        "*",
        "-rf",
        "~root",
        "back\\slash",
        "tab\there",
        "new\nline",
        "ünïcödé",
        "",
    ];
    for value in values {
        let _ = shell.run(&["test", "-f", value], "");
        let last = node.appliance.commands().pop().unwrap();
        assert_eq!(last, ["test", "-f", value], "{value:?}");
    }
}

/// The appliance as xapi imports and starts it (the xe stand-in keeps xapi's
/// rules: its header): an HVM appliance on a Xen whose capabilities name no
/// hvm fails to start with VM_HVM_REQUIRED, a PV one on a Xen without PV (as
/// XCP-ng 8.3's) fails too, and an XVA cut short fails its import; the state
/// stays XENSERVER_FIRSTBOOT for the next boot.
#[test]
fn an_appliance_xapi_cannot_import_or_start_fails_the_state_with_its_error() {
    use xitc_common::xva::DomainType;
    let hvm = xitc_test_support::appliance_xva(DomainType::Hvm);
    let pv = xitc_test_support::appliance_xva(DomainType::Pv);
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "xen-3.0-x86_64",
            &hvm,
            "HVM is required for this operation (VM_HVM_REQUIRED)",
        ),
        (
            "hvm-3.0-x86_32 hvm-3.0-x86_64",
            &pv,
            "this Xen runs no PV guest",
        ),
        (
            "xen-3.0-x86_64 hvm-3.0-x86_64",
            &hvm[..hvm.len() / 2],
            "IMPORT_ERROR_PREMATURE_EOF",
        ),
    ];
    for (capabilities, xva, expected) in cases {
        let node = Firstboot::new();
        write(&node.dom0.path("host-capabilities"), capabilities);
        std::fs::write(
            node.dom0.path(&format!("{DOM0_INSTALL}/appliance.xva")),
            xva,
        )
        .unwrap();
        let error = node.run().unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{capabilities}: {message}");
        assert!(node.log().contains("appliance-vm failed"), "{capabilities}");
        assert_eq!(node.dom0.state(), "XENSERVER_FIRSTBOOT\n");
    }
}
