//! The test's flow: what a user does, step by step (README "test-rs"); what
//! it created is deleted by `cleanup`.

use std::cell::{OnceCell, RefCell};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use xitc_common::cloud::{CloudClient, CloudConfig, Env, ServerCreate, Timeouts};
use xitc_common::exit::{self, Classify as _};
use xitc_common::files;
use xitc_common::poll::{Schedule, SystemClock, poll_until};
use xitc_common::secret::Secret;
use xitc_common::ssh::{self, Credential, FailureKind, HostKeyPolicy, Target, shell_quote};
use xitc_common::stamp;

use crate::cli::{Cli, Mode, Network};
use crate::names::Names;
use crate::programs::{
    self, CONVERT, GET_IP, StderrLine, WAIT_DONE, check_interrupted, find_convert, find_sibling,
    run_interruptibly, run_watching_stderr,
};
use crate::run::{Node, Run, api_deadline, deadline};
use crate::say::{TOOL, say};
use crate::steps::Steps;
use crate::timeline::{Arrival, CONSOLE_PREFIX};

pub fn run(cli: &Cli, names: &Names) -> anyhow::Result<()> {
    // Tools first: a missing sibling is found before anything is created.
    let get_ip = find_sibling(GET_IP)?;
    let wait_done = find_sibling(WAIT_DONE)?;
    let convert = match &cli.convert_binary {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => {
            return Err(exit::usage(format!(
                "--convert-binary {} is not a file",
                path.display()
            )));
        }
        None => find_convert()?,
    };
    let stamp = stamp::stamp_path()?;
    // A given key is checked now (readable, its public half, its passphrase),
    // before anything is created in the cloud.
    let credential = OnceCell::new();
    let given_public_key = match &cli.ssh_key {
        Some(path) => {
            let public = public_half(path)?;
            if let Some(warning) = files::readable_by_others_warning(path, "--ssh-key") {
                exit::warn(TOOL, &warning);
            }
            let _ = credential.set(Credential::from_argument(path, passphrase(), None)?);
            Some(public)
        }
        None => None,
    };
    let config = CloudConfig::load(&Env::from_process())?;
    for warning in &config.warnings {
        exit::warn(TOOL, warning);
    }
    let client = CloudClient::new(config, Timeouts::default()).with_notes(TOOL);
    let key_dir = tempfile::Builder::new()
        .prefix("test-rs-")
        .tempdir()
        .or_usage(|| {
            format!(
                "cannot create a temp dir for the keypair in {}",
                std::env::temp_dir().display()
            )
        })?;
    let key_path = match &cli.ssh_key {
        Some(path) => path.clone(),
        None => key_dir.path().join("id_ed25519"),
    };
    let password = cli
        .password
        .clone()
        .map_or_else(|| ssh::random_password(24), Secret::new);
    programs::catch_interrupts();

    // The artifacts' directory is made now: a DIR that cannot be made is
    // bad input, said before anything is created in the cloud.
    if let Some(dir) = &cli.artifacts {
        std::fs::create_dir_all(dir).or_usage(|| {
            format!(
                "--artifacts {}: cannot make it",
                exit::escape_control(&dir.display().to_string())
            )
        })?;
    }
    let run = Run {
        cli,
        names,
        client,
        steps: Steps::default(),
        created: RefCell::default(),
        get_ip,
        wait_done,
        convert,
        credential,
        key_path,
        password,
        given_public_key,
        stamp,
        console: RefCell::default(),
        nodes: RefCell::default(),
        _key_dir: key_dir,
    };
    let result = run.remove_leftovers().and_then(|()| run.test());
    if result.is_ok() {
        say("ALL TESTS PASSED");
    }
    // Before cleanup, while the servers are there; not after Ctrl-C, whose
    // user wants out.
    if check_interrupted().is_ok() {
        run.keep_artifacts(result.is_err());
    }
    let cleanup = if cli.keep {
        say(&format!("--keep: leaving {:?}", run.created.borrow()));
        Ok(())
    } else {
        run.cleanup()
    };
    say(&format!("\n{}", run.steps.summary()));
    match (result, cleanup) {
        (Err(error), Err(cleanup_error)) => {
            exit::note(TOOL, &format!("cleanup also failed: {cleanup_error:#}"));
            Err(error)
        }
        (Err(error), Ok(())) => Err(error),
        (Ok(()), Err(cleanup_error)) => {
            Err(cleanup_error.context("the test passed, but cleanup failed"))
        }
        (Ok(()), Ok(())) => Ok(()),
    }
}

