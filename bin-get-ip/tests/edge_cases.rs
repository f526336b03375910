//! What mimic cannot be made to do on demand, against a scripted HTTP server
//! (test-support's FakeHttp): Identity v3, version discovery, empty accessIPv4,
//! 401 mid-run, 503s, 429 with Retry-After, a hanging response, garbage JSON.
//! Everything mimic can do is tested in mimic.rs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};
use xitc_test_support::{FakeHttp, Reply, Request};

const COMPUTE: &str = "/compute/v2/tenant";

/// A fake Keystone (v2.0 at /v2.0, v3 at /v3, discovery at /) and Nova at
/// COMPUTE; `compute(request, n)` answers the n-th compute request (from 0).
struct FakeCloud {
    http: FakeHttp,
}

impl FakeCloud {
    fn start(compute: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let compute_calls = Arc::new(AtomicUsize::new(0));
        let token_calls = Arc::new(AtomicUsize::new(0));
        let http = FakeHttp::start(move |request| {
            let catalog_url = format!("{}{COMPUTE}", request.base_url);
            match (request.method.as_str(), request.path()) {
                ("GET", "/") => Reply::json(
                    300,
                    &json!({"versions": {"values": [
                        {"id": "v2.0", "status": "deprecated",
                         "links": [{"rel": "self", "href": format!("{}/v2.0/", request.base_url)}]},
                        {"id": "v3.14", "status": "stable",
                         "links": [{"rel": "self", "href": format!("{}/v3/", request.base_url)}]}
                    ]}}),
                ),
                ("POST", "/v2.0/tokens") => {
                    let n = token_calls.fetch_add(1, Ordering::SeqCst);
                    Reply::json(
                        200,
                        &json!({"access": {
                            "token": {"id": format!("token-{n}")},
                            "serviceCatalog": [{"type": "compute", "name": "nova", "endpoints": [
                                {"region": "R1", "publicURL": catalog_url}
                            ]}]
                        }}),
                    )
                }
                ("POST", "/v3/auth/tokens") => {
                    let n = token_calls.fetch_add(1, Ordering::SeqCst);
                    Reply::json(
                        201,
                        &json!({"token": {"catalog": [{"type": "compute", "name": "nova",
                            "endpoints": [
                                {"interface": "internal", "region_id": "R1", "url": "http://127.0.0.2:9/"},
                                {"interface": "public", "region_id": "R1", "url": catalog_url}
                            ]}]}}),
                    )
                    .with_header("X-Subject-Token", &format!("v3-token-{n}"))
                }
                (_, path) if path.starts_with(COMPUTE) => {
                    compute(request, compute_calls.fetch_add(1, Ordering::SeqCst))
                }
                _ => Reply::json(404, &json!({"itemNotFound": {"message": "no such path"}})),
            }
        });
        FakeCloud { http }
    }

    /// The tool, configured for this cloud with Identity v2.0.
    fn tool(&self) -> Command {
        let mut command =
            Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"));
        command
            .env("OS_AUTH_URL", format!("{}/v2.0", self.http.base_url()))
            .env("OS_USERNAME", "user")
            .env("OS_PASSWORD", "hunter2-secret")
            .env("OS_PROJECT_NAME", "tenant")
            .timeout(Duration::from_secs(60))
            .args(["--interval", "50ms"]);
        command
    }

    fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    fn compute_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| request.path().starts_with(COMPUTE))
            .collect()
    }

    fn token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.path().ends_with("tokens"))
            .count()
    }
}

fn server(id: &str, access_ipv4: &str, addresses: &Value) -> Value {
    json!({"id": id, "name": "node", "status": "ACTIVE",
           "accessIPv4": access_ipv4, "addresses": addresses})
}

/// Answers the list with `first`, and every later GET by id with `later`.
fn list_then(first: Value, later: Value) -> impl Fn(&Request, usize) -> Reply {
    move |request, _| {
        if request.path().ends_with("/servers/detail") {
            Reply::json(200, &json!({"servers": [first.clone()]}))
        } else {
            Reply::json(200, &json!({"server": later.clone()}))
        }
    }
}

