//! xitc-get-ip-address-of-instance against OpenStack's real Identity service
//! (Keystone from PyPI, test-support's `Keystone`), whose catalog sends the
//! compute calls to mimic's Nova (mimic's Nova keeps servers per tenant, here
//! per Keystone project, and does not check tokens: Keystone does the auth).
//! Each test makes its own project and user on the one shared Keystone.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::json;
use xitc_common::cloud::{CloudClient, CloudConfig, Env, ServerCreate, Timeouts};
use xitc_common::poll::Deadline;
use xitc_test_support::{Keystone, Mimic};

const PASSWORD: &str = "user-pw";

/// The shared Keystone, with mimic's Nova as its `compute` service.
fn keystone() -> &'static Keystone {
    static READY: OnceLock<()> = OnceLock::new();
    let keystone = Keystone::shared();
    READY.get_or_init(|| {
        keystone.add_compute(
            "nova",
            xitc_test_support::KEYSTONE_REGION,
            &Mimic::shared().nova_url_template(),
        );
    });
    keystone
}

/// A project with a user and a server named `server` in it.
struct Account {
    keystone: &'static Keystone,
    project: String,
    project_id: String,
    user: String,
    user_id: String,
    address: String,
}

impl Account {
    fn new(keystone: &'static Keystone, test: &str) -> Self {
        let (project, user) = (format!("project-{test}"), format!("user-{test}"));
        let (project_id, user_id) = keystone.project_with_user(&project, &user, PASSWORD);
        let mut account = Account {
            keystone,
            project,
            project_id,
            user,
            user_id,
            address: String::new(),
        };
        account.address = account.boot("node");
        account
    }

    /// v3 password, names everywhere: what devstack's openrc sets.
    fn password_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OS_AUTH_URL", format!("{}/v3", self.keystone.url())),
            ("OS_USERNAME", self.user.clone()),
            ("OS_PASSWORD", PASSWORD.to_owned()),
            ("OS_PROJECT_NAME", self.project.clone()),
            ("OS_USER_DOMAIN_NAME", "Default".to_owned()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_owned()),
        ]
    }

    /// Boots a server through Keystone's catalog (so into this project's
    /// tenant in mimic); its address.
    fn boot(&self, name: &str) -> String {
        let vars = self.password_env();
        let env = Env::from_pairs(
            vars.iter().map(|(key, value)| (*key, value.as_str())),
            std::path::Path::new("/"),
        );
        let client = CloudClient::new(CloudConfig::load(&env).unwrap(), Timeouts::default());
        let deadline = Deadline::new(Instant::now(), Some(Duration::from_secs(60)));
        let id = client
            .create_server(
                &ServerCreate {
                    name: name.to_owned(),
                    image: "image-1".to_owned(),
                    flavor: "2".to_owned(),
                    key_name: None,
                    metadata: std::collections::BTreeMap::new(),
                },
                &deadline,
            )
            .unwrap();
        let server = client.get_server(&id, &deadline).unwrap().unwrap();
        server.access_ipv4.expect("mimic gives an address")
    }

    /// A token of this user scoped to `project`.
    fn token(&self, project: &str) -> String {
        self.keystone.token(&self.user, PASSWORD, project)
    }

    /// An application credential of this user, made with a token scoped to
    /// `project` (so bound to it): (id, secret).
    fn application_credential(
        &self,
        name: &str,
        project: &str,
        expires_at: Option<&str>,
    ) -> (String, String) {
        let mut credential = json!({"name": name});
        if let Some(expires_at) = expires_at {
            credential["expires_at"] = json!(expires_at);
        }
        let body = self.keystone.expect(
            201,
            "POST",
            &format!("/v3/users/{}/application_credentials", self.user_id),
            Some(&self.token(project)),
            Some(&json!({"application_credential": credential})),
        );
        let credential = &body["application_credential"];
        (
            credential["id"].as_str().unwrap().to_owned(),
            credential["secret"].as_str().unwrap().to_owned(),
        )
    }
}

/// The tool with nothing inherited, and `vars`.
fn tool(vars: &[(&str, String)]) -> Command {
    let mut command =
        Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"));
    command
        .timeout(Duration::from_secs(120))
        .args(["--timeout", "60", "--interval", "0.2"])
        .envs(vars.iter().map(|(key, value)| (*key, value.as_str())));
    command
}

fn assert_finds(vars: &[(&str, String)], address: &str, case: &str) {
    let output = tool(vars).arg("node").output().unwrap();
    assert!(
        output.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{address}\n"),
        "{case}"
    );
}

