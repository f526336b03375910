//! mimic, Rackspace's emulator of their Identity v2.0 and Nova APIs, on a free
//! loopback port.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{ServerProcess, free_port};
use crate::{INSTALL_HINT, workspace_root};

/// Overrides where mimic's `twistd` is found (default: the workspace's `.venv`).
pub const TWISTD_ENV: &str = "XITC_MIMIC_TWISTD";

/// A running mimic. Stopped on drop (for [`Mimic::start`]) or when the test process
/// ends (for [`Mimic::shared`]).
#[derive(Debug)]
pub struct Mimic {
    port: u16,
    process: ServerProcess,
    dir: TempDir,
}

impl Mimic {
    /// Starts a private mimic, for tests that need a pristine one.
    pub fn start() -> Self {
        let mut failures = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(mimic) => return mimic,
                Err(why) => writeln!(failures, "{why}").unwrap(),
            }
        }
        panic!("mimic did not start:\n{failures}");
    }

    /// The process-wide mimic, started on first use. Tests sharing it keep apart by
    /// using their own user names: mimic binds a user to the first tenant it used
    /// and keeps each tenant's servers separate.
    pub fn shared() -> &'static Mimic {
        static SHARED: OnceLock<Mimic> = OnceLock::new();
        SHARED.get_or_init(|| {
            // PR_SET_PDEATHSIG fires when the *thread* that spawned the child ends,
            // and test threads end with each test. Spawn from a thread that lives as
            // long as the process, so the kernel kills mimic exactly when the test
            // process goes (statics are never dropped).
            let (sender, receiver) = mpsc::channel();
            std::thread::Builder::new()
                .name("shared-mimic".into())
                .spawn(move || {
                    let _ = sender.send(Mimic::start());
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawning the shared-mimic thread");
            receiver
                .recv()
                .expect("mimic did not start (see the panic above)")
        })
    }

    fn try_start() -> Result<Self, String> {
        let twistd = twistd_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("xitc-mimic-")
            .tempdir()
            .map_err(|error| format!("creating a temp dir for mimic: {error}"))?;
        let port = free_port();
        let log = fs::File::create(dir.path().join("mimic.log"))
            .map_err(|error| format!("creating mimic.log: {error}"))?;
        let mut command = Command::new(&twistd);
        command
            .args(["-n", "--pidfile=", "mimic", "--realtime", "--listen"])
            .arg(format!("tcp:{port}:interface=127.0.0.1"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|error| error.to_string())?)
            .stderr(log);
        let mut process = ServerProcess::spawn("mimic", &mut command).map_err(|error| {
            format!("cannot run {} ({error}): {INSTALL_HINT}", twistd.display())
        })?;
        let mimic_log = || fs::read_to_string(dir.path().join("mimic.log")).unwrap_or_default();
        process
            .wait_for_port(port, Duration::from_secs(60))
            .map_err(|why| format!("{why}\nlog:\n{}", mimic_log()))?;
        Ok(Mimic { port, process, dir })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Identity v2.0 endpoint, as `OS_AUTH_URL` wants it.
    pub fn identity_url(&self) -> String {
        format!("{}/identity/v2.0", self.base_url())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// mimic's access log so far: one line per request (count requests with it).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mimic.log")).unwrap_or_default()
    }
}

fn twistd_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os(TWISTD_ENV)
        .map_or_else(|| workspace_root().join(".venv/bin/twistd"), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "mimic's twistd not found at {} ({TWISTD_ENV} overrides): {INSTALL_HINT}, \
             which makes .venv with `pip install mimic 'attrs<24'`",
            path.display()
        ))
    }
}

impl Mimic {
    /// mimic's Nova endpoint (region ORD) with `$(project_id)s` where the
    /// tenant goes: for another identity service's catalog (Keystone's), whose
    /// projects then have their servers in mimic. mimic's Nova does not check
    /// the token it gets, only the tenant in the path.
    pub fn nova_url_template(&self) -> String {
        const TENANT: &str = "xitc-template-tenant";
        let agent = crate::http_agent();
        let body = serde_json::json!({"auth": {
            "passwordCredentials": {"username": "xitc-template-user", "password": "any"},
            "tenantName": TENANT,
        }});
        let document: serde_json::Value = agent
            .post(&format!("{}/tokens", self.identity_url()))
            .send_json(&body)
            .expect("mimic's Identity answers")
            .body_mut()
            .read_json()
            .expect("mimic's token is JSON");
        let url = document["access"]["serviceCatalog"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|service| service["name"] == "cloudServersOpenStack")
            .flat_map(|service| service["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|endpoint| endpoint["region"] == "ORD")
            .and_then(|endpoint| endpoint["publicURL"].as_str().map(str::to_owned))
            .expect("mimic's catalog has cloudServersOpenStack in ORD");
        let base = url
            .strip_suffix(TENANT)
            .unwrap_or_else(|| panic!("mimic's Nova URL {url} does not end in the tenant"));
        format!("{base}$(project_id)s")
    }

    /// The names of `tenant`'s keypairs in mimic's Nova (region ORD), asked
    /// of mimic directly: what a test checks was left behind. The tools have
    /// no such call (nothing of theirs lists keypairs); mimic's Nova takes
    /// any token.
    pub fn keypairs(&self, tenant: &str) -> Vec<String> {
        let url = format!(
            "{}/os-keypairs",
            self.nova_url_template().replace("$(project_id)s", tenant)
        );
        let document: serde_json::Value = crate::http_agent()
            .get(&url)
            .header("X-Auth-Token", "any")
            .call()
            .expect("mimic's Nova answers")
            .body_mut()
            .read_json()
            .expect("mimic's keypair list is JSON");
        document["keypairs"]
            .as_array()
            .expect("mimic's answer has a \"keypairs\" list")
            .iter()
            .map(|entry| {
                entry["keypair"]["name"]
                    .as_str()
                    .expect("each keypair has a name")
                    .to_owned()
            })
            .collect()
    }
}