#[test]
fn identity_v3_with_x_subject_token() {
    let cloud = FakeCloud::start(list_then(
        server("s1", "203.0.113.5", &json!({})),
        Value::Null,
    ));
    cloud
        .tool()
        .env("OS_AUTH_URL", format!("{}/v3", cloud.http.base_url()))
        .env("OS_USER_DOMAIN_NAME", "users")
        .arg("node")
        .assert()
        .success()
        .stdout("203.0.113.5\n");
    let requests = cloud.requests();
    let auth: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        auth["auth"]["identity"]["password"]["user"]["domain"]["name"],
        "users"
    );
    assert_eq!(
        auth["auth"]["scope"]["project"]["domain"]["name"],
        "Default"
    );
    assert_eq!(requests[1].header("x-auth-token"), Some("v3-token-0"));
}

#[test]
fn version_discovery_when_the_url_names_none() {
    let cloud = FakeCloud::start(list_then(
        server("s1", "203.0.113.6", &json!({})),
        Value::Null,
    ));
    cloud
        .tool()
        .env("OS_AUTH_URL", cloud.http.base_url())
        .arg("node")
        .assert()
        .success()
        .stdout("203.0.113.6\n");
    let paths: Vec<String> = cloud
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(paths[..2], ["/", "/v3/auth/tokens"]);
}

#[test]
fn empty_access_ip_is_waited_for() {
    let cloud = FakeCloud::start(list_then(
        server("s1", "", &json!({})),
        server("s1", "203.0.113.7", &json!({})),
    ));
    cloud
        .tool()
        .arg("node")
        .assert()
        .success()
        .stdout("203.0.113.7\n");
    let compute = cloud.compute_requests();
    assert_eq!(compute.len(), 2);
    assert!(
        compute[1].path().ends_with("/servers/s1"),
        "polls by id after the first list"
    );
    assert_eq!(cloud.token_requests(), 1, "one token for the whole run");
}

#[test]
fn empty_access_ip_falls_back_to_the_networks() {
    let addresses = json!({
        "tenant-net": [{"addr": "10.0.0.3", "version": 4, "OS-EXT-IPS:type": "fixed"},
                       {"addr": "172.24.4.9", "version": 4, "OS-EXT-IPS:type": "floating"}],
        "private": [{"addr": "192.168.7.7", "version": 4}]
    });
    let cloud = FakeCloud::start(list_then(server("s1", "", &addresses), Value::Null));
    cloud
        .tool()
        .arg("node")
        .assert()
        .success()
        .stdout("172.24.4.9\n");
    cloud
        .tool()
        .args(["--address", "private", "node"])
        .assert()
        .success()
        .stdout("192.168.7.7\n");
}

#[test]
fn a_401_mid_run_re_authenticates_once() {
    let cloud = FakeCloud::start(|request, n| match n {
        0 => Reply::json(200, &json!({"servers": [server("s1", "", &json!({}))]})),
        1 => Reply::json(401, &json!({"unauthorized": {"message": "token expired"}})),
        _ => {
            assert_eq!(request.header("x-auth-token"), Some("token-1"));
            Reply::json(
                200,
                &json!({"server": server("s1", "203.0.113.8", &json!({}))}),
            )
        }
    });
    cloud
        .tool()
        .arg("node")
        .assert()
        .success()
        .stdout("203.0.113.8\n");
    assert_eq!(cloud.token_requests(), 2);
}

#[test]
fn a_401_after_re_authenticating_is_an_error() {
    let cloud =
        FakeCloud::start(|_, _| Reply::json(401, &json!({"unauthorized": {"message": "nope"}})));
    cloud
        .tool()
        .arg("node")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("HTTP 401: nope"));
    assert_eq!(cloud.token_requests(), 2);
}

#[test]
fn service_unavailable_is_retried() {
    let cloud = FakeCloud::start(|_, n| {
        if n < 2 {
            Reply::text(503, "busy")
        } else {
            Reply::json(
                200,
                &json!({"servers": [server("s1", "203.0.113.9", &json!({}))]}),
            )
        }
    });
    cloud
        .tool()
        .arg("node")
        .assert()
        .success()
        .stdout("203.0.113.9\n");
    assert_eq!(cloud.compute_requests().len(), 3);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let cloud = FakeCloud::start(|_, n| {
        if n == 0 {
            Reply::text(429, "slow down").with_header("Retry-After", "1")
        } else {
            Reply::json(
                200,
                &json!({"servers": [server("s1", "203.0.113.10", &json!({}))]}),
            )
        }
    });
    cloud
        .tool()
        .arg("node")
        .assert()
        .success()
        .stdout("203.0.113.10\n");
    assert_eq!(cloud.compute_requests().len(), 2);
}