fn assert_fails(vars: &[(&str, String)], code: i32, message: &str, case: &str) {
    let output = tool(vars).arg("node").output().unwrap();
    xitc_test_support::assert_one_line_error(
        case,
        "xitc-get-ip-address-of-instance",
        &output,
        code,
        message,
    );
}

/// A variable set (`Some`) or removed (`None`).
type Change<'a> = (&'static str, Option<&'a str>);

/// `vars` with `changes` applied.
fn changed(vars: &[(&'static str, String)], changes: &[Change]) -> Vec<(&'static str, String)> {
    let mut result: Vec<(&'static str, String)> = vars
        .iter()
        .filter(|(key, _)| !changes.iter().any(|(changed, _)| changed == key))
        .cloned()
        .collect();
    for (key, value) in changes {
        if let Some(value) = value {
            result.push((key, (*value).to_owned()));
        }
    }
    result
}

#[test]
fn v3_password_with_every_spelling_of_the_url_domains_and_project() {
    let account = Account::new(keystone(), "password");
    let base = account.password_env();
    let root = account.keystone.url();
    let with_slash = format!("{root}/v3/");
    let root_slash = format!("{root}/");
    let cases: Vec<(&str, Vec<Change>)> = vec![
        ("/v3, names", vec![]),
        ("/v3/", vec![("OS_AUTH_URL", Some(&with_slash))]),
        (
            "/v3 with OS_IDENTITY_API_VERSION=3",
            vec![("OS_IDENTITY_API_VERSION", Some("3"))],
        ),
        (
            "/v3/ with OS_IDENTITY_API_VERSION=3",
            vec![
                ("OS_AUTH_URL", Some(&with_slash)),
                ("OS_IDENTITY_API_VERSION", Some("3")),
            ],
        ),
        (
            "unversioned with OS_IDENTITY_API_VERSION=3 (devstack's openrc)",
            vec![
                ("OS_AUTH_URL", Some(&root)),
                ("OS_IDENTITY_API_VERSION", Some("3")),
            ],
        ),
        (
            "unversioned with a slash and the version",
            vec![
                ("OS_AUTH_URL", Some(&root_slash)),
                ("OS_IDENTITY_API_VERSION", Some("3")),
            ],
        ),
        (
            "unversioned: the versions are discovered",
            vec![("OS_AUTH_URL", Some(&root))],
        ),
        (
            "domains by id",
            vec![
                ("OS_USER_DOMAIN_NAME", None),
                ("OS_PROJECT_DOMAIN_NAME", None),
                ("OS_USER_DOMAIN_ID", Some("default")),
                ("OS_PROJECT_DOMAIN_ID", Some("default")),
            ],
        ),
        (
            "no domains: Default",
            vec![
                ("OS_USER_DOMAIN_NAME", None),
                ("OS_PROJECT_DOMAIN_NAME", None),
            ],
        ),
        (
            "project by id",
            vec![
                ("OS_PROJECT_NAME", None),
                ("OS_PROJECT_ID", Some(&account.project_id)),
            ],
        ),
        (
            "the region by name",
            vec![("OS_REGION_NAME", Some(xitc_test_support::KEYSTONE_REGION))],
        ),
    ];
    for (case, changes) in cases {
        assert_finds(&changed(&base, &changes), &account.address, case);
    }
}

#[test]
fn application_credentials_by_id_and_by_name() {
    let account = Account::new(keystone(), "appcred");
    let (id, secret) = account.application_credential("ci", &account.project, None);
    let url = format!("{}/v3", account.keystone.url());
    // What a cloud hands out: the id and the secret, nothing else.
    assert_finds(
        &[
            ("OS_AUTH_URL", url.clone()),
            ("OS_AUTH_TYPE", "v3applicationcredential".to_owned()),
            ("OS_APPLICATION_CREDENTIAL_ID", id.clone()),
            ("OS_APPLICATION_CREDENTIAL_SECRET", secret.clone()),
        ],
        &account.address,
        "by id, with the auth type",
    );
    assert_finds(
        &[
            ("OS_AUTH_URL", url.clone()),
            ("OS_APPLICATION_CREDENTIAL_ID", id),
            ("OS_APPLICATION_CREDENTIAL_SECRET", secret.clone()),
        ],
        &account.address,
        "by id, the auth type inferred",
    );
    assert_finds(
        &[
            ("OS_AUTH_URL", url.clone()),
            ("OS_AUTH_TYPE", "v3applicationcredential".to_owned()),
            ("OS_APPLICATION_CREDENTIAL_NAME", "ci".to_owned()),
            ("OS_USERNAME", account.user.clone()),
            ("OS_USER_DOMAIN_NAME", "Default".to_owned()),
            ("OS_APPLICATION_CREDENTIAL_SECRET", secret.clone()),
        ],
        &account.address,
        "by name, with the user",
    );
    assert_finds(
        &[
            ("OS_AUTH_URL", url),
            ("OS_APPLICATION_CREDENTIAL_NAME", "ci".to_owned()),
            ("OS_USER_ID", account.user_id.clone()),
            ("OS_APPLICATION_CREDENTIAL_SECRET", secret),
        ],
        &account.address,
        "by name, with the user's id",
    );
}

#[test]
fn application_credentials_from_clouds_yaml() {
    let account = Account::new(keystone(), "appcred-yaml");
    let (id, secret) = account.application_credential("yaml", &account.project, None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clouds.yaml"),
        format!(
            "clouds:\n  ks:\n    auth_type: v3applicationcredential\n    auth:\n      \
             auth_url: {}\n      application_credential_id: {id}\n      \
             application_credential_secret: {secret}\n    identity_api_version: 3\n",
            account.keystone.url()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("clouds.yaml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    tool(&[("OS_CLOUD", "ks".to_owned())])
        .current_dir(dir.path())
        .arg("node")
        .assert()
        .success()
        .stdout(format!("{}\n", account.address))
        .stderr("");
}

#[test]
fn an_application_credential_sees_only_its_own_project() {
    let account = Account::new(keystone(), "appcred-other");
    // A second project of the same user, with no server named "node".
    let admin = account.keystone.admin_token();
    let other = account.keystone.expect(
        201,
        "POST",
        "/v3/projects",
        Some(&admin),
        Some(&json!({"project": {"name": "project-appcred-other-2", "domain_id": "default"}})),
    )["project"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let roles = account
        .keystone
        .expect(200, "GET", "/v3/roles?name=member", Some(&admin), None);
    let role = roles["roles"][0]["id"].as_str().unwrap().to_owned();
    account.keystone.expect(
        204,
        "PUT",
        &format!(
            "/v3/projects/{other}/users/{}/roles/{role}",
            account.user_id
        ),
        Some(&admin),
        None,
    );
    let (id, secret) = account.application_credential("elsewhere", "project-appcred-other-2", None);
    assert_fails(
        &[
            ("OS_AUTH_URL", format!("{}/v3", account.keystone.url())),
            ("OS_APPLICATION_CREDENTIAL_ID", id),
            ("OS_APPLICATION_CREDENTIAL_SECRET", secret),
        ],
        1,
        "no server is named \"node\" or has that id",
        "bound to another project",
    );
}

#[test]
fn a_deleted_or_expired_application_credential_is_refused() {
    let account = Account::new(keystone(), "appcred-gone");
    let url = format!("{}/v3", account.keystone.url());
    let (id, secret) = account.application_credential("deleted", &account.project, None);
    account.keystone.expect(
        204,
        "DELETE",
        &format!("/v3/users/{}/application_credentials/{id}", account.user_id),
        Some(&account.token(&account.project)),
        None,
    );
    let vars = |id: &str, secret: &str| {
        vec![
            ("OS_AUTH_URL", url.clone()),
            ("OS_APPLICATION_CREDENTIAL_ID", id.to_owned()),
            ("OS_APPLICATION_CREDENTIAL_SECRET", secret.to_owned()),
        ]
    };
    // Keystone answers 404 for a credential it does not know (any more).
    assert_fails(
        &vars(&id, &secret),
        1,
        "HTTP 404: authentication request rejected (OS_* variables): \
         Could not find Application Credential",
        "deleted",
    );
    let soon = Command::new("date")
        .args(["-u", "-d", "+2 seconds", "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    let soon = String::from_utf8(soon.stdout).unwrap();
    let (id, secret) =
        account.application_credential("expiring", &account.project, Some(soon.trim()));
    assert_finds(&vars(&id, &secret), &account.address, "before it expires");
    std::thread::sleep(Duration::from_secs(3));
    assert_fails(
        &vars(&id, &secret),
        1,
        "HTTP 401: authentication failed, check the credentials",
        "expired",
    );
    // The secret never shows.
    let output = tool(&vars(&id, &secret)).arg("node").output().unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&secret));
}

#[test]
fn a_token_is_rescoped_to_the_project() {
    let account = Account::new(keystone(), "token");
    let token = account.token(&account.project);
    let url = format!("{}/v3", account.keystone.url());
    for (case, auth_type) in [
        ("inferred", None),
        ("v3token", Some("v3token")),
        ("token", Some("token")),
    ] {
        let mut vars = vec![
            ("OS_AUTH_URL", url.clone()),
            ("OS_TOKEN", token.clone()),
            ("OS_PROJECT_NAME", account.project.clone()),
        ];
        vars.extend(auth_type.map(|auth_type| ("OS_AUTH_TYPE", auth_type.to_owned())));
        assert_finds(&vars, &account.address, case);
    }
    let output = tool(&[
        ("OS_AUTH_URL", url),
        ("OS_TOKEN", "not-a-token".to_owned()),
        ("OS_PROJECT_NAME", account.project.clone()),
    ])
    .arg("node")
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("not-a-token"));
}

#[test]
fn wrong_password_and_unknown_region_are_one_line_each() {
    let account = Account::new(keystone(), "mistakes");
    let base = account.password_env();
    assert_fails(
        &changed(&base, &[("OS_PASSWORD", Some("wrong"))]),
        1,
        "POST /v3/auth/tokens: HTTP 401: authentication failed, check the credentials",
        "wrong password",
    );
    assert_fails(
        &changed(&base, &[("OS_REGION_NAME", Some("Nowhere"))]),
        2,
        "no compute endpoint for service (any), region Nowhere, interface public; \
         the catalog has: nova RegionOne public",
        "unknown region",
    );
    assert_fails(
        &changed(
            &base,
            &[(
                "OS_AUTH_URL",
                Some(&format!("{}/v2.0", account.keystone.url())),
            )],
        ),
        1,
        "HTTP 404",
        "Keystone has no v2.0 any more",
    );
}

#[test]
fn a_catalog_without_compute_is_named() {
    let keystone = Keystone::start(None);
    let (_, _) = keystone.project_with_user("bare", "bare-user", PASSWORD);
    tool(&[
        ("OS_AUTH_URL", format!("{}/v3", keystone.url())),
        ("OS_USERNAME", "bare-user".to_owned()),
        ("OS_PASSWORD", PASSWORD.to_owned()),
        ("OS_PROJECT_NAME", "bare".to_owned()),
    ])
    .arg("node")
    .assert()
    .code(2)
    .stdout("")
    .stderr(predicate::str::contains(
        "no compute endpoint for service (any), region (any), interface public; \
         the catalog has no compute service",
    ));
}

/// A token that expires during the wait is renewed once and the wait goes on.
/// mimic's Nova takes any token, so the compute side here is the project's
/// fake (`FakeHttp`) doing what keystonemiddleware does in front of a real
/// Nova: it asks Keystone about each token and answers 401 for one that
/// expired. Tokens live 2 s; the server gets its address after 5 s.
#[test]
fn a_token_that_expires_during_the_wait_is_renewed() {
    let keystone = std::sync::Arc::new(Keystone::start(Some(2)));
    keystone.project_with_user("expiry", "expiry-user", PASSWORD);
    let validator = std::sync::Arc::clone(&keystone);
    let started = std::sync::Mutex::new(None::<Instant>);
    let tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let seen = std::sync::Arc::clone(&tokens);
    let nova = xitc_test_support::FakeHttp::start(move |request| {
        let token = request
            .header("x-auth-token")
            .unwrap_or_default()
            .to_owned();
        let valid = validator.token_is_valid(&token);
        seen.lock().unwrap().push((token, valid));
        if !valid {
            return xitc_test_support::Reply::json(
                401,
                &json!({"error": {"code": 401, "message": "The request you have made requires authentication."}}),
            );
        }
        let first = *started.lock().unwrap().get_or_insert_with(Instant::now);
        let address = if first.elapsed() > Duration::from_secs(5) {
            "203.0.113.77"
        } else {
            ""
        };
        let server = json!({"id": "s1", "name": "node", "status": "ACTIVE",
                            "accessIPv4": address, "addresses": {}});
        if request.path().ends_with("/servers/detail") {
            xitc_test_support::Reply::json(200, &json!({"servers": [server]}))
        } else {
            xitc_test_support::Reply::json(200, &json!({"server": server}))
        }
    });
    keystone.add_compute(
        "nova",
        xitc_test_support::KEYSTONE_REGION,
        &format!("{}/v2.1/$(project_id)s", nova.base_url()),
    );
    assert_finds(
        &[
            ("OS_AUTH_URL", format!("{}/v3", keystone.url())),
            ("OS_USERNAME", "expiry-user".to_owned()),
            ("OS_PASSWORD", PASSWORD.to_owned()),
            ("OS_PROJECT_NAME", "expiry".to_owned()),
        ],
        "203.0.113.77",
        "through a token's expiry",
    );
    let tokens = tokens.lock().unwrap();
    let mut distinct: Vec<&String> = tokens.iter().map(|(token, _)| token).collect();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "one token all along: {} requests",
        tokens.len()
    );
    assert!(
        tokens.iter().any(|(_, valid)| !valid),
        "no request came with an expired token"
    );
}
