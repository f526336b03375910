//! xitc-get-ip-address-of-instance against mimic, Rackspace's own emulator of
//! Identity v2.0 + Nova. Each test uses its own user and tenant, so tests can share
//! one mimic (mimic keeps each tenant's servers apart).

use std::collections::BTreeMap;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use xitc_common::cloud::{CloudClient, CloudConfig, Env, Server, ServerCreate, Timeouts};
use xitc_common::poll::Deadline;
use xitc_test_support::Mimic;

struct Account {
    vars: Vec<(&'static str, String)>,
}

impl Account {
    /// A fresh user/tenant on `mimic`, with password authentication.
    fn new(mimic: &Mimic, test: &str) -> Self {
        Account {
            vars: vec![
                ("OS_AUTH_URL", mimic.identity_url()),
                ("OS_USERNAME", format!("user-{test}")),
                ("OS_PASSWORD", "any-password".to_owned()),
                ("OS_TENANT_NAME", format!("tenant-{test}")),
                ("OS_REGION_NAME", "ORD".to_owned()),
            ],
        }
    }

    fn client(&self) -> CloudClient {
        let env = Env::from_pairs(
            self.vars.iter().map(|(key, value)| (*key, value.as_str())),
            std::path::Path::new("/"),
        );
        CloudClient::new(CloudConfig::load(&env).unwrap(), Timeouts::default())
    }

    fn boot(&self, name: &str, metadata: &[(&str, &str)]) -> Server {
        let client = self.client();
        let deadline = deadline();
        let id = client
            .create_server(
                &ServerCreate {
                    name: name.to_owned(),
                    image: "image-1".to_owned(),
                    flavor: "2".to_owned(),
                    key_name: None,
                    metadata: metadata
                        .iter()
                        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                },
                &deadline,
            )
            .unwrap();
        client.get_server(&id, &deadline).unwrap().unwrap()
    }

    fn tool(&self) -> Command {
        let mut command = tool();
        command.envs(self.vars.iter().map(|(key, value)| (*key, value.as_str())));
        command
    }
}

fn deadline() -> Deadline {
    Deadline::new(std::time::Instant::now(), Some(Duration::from_secs(60)))
}

/// The tool with nothing inherited from the developer's environment.
fn tool() -> Command {
    let mut command =
        Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"));
    command.timeout(Duration::from_secs(120));
    command
}

fn access_ip(server: &Server) -> String {
    format!("{}\n", server.access_ipv4.as_deref().unwrap())
}

#[test]
fn finds_a_server_by_name_and_prints_only_its_address() {
    let account = Account::new(Mimic::shared(), "by-name");
    let server = account.boot("web-1", &[]);
    account
        .tool()
        .arg("web-1")
        .assert()
        .success()
        .stdout(access_ip(&server))
        .stderr("");
}

#[test]
fn finds_a_server_by_id() {
    let account = Account::new(Mimic::shared(), "by-id");
    let server = account.boot("web-2", &[]);
    account
        .tool()
        .arg(&server.id)
        .assert()
        .success()
        .stdout(access_ip(&server));
}

#[test]
fn a_name_that_prefixes_another_matches_only_itself() {
    let account = Account::new(Mimic::shared(), "prefix");
    let alpha = account.boot("alpha", &[]);
    let alphabet = account.boot("alphabet", &[]);
    for (name, expected) in [("alpha", &alpha), ("alphabet", &alphabet)] {
        let output = account
            .tool()
            .args(["--format", "json", name])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["id"], expected.id.as_str());
        assert_eq!(json["name"], name);
        assert_eq!(json["address"], expected.access_ipv4.as_deref().unwrap());
    }
}

#[test]
fn duplicate_names_are_an_error_listing_the_ids() {
    let account = Account::new(Mimic::shared(), "dup");
    let first = account.boot("twin", &[]);
    let second = account.boot("twin", &[]);
    account
        .tool()
        .arg("twin")
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::contains("2 servers are named \"twin\"")
                .and(predicate::str::contains(first.id.as_str()))
                .and(predicate::str::contains(second.id.as_str())),
        );
}

#[test]
fn an_unknown_server_is_an_error_naming_it() {
    let account = Account::new(Mimic::shared(), "missing");
    account.boot("present", &[]);
    account
        .tool()
        .arg("absent")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "no server is named \"absent\" or has that id",
        ));
}

#[test]
fn a_server_in_error_ends_the_wait_at_once() {
    let account = Account::new(Mimic::shared(), "error");
    let server = account.boot("broken", &[("server_error", "1")]);
    assert_eq!(server.status, "ERROR");
    account
        .tool()
        .args(["--timeout", "0", "broken"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "server {} is in ERROR: the cloud gave no fault message",
            server.id
        )));
}

