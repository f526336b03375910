//! The support library's own tests: the servers it starts are real, usable, and
//! gone afterwards.

use std::process::{Command, Stdio};
use std::time::Duration;

use xitc_test_support::{KeyType, Mimic, Sshd, generate_key, wait_until_gone};

/// Runs `true`-like `command` on the server with OpenSSH's own client and `key`.
fn ssh(sshd: &Sshd, key: &std::path::Path, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"])
        .arg("-i")
        .arg(key)
        .args(["-p", &sshd.port().to_string()])
        .arg(format!("{}@127.0.0.1", sshd.user()))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("running ssh (apt-get install openssh-client)")
}

#[test]
fn sshd_accepts_the_client_key_and_refuses_others() {
    let sshd = Sshd::start();
    let output = ssh(&sshd, &sshd.client_key(), "echo logged-in");
    assert!(
        output.status.success(),
        "ssh failed: {output:?}\n{}",
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "logged-in\n");

    let stranger = sshd.dir().join("stranger");
    generate_key(&stranger, KeyType::Ecdsa, "", false);
    let output = ssh(&sshd, &stranger, "true");
    assert_eq!(output.status.code(), Some(255), "a foreign key got in");

    sshd.authorize(&std::fs::read_to_string(stranger.with_extension("pub")).unwrap());
    assert!(ssh(&sshd, &stranger, "true").status.success());
}

#[test]
fn sshd_restarts_on_the_same_port_with_a_new_host_key() {
    let mut sshd = Sshd::start();
    let port = sshd.port();
    let old_key = sshd.host_public_key();
    let old_pid = sshd.pid().unwrap();

    sshd.stop();
    assert!(sshd.pid().is_none());
    assert!(wait_until_gone(old_pid, Duration::from_secs(5)));
    assert!(!ssh(&sshd, &sshd.client_key(), "true").status.success());

    sshd.new_host_key();
    sshd.restart();
    assert_eq!(sshd.port(), port);
    assert_ne!(sshd.host_public_key(), old_key);
    assert!(ssh(&sshd, &sshd.client_key(), "true").status.success());
}

#[test]
fn sshd_is_killed_on_drop_even_when_the_test_panics() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let sshd = Sshd::start();
        sender.send(sshd.pid().unwrap()).unwrap();
        panic!("a failing test");
    })
    .join();
    assert!(outcome.is_err());
    let pid = receiver.recv().unwrap();
    assert!(
        wait_until_gone(pid, Duration::from_secs(5)),
        "sshd {pid} survived"
    );
}

fn token_request(mimic: &Mimic, user: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "auth": {
            "passwordCredentials": {"username": user, "password": "any"},
            "tenantName": format!("{user}-tenant"),
        }
    });
    let mut response = ureq::post(format!("{}/tokens", mimic.identity_url()))
        .send_json(&body)
        .expect("POST /tokens");
    response.body_mut().read_json().expect("token JSON")
}

#[test]
fn shared_mimic_issues_tokens_with_a_nova_catalog() {
    let mimic = Mimic::shared();
    let access = &token_request(mimic, "support-test")["access"];
    let token = access["token"]["id"].as_str().unwrap_or_default();
    assert!(!token.is_empty(), "no token in {access}");
    let services = access["serviceCatalog"].as_array().expect("a catalog");
    assert!(
        services
            .iter()
            .any(|service| service["name"] == "cloudServersOpenStack"
                && service["type"] == "compute"),
        "no Nova in {services:?}"
    );
    assert!(
        std::ptr::eq(mimic, Mimic::shared()),
        "shared() started a second mimic"
    );
}

#[test]
fn private_mimic_is_killed_on_drop() {
    let mimic = Mimic::start();
    assert!(token_request(&mimic, "private-test")["access"]["token"]["id"].is_string());
    let pid = mimic.pid();
    drop(mimic);
    assert!(
        wait_until_gone(pid, Duration::from_secs(5)),
        "mimic {pid} survived"
    );
}

#[test]
fn shared_mimic_dies_with_its_process() {
    let output = Command::new(env!("CARGO_BIN_EXE_shared-mimic-probe"))
        .output()
        .expect("running shared-mimic-probe");
    assert!(
        output.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until_gone(pid, Duration::from_secs(10)),
        "mimic {pid} outlived its process"
    );
}

#[test]
fn nginx_serves_files_with_ranges_and_statuses() {
    let nginx = xitc_test_support::Nginx::start();
    std::fs::write(nginx.root().join("file.bin"), b"0123456789").unwrap();
    let body = ureq::get(nginx.url("file.bin"))
        .header("Range", "bytes=4-")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(body, "456789");
    let error = ureq::get(nginx.url("status/503")).call().unwrap_err();
    assert!(matches!(error, ureq::Error::StatusCode(503)), "{error}");
    let log = nginx.access_log();
    assert!(
        log.contains("\"GET /file.bin HTTP/1.1\" 206 6 \"bytes=4-\""),
        "{log}"
    );
}
