//! Keystone, OpenStack's real Identity service (from PyPI, in the workspace's
//! `.venv-keystone`), on a free loopback port: sqlite, fernet tokens, served by
//! gunicorn. `scripts/lib/keystone-setup.py` (shared with the benchmarks)
//! writes its config and runs keystone-manage; it says why it does what. The
//! rest: gunicorn runs with **no arguments** from that folder, and
//! `OS_KEYSTONE_CONFIG_DIR` points Keystone at its `keystone.conf`.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::process::{ServerProcess, free_port};
use crate::{INSTALL_HINT, workspace_root};

/// The bootstrap admin's password (a test secret on loopback).
pub const ADMIN_PASSWORD: &str = "admin-pw";

/// Where the Keystone venv is (default: the workspace's `.venv-keystone`).
pub const KEYSTONE_VENV_ENV: &str = "XITC_KEYSTONE_VENV";

/// The region bootstrap creates, where tests put their endpoints.
pub const REGION: &str = "RegionOne";

/// An answer of Keystone's API.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `X-Subject-Token`, on token requests.
    pub subject_token: Option<String>,
    pub body: Value,
}

/// A running Keystone, stopped on drop ([`Keystone::start`]) or with the test
/// process ([`Keystone::shared`]).
#[derive(Debug)]
pub struct Keystone {
    port: u16,
    /// Held, not read: dropping it stops gunicorn and its worker.
    _process: ServerProcess,
    dir: TempDir,
}

impl Keystone {
    /// The process-wide Keystone (tokens valid for an hour), started on first
    /// use; tests keep apart by their own projects and users.
    pub fn shared() -> &'static Keystone {
        static SHARED: OnceLock<Keystone> = OnceLock::new();
        SHARED.get_or_init(|| {
            // As for mimic: spawned from a thread that lives as long as the
            // process, so PR_SET_PDEATHSIG fires only when the process goes.
            let (sender, receiver) = mpsc::channel();
            std::thread::Builder::new()
                .name("shared-keystone".into())
                .spawn(move || {
                    let _ = sender.send(Keystone::start(None));
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawning the shared-keystone thread");
            receiver
                .recv()
                .expect("Keystone did not start (see the panic above)")
        })
    }

    /// A private Keystone; `token_expiration` seconds sets `[token] expiration`.
    pub fn start(token_expiration: Option<u32>) -> Self {
        let mut failures = String::new();
        for _ in 0..3 {
            match Self::try_start(token_expiration) {
                Ok(keystone) => return keystone,
                Err(why) => writeln!(failures, "{why}").unwrap(),
            }
        }
        panic!("Keystone did not start:\n{failures}");
    }

    fn try_start(token_expiration: Option<u32>) -> Result<Self, String> {
        let venv = venv()?;
        let dir = tempfile::Builder::new()
            .prefix("xitc-keystone-")
            .tempdir()
            .map_err(|error| format!("creating a temp dir for Keystone: {error}"))?;
        let port = free_port();
        let log = || fs::read_to_string(dir.path().join("keystone.log")).unwrap_or_default();
        let log_file = |name: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join(name))
                .map_err(|error| format!("creating {name}: {error}"))
        };
        let setup = Command::new(venv.join("bin/python"))
            .arg(workspace_root().join("scripts/lib/keystone-setup.py"))
            .arg(dir.path())
            .arg(port.to_string())
            .arg(ADMIN_PASSWORD)
            .args(token_expiration.map(|seconds| seconds.to_string()))
            .stdin(Stdio::null())
            .stdout(log_file("keystone.log")?)
            .stderr(log_file("keystone.log")?)
            .status()
            .map_err(|error| format!("cannot run Keystone's setup ({error}): {INSTALL_HINT}"))?;
        if !setup.success() {
            return Err(format!("keystone-manage failed ({setup}):\n{}", log()));
        }
        let mut command = Command::new(venv.join("bin/gunicorn"));
        command
            .current_dir(dir.path())
            .env("OS_KEYSTONE_CONFIG_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log_file("keystone.log")?)
            .stderr(log_file("keystone.log")?);
        let mut process = ServerProcess::spawn("keystone", &mut command)
            .map_err(|error| format!("cannot run gunicorn ({error}): {INSTALL_HINT}"))?;
        process
            .wait_for_port(port, Duration::from_secs(60))
            .map_err(|why| format!("{why}\nlog:\n{}", log()))?;
        let keystone = Keystone {
            port,
            _process: process,
            dir,
        };
        // Listening is not answering: the worker imports Keystone first.
        let started = Instant::now();
        while keystone.request("GET", "/v3", None, None).status != 200 {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "Keystone did not answer GET /v3:\n{}",
                    keystone.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(keystone)
    }

    /// `http://127.0.0.1:PORT` (no version: the root answers with the versions).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Keystone's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("keystone.log")).unwrap_or_default()
    }