#[test]
fn a_building_server_is_reported_with_its_address_and_status() {
    let account = Account::new(Mimic::shared(), "building");
    let server = account.boot("slow", &[("server_building", "600")]);
    let output = account
        .tool()
        .args(["--format", "json", "slow"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["status"], "BUILD");
    assert_eq!(json["address"], server.access_ipv4.as_deref().unwrap());
}

#[test]
fn public_and_private_addresses_come_from_the_networks() {
    let account = Account::new(Mimic::shared(), "networks");
    let server = account.boot("net", &[]);
    let on_network = |network: &str, version: u8| {
        server.addresses[network]
            .iter()
            .find(|address| address.version == version)
            .map(|address| format!("{}\n", address.addr))
            .unwrap()
    };
    account
        .tool()
        .args(["--address", "private", "net"])
        .assert()
        .success()
        .stdout(on_network("private", 4));
    account
        .tool()
        .args(["--address", "public", "net"])
        .assert()
        .success()
        .stdout(on_network("public", 4));
    account
        .tool()
        .args(["-6", "--address", "public", "net"])
        .assert()
        .success()
        .stdout(on_network("public", 6));
}

#[test]
fn rackspace_api_key_authentication() {
    let mimic = Mimic::shared();
    let account = Account::new(mimic, "apikey");
    let server = account.boot("keyed", &[]);
    tool()
        .env("OS_AUTH_URL", mimic.identity_url())
        .env("OS_USERNAME", "user-apikey")
        .env("OS_API_KEY", "0123456789abcdef")
        .env("OS_AUTH_SYSTEM", "rackspace")
        .env("OS_TENANT_NAME", "tenant-apikey")
        .env("OS_REGION_NAME", "ORD")
        .arg("keyed")
        .assert()
        .success()
        .stdout(access_ip(&server));
}

#[test]
fn project_name_and_tenant_name_are_the_same_thing() {
    let mimic = Mimic::shared();
    let account = Account::new(mimic, "project");
    let server = account.boot("projected", &[]);
    tool()
        .env("OS_AUTH_URL", mimic.identity_url())
        .env("OS_USERNAME", "user-project")
        .env("OS_PASSWORD", "pw")
        .env("OS_PROJECT_NAME", "tenant-project")
        .env("OS_REGION_NAME", "ORD")
        .arg("projected")
        .assert()
        .success()
        .stdout(access_ip(&server));
}

#[test]
fn clouds_yaml_with_os_cloud() {
    let mimic = Mimic::shared();
    let account = Account::new(mimic, "yaml");
    let server = account.boot("from-yaml", &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clouds.yaml"),
        format!(
            "clouds:\n  mimic:\n    auth:\n      auth_url: {}\n      username: user-yaml\n      \
             project_name: tenant-yaml\n    region_name: ORD\n",
            mimic.identity_url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secure.yaml"),
        "clouds:\n  mimic:\n    auth:\n      password: from-secure-yaml\n",
    )
    .unwrap();
    let chmod = |mode| {
        use std::os::unix::fs::PermissionsExt as _;
        let secure = dir.path().join("secure.yaml");
        std::fs::set_permissions(&secure, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // With the password's file readable by others: the address all the same,
    // and a warning naming the file.
    let warning = format!(
        "xitc-get-ip-address-of-instance: warning: secure.yaml {} can be read by others \
         (mode 0644): chmod 600 it\n",
        dir.path().join("secure.yaml").display()
    );
    for (mode, stderr) in [(0o600, String::new()), (0o644, warning)] {
        chmod(mode);
        tool()
            .current_dir(dir.path())
            .env("OS_CLOUD", "mimic")
            .arg("from-yaml")
            .assert()
            .success()
            .stdout(access_ip(&server))
            .stderr(stderr);
    }
}

#[test]
fn an_unknown_region_lists_the_regions_that_exist() {
    let account = Account::new(Mimic::shared(), "region");
    account
        .tool()
        .env("OS_REGION_NAME", "ATLANTIS")
        .arg("anything")
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            predicate::str::contains("region ATLANTIS")
                .and(predicate::str::contains("cloudServersOpenStack ORD public")),
        );
}

/// Requests mimic has logged so far (its access log has one line per request).
fn logged_requests(mimic: &Mimic) -> Vec<String> {
    mimic
        .log()
        .lines()
        .filter(|line| line.contains("\" - - [") || line.contains(" HTTP/1.1\" "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_ready_server_costs_exactly_two_requests() {
    // A private mimic: the shared one's log has other tests' requests in it.
    let mimic = Mimic::start();
    let account = Account::new(&mimic, "cost");
    let server = account.boot("counted", &[]);
    let settle = || {
        // Twisted writes the access log line after the response; wait until the
        // count stops moving.
        let mut last = logged_requests(&mimic).len();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = logged_requests(&mimic).len();
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = settle();
    account
        .tool()
        .arg("counted")
        .assert()
        .success()
        .stdout(access_ip(&server));
    let after = settle();
    let requests = logged_requests(&mimic)[before..after].to_vec();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(
        requests[0].contains("POST /identity/v2.0/tokens"),
        "{requests:#?}"
    );
    assert!(requests[1].contains("GET /") && requests[1].contains("/servers/detail?name=counted"));
    assert_eq!(after, before + 2);
}