impl Run<'_> {
    fn test(&self) -> anyhow::Result<()> {
        let names = self.names.clone();
        self.steps.run("create keypair", || self.create_keypair())?;
        let (test_id, target) =
            self.launch(&names.test_server, &self.cli.image, &self.cli.metadata)?;
        self.steps
            .run("wait for SSH", || self.wait_for_ssh(&target))?;
        self.steps.run("upload and start xitc-convert", || {
            self.start_convert(&target)
        })?;
        self.steps.run("wait until the conversion is done", || {
            self.wait_done(&target, &test_id)
        })?;
        self.steps.run("remove the stamp and sync", || {
            self.connect(&target)?
                .run(
                    &format!("rm -f {} && sync", shell_quote(&self.stamp)),
                    Duration::from_secs(300),
                )
                .map_err(anyhow::Error::new)?;
            Ok(())
        })?;
        self.steps
            .run(&format!("delete old images named {}", names.image), || {
                self.delete_images_named(&names.image, &api_deadline())
            })?;
        let image_id = self
            .steps
            .run(&format!("snapshot as {}", names.image), || {
                self.client.create_image(
                    &test_id,
                    &names.image,
                    &deadline(self.cli.snapshot_timeout),
                )
            })?;
        self.created.borrow_mut().image = Some(image_id.clone());
        self.steps.run("wait for the snapshot to be ACTIVE", || {
            self.wait_image_active(&image_id)
        })?;
        let (snapshot_id, target) = self.launch(
            &names.snapshot_server,
            &image_id,
            &self.cli.snapshot_metadata,
        )?;
        self.steps.run("wait until the snapshot is done", || {
            self.wait_done(&target, &snapshot_id)
        })?;
        let check = match self.cli.mode {
            Mode::Appliance => "check the appliance reaches dom0",
            Mode::Direct => "check the host's XAPI answers",
        };
        self.steps.run(check, || {
            self.connect(&target)?
                .run(self.cli.check_command(), Duration::from_secs(120))
                .map_err(anyhow::Error::new)?;
            Ok(())
        })
    }

    /// Boots `name` from `image` (recording it for cleanup at once), waits for
    /// ACTIVE and gets its address: the server's id and where to SSH to.
    fn launch(
        &self,
        name: &str,
        image: &str,
        metadata: &[(String, String)],
    ) -> anyhow::Result<(String, Target)> {
        let id = self
            .steps
            .run(&format!("boot {name}"), || self.boot(name, image, metadata))?;
        self.nodes.borrow_mut().push(Node {
            name: name.to_owned(),
            id: id.clone(),
            target: None,
        });
        {
            let mut created = self.created.borrow_mut();
            if name == self.names.test_server {
                created.test_server = Some(id.clone());
            } else {
                created.snapshot_server = Some(id.clone());
            }
        }
        self.steps
            .run(&format!("wait for {name} to be ACTIVE"), || {
                self.wait_active(&id)
            })?;
        let address = self.steps.run(&format!("get the address of {name}"), || {
            self.address_of(&id)
        })?;
        let target = self.target(&address)?;
        if let Some(node) = self.nodes.borrow_mut().last_mut() {
            node.target = Some(target.clone());
        }
        Ok((id, target))
    }

    fn create_keypair(&self) -> anyhow::Result<()> {
        let public = if let Some(public) = &self.given_public_key {
            public.clone()
        } else {
            let (private, public) =
                ssh::generate_ed25519(&format!("test-rs {}", self.names.keypair))?;
            write_private_key(&self.key_path, &private)?;
            let credential = Credential::from_argument(&self.key_path, None, None)?;
            let _ = self.credential.set(credential);
            public
        };
        self.client
            .create_keypair(&self.names.keypair, &public, &api_deadline())?;
        self.created.borrow_mut().keypair = Some(self.names.keypair.clone());
        Ok(())
    }

    fn boot(
        &self,
        name: &str,
        image: &str,
        metadata: &[(String, String)],
    ) -> anyhow::Result<String> {
        let spec = ServerCreate {
            name: name.to_owned(),
            image: image.to_owned(),
            flavor: self.cli.flavor.clone(),
            key_name: Some(self.names.keypair.clone()),
            metadata: metadata.iter().cloned().collect(),
        };
        self.client
            .create_server(&spec, &deadline(self.cli.boot_timeout))
    }

    fn wait_active(&self, id: &str) -> anyhow::Result<()> {
        let schedule = Schedule::new(self.cli.boot_timeout, self.cli.interval);
        poll_until(&SystemClock, schedule, |deadline| {
            check_interrupted()?;
            let server = self
                .client
                .get_server(id, deadline)?
                .ok_or_else(|| anyhow::anyhow!("server {id} disappeared"))?;
            if let Some(error) = server.error() {
                anyhow::bail!(error);
            }
            Ok((server.status == "ACTIVE").then_some(()))
        })
    }

    fn wait_image_active(&self, id: &str) -> anyhow::Result<()> {
        let schedule = Schedule::new(self.cli.snapshot_timeout, self.cli.interval);
        poll_until(&SystemClock, schedule, |deadline| {
            check_interrupted()?;
            let image = self
                .client
                .get_image(id, deadline)?
                .ok_or_else(|| anyhow::anyhow!("image {id} disappeared"))?;
            match image.status.to_ascii_uppercase().as_str() {
                "ACTIVE" => Ok(Some(())),
                "ERROR" | "KILLED" | "DELETED" => anyhow::bail!("image {id} is {}", image.status),
                _ => Ok(None),
            }
        })
    }

    /// The server's address, from the get-ip tool as a user would get it.
    fn address_of(&self, id: &str) -> anyhow::Result<String> {
        let mut command = Command::new(&self.get_ip);
        command
            .arg("--timeout")
            .arg(format!("{}ms", self.cli.boot_timeout.as_millis()))
            .arg("--interval")
            .arg(format!("{}ms", self.cli.interval.as_millis()))
            .arg(id)
            .stdout(Stdio::piped());
        let (status, stdout) = run_interruptibly(&mut command, &self.get_ip)?;
        if !status.success() {
            anyhow::bail!("{GET_IP} {id} failed ({status})");
        }
        let address = stdout.trim().to_owned();
        say(&format!("    {GET_IP} {id} → {address}"));
        Ok(address)
    }

    fn target(&self, address: &str) -> anyhow::Result<Target> {
        let host = match &self.cli.ssh_address {
            Some(ssh_address) => ssh_address.clone(),
            None => bracketed(address),
        };
        Target::parse(&format!("{}@{host}", self.cli.ssh_user), None)
    }

    fn wait_for_ssh(&self, target: &Target) -> anyhow::Result<()> {
        let schedule = Schedule::new(self.cli.ssh_timeout, self.cli.interval);
        let mut last = String::new();
        poll_until(&SystemClock, schedule, |deadline| {
            check_interrupted()?;
            let limit = deadline.cap(Instant::now(), Duration::from_secs(30));
            match ssh::connect(target, self.credential()?, &HostKeyPolicy::AcceptAny, limit) {
                Ok(_) => Ok(Some(())),
                Err(failure) if failure.kind == FailureKind::Setup => {
                    Err(anyhow::Error::new(failure))
                }
                Err(failure) => {
                    last = failure.message;
                    Ok(None)
                }
            }
        })
        .with_context(|| format!("{target} (last: {last})"))
    }

    fn start_convert(&self, target: &Target) -> anyhow::Result<()> {
        let connection = self.connect(target)?;
        let dir = self.cli.install_dir.trim_end_matches('/');
        let binary = format!("{dir}/{CONVERT}");
        let password_file = format!("{dir}/{CONVERT}.password");
        let limit = Duration::from_secs(600);
        let run = |command: &str| connection.run(command, limit).map_err(anyhow::Error::new);
        run(&format!("mkdir -p {}", shell_quote(dir)))?;
        connection
            .upload(&self.convert, &binary, 0o755, limit)
            .map_err(anyhow::Error::new)?;
        let password_local =
            tempfile::NamedTempFile::new().context("creating the password file")?;
        std::fs::write(password_local.path(), self.password.expose())
            .context("writing the password file")?;
        connection
            .upload(password_local.path(), &password_file, 0o600, limit)
            .map_err(anyhow::Error::new)?;
        // XITC_STAMP_PATH travels with the command when this run uses another stamp.
        let stamp_env = if self.stamp == stamp::DEFAULT_STAMP_PATH {
            String::new()
        } else {
            format!("{}={} ", stamp::STAMP_PATH_ENV, shell_quote(&self.stamp))
        };
        // `&` ends a list: only the last command may be in it, or the background
        // shell would hold the channel's output open and this command would not
        // return until xitc-convert ends.
        // The appliance mode's URL and label; the direct mode has neither.
        let appliance = match self.cli.staging_vm_url() {
            Some(url) => format!(
                " {} {}",
                shell_quote(url),
                shell_quote(&self.cli.appliance_label)
            ),
            None => String::new(),
        };
        // --mode and --network only when asked for: the defaults are
        // xitc-convert's own, and an older xitc-convert knows neither option.
        let mut options = String::new();
        if self.cli.mode != Mode::Appliance {
            let _ = write!(options, " --mode {}", self.cli.mode_name());
        }
        if self.cli.network != Network::Auto {
            let _ = write!(options, " --network {}", self.cli.network_name());
        }
        let start = format!(
            "cd {dir_q} || exit 1; {stamp_env}nohup {binary_q}{options} --password-file \
             {password_q}{appliance} > {dir_q}/{CONVERT}.out 2>&1 < /dev/null &",
            dir_q = shell_quote(dir),
            binary_q = shell_quote(&binary),
            password_q = shell_quote(&password_file),
        );
        match connection.run(&start, limit) {
            Ok(_) => Ok(()),
            // The node may reboot at once and take the session with it: expected.
            Err(failure) if failure.kind == FailureKind::Session => {
                say(&format!(
                    "    the session dropped while starting {CONVERT} (the node reboots)"
                ));
                Ok(())
            }
            Err(failure) => Err(anyhow::Error::new(failure)),
        }
    }

    /// The sibling's wait for the stamp, following the server's console log
    /// too (`--console`, with this run's cloud settings, which it inherits):
    /// a failure on the node ends the wait at once with the console's line,
    /// and the node's phases show on stderr as it converts.
    fn wait_done(&self, target: &Target, server_id: &str) -> anyhow::Result<()> {
        let mut command = Command::new(&self.wait_done);
        command
            .arg("--console")
            .arg(server_id)
            .arg("--interval")
            .arg(format!("{}ms", self.cli.interval.as_millis()))
            .arg("--timeout")
            .arg(format!("{}ms", self.cli.convert_timeout.as_millis()))
            .arg("--port")
            .arg(target.port.to_string())
            .arg(format!("{}@{}", target.user, bracketed(&target.host)))
            .arg(&self.key_path);
        // wait-done's console lines, stamped on arrival, for the timeline.
        let arrived: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let recording = Arc::clone(&arrived);
        let server = self
            .nodes
            .borrow()
            .iter()
            .find(|node| node.id == server_id)
            .map_or_else(|| server_id.to_owned(), |node| node.name.clone());
        let each_line: StderrLine = Box::new(move |line: &str| {
            if let Some(console_line) = line.strip_prefix(CONSOLE_PREFIX) {
                recording
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Arrival {
                        server: server.clone(),
                        at: SystemTime::now(),
                        line: console_line.to_owned(),
                    });
            }
        });
        let ran = run_watching_stderr(&mut command, &self.wait_done, Some(each_line));
        self.console
            .borrow_mut()
            .append(&mut arrived.lock().unwrap_or_else(PoisonError::into_inner));
        let (status, _) = ran?;
        if status.success() {
            Ok(())
        } else {
            anyhow::bail!("{WAIT_DONE} failed ({status})")
        }
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The passphrase of a given --ssh-key, from `XITC_KEY_PASSPHRASE` as for
/// xitc-wait-until-done (never an argument).
fn passphrase() -> Option<Secret> {
    std::env::var(ssh::PASSPHRASE_ENV).ok().map(Secret::new)
}

/// The public half of an OpenSSH private key file (stored unencrypted in it).
fn public_half(path: &Path) -> anyhow::Result<String> {
    let text = files::read_bounded_text(path, "--ssh-key", files::SMALL_FILE_LIMIT)?;
    let key = xitc_common::ssh::public_key_of_openssh(&text).map_err(|error| {
        exit::usage(format!(
            "--ssh-key {} is not an OpenSSH private key: {error}",
            exit::escape_control(&path.display().to_string())
        ))
    })?;
    Ok(key)
}

fn write_private_key(path: &Path, key: &Secret) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.expose().as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