#[test]
fn a_retry_after_beyond_the_deadline_ends_the_wait_at_once() {
    // Honouring Retry-After: 3600 means not retrying within a 2 s timeout; a client
    // that ignored it would retry and get the address on the second request.
    let cloud = FakeCloud::start(|_, n| {
        if n == 0 {
            Reply::text(429, "slow down").with_header("Retry-After", "3600")
        } else {
            Reply::json(
                200,
                &json!({"servers": [server("s1", "203.0.113.11", &json!({}))]}),
            )
        }
    });
    cloud
        .tool()
        .args(["--timeout", "2", "node"])
        .assert()
        .code(124)
        .stdout("")
        .stderr(predicate::str::contains("HTTP 429"));
    assert_eq!(cloud.compute_requests().len(), 1);
}

#[test]
fn a_response_that_never_finishes_times_out() {
    let cloud = FakeCloud::start(|_, _| Reply::Hang);
    cloud
        .tool()
        .args(["--timeout", "2", "--read-timeout", "1", "node"])
        .assert()
        .code(124)
        .stdout("")
        // A note at the first failed try, then the error as the last line.
        .stderr(
            predicate::str::starts_with(
                "xitc-get-ip-address-of-instance: GET /compute/v2/tenant/servers/detail: timeout: global; retrying (",
            )
            .and(predicate::str::contains(
                "\nxitc-get-ip-address-of-instance: error: waiting for server \"node\" to have an address: ",
            ))
            .and(predicate::str::contains("timed out after")),
        );
}

#[test]
fn garbage_json_is_a_clear_error() {
    let cloud = FakeCloud::start(|_, _| Reply::text(200, "<html>not json</html>"));
    cloud.tool().arg("node").assert().code(1).stdout("").stderr(
        predicate::str::contains("/servers/detail: the response is not valid JSON")
            .and(predicate::str::contains("<html>not json</html>")),
    );
}

#[test]
fn a_fault_message_is_shown_with_control_characters_escaped() {
    let cloud = FakeCloud::start(|_, _| {
        Reply::json(
            200,
            &json!({"servers": [{"id": "s9", "name": "node", "status": "ERROR",
                     "fault": {"message": "No valid host\n\u{1b}[31mwas found", "code": 500}}]}),
        )
    });
    cloud.tool().arg("node").assert().code(1).stdout("").stderr(
        predicate::str::contains("server s9 is in ERROR: No valid host\\n\\u{1b}[31mwas found")
            .and(predicate::function(|text: &str| text.lines().count() == 1)),
    );
}

#[test]
fn a_server_deleted_while_waiting_is_an_error() {
    let cloud = FakeCloud::start(|request, _| {
        if request.path().ends_with("/servers/detail") {
            Reply::json(200, &json!({"servers": [server("s1", "", &json!({}))]}))
        } else {
            Reply::json(
                404,
                &json!({"itemNotFound": {"message": "Instance could not be found"}}),
            )
        }
    });
    cloud
        .tool()
        .arg("node")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "server s1 was deleted while waiting",
        ));
}

#[test]
fn an_api_error_names_method_path_status_and_message_but_no_secret() {
    let cloud = FakeCloud::start(|_, _| {
        Reply::json(
            403,
            &json!({"forbidden": {"message": "Policy doesn't allow this"}}),
        )
    });
    cloud.tool().arg("node").assert().code(1).stderr(
        predicate::str::contains(format!(
            "GET {COMPUTE}/servers/detail: HTTP 403: Policy doesn't allow this"
        ))
        .and(predicate::str::contains("hunter2").not())
        .and(predicate::str::contains("token-0").not()),
    );
}

#[test]
fn rejected_credentials_are_an_error_without_the_password() {
    let http = FakeHttp::start(|_| {
        Reply::json(
            401,
            &json!({"unauthorized": {"message": "Invalid credentials"}}),
        )
    });
    Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"))
        .env("OS_AUTH_URL", format!("{}/v2.0", http.base_url()))
        .env("OS_USERNAME", "user")
        .env("OS_PASSWORD", "hunter2-secret")
        .arg("node")
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::contains("POST /v2.0/tokens: HTTP 401: authentication failed")
                .and(predicate::str::contains("Invalid credentials"))
                .and(predicate::str::contains("hunter2").not()),
        );
}