    /// One request to Keystone's API (`path` from the root, `/v3/...`), with
    /// `token` as `X-Auth-Token`. A failed connection is status 0.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let agent = crate::http_agent();
        let url = format!("{}{path}", self.url());
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Content-Type", "application/json");
        let request = match token {
            Some(token) => request.header("X-Auth-Token", token),
            None => request,
        };
        let body = body.map_or_else(Vec::new, |body| body.to_string().into_bytes());
        let result = request
            .body(body)
            .map_err(|error| error.to_string())
            .and_then(|request| agent.run(request).map_err(|error| error.to_string()));
        match result {
            Err(_) => Answer {
                status: 0,
                subject_token: None,
                body: Value::Null,
            },
            Ok(mut response) => Answer {
                status: response.status().as_u16(),
                subject_token: response
                    .headers()
                    .get("X-Subject-Token")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
                body: response.body_mut().read_json().unwrap_or(Value::Null),
            },
        }
    }

    /// Whether Keystone still accepts `token`, as keystonemiddleware asks in
    /// front of a real Nova (`GET /v3/auth/tokens`, the token validating
    /// itself, which Keystone's policy allows its subject).
    pub fn token_is_valid(&self, token: &str) -> bool {
        let agent = crate::http_agent();
        agent
            .get(&format!("{}/v3/auth/tokens", self.url()))
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .call()
            .is_ok_and(|response| response.status() == 200)
    }

    /// [`Keystone::request`] that must answer `expected`; the body.
    pub fn expect(
        &self,
        expected: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Value {
        let answer = self.request(method, path, token, body);
        assert_eq!(
            answer.status,
            expected,
            "{method} {path}: {}\n{}",
            answer.body,
            self.log()
        );
        answer.body
    }

    /// A token of `user` (by name, in domain `default`) scoped to `project`.
    pub fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }});
        let answer = self.request("POST", "/v3/auth/tokens", None, Some(&body));
        assert_eq!(answer.status, 201, "token for {user}: {}", answer.body);
        answer.subject_token.expect("X-Subject-Token")
    }

    /// The bootstrap admin's token (project `admin`).
    pub fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin")
    }

    /// A project in domain `default`, and a user with the `member` role on it:
    /// (project id, user id).
    pub fn project_with_user(&self, project: &str, user: &str, password: &str) -> (String, String) {
        let admin = self.admin_token();
        let admin = Some(admin.as_str());
        let project_id = self.expect(
            201,
            "POST",
            "/v3/projects",
            admin,
            Some(&json!({"project": {"name": project, "domain_id": "default"}})),
        )["project"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let user_id = self.expect(
            201,
            "POST",
            "/v3/users",
            admin,
            Some(&json!({"user": {"name": user, "password": password, "domain_id": "default"}})),
        )["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let roles = self.expect(200, "GET", "/v3/roles?name=member", admin, None);
        let role = roles["roles"][0]["id"].as_str().unwrap().to_owned();
        self.expect(
            204,
            "PUT",
            &format!("/v3/projects/{project_id}/users/{user_id}/roles/{role}"),
            admin,
            None,
        );
        (project_id, user_id)
    }

    /// Registers a `compute` service named `name` with a public endpoint at
    /// `url` (Keystone fills in `$(project_id)s`) in `region` (created if new).
    pub fn add_compute(&self, name: &str, region: &str, url: &str) {
        let admin = self.admin_token();
        let admin = Some(admin.as_str());
        if region != REGION {
            self.expect(
                201,
                "POST",
                "/v3/regions",
                admin,
                Some(&json!({"region": {"id": region}})),
            );
        }
        let service = self.expect(
            201,
            "POST",
            "/v3/services",
            admin,
            Some(&json!({"service": {"type": "compute", "name": name}})),
        )["service"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.expect(
            201,
            "POST",
            "/v3/endpoints",
            admin,
            Some(&json!({"endpoint": {
                "service_id": service, "interface": "public", "region_id": region, "url": url}})),
        );
    }
}

fn venv() -> Result<PathBuf, String> {
    let path = std::env::var_os(KEYSTONE_VENV_ENV)
        .map_or_else(|| workspace_root().join(".venv-keystone"), PathBuf::from);
    if path.join("bin/gunicorn").is_file() && path.join("bin/keystone-manage").is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Keystone not found in {} ({KEYSTONE_VENV_ENV} overrides): {INSTALL_HINT}, \
             which makes .venv-keystone with `pip install keystone gunicorn`",
            path.display()
        ))
    }
}
