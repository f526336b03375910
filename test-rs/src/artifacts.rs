//! What a run keeps for CI (README "test-rs", "Artifacts"): for each server it
//! booted, the cloud's whole console log and, from whichever side of the node
//! answers SSH (Ubuntu; dom0 directly; dom0 through the appliance), the
//! xitc-convert log and `--status`, and dom0's installer logs; and the run's
//! timeline (`timeline`). Kept with `--artifacts DIR` always, else only when
//! the run failed, in a new directory under the temp dir.
//!
//! Collecting never changes the run's outcome and never waits long: each
//! piece has its own limit, and what cannot be had is said in `notes.txt`
//! beside what was kept. Nothing in it is secret: the console and the log
//! never carry the password (xitc-convert masks it), and the key stays where
//! it was.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64ct::Encoding as _;
use xitc_common::cloud::ConsoleLog;
use xitc_common::ssh::{Target, shell_quote};

use crate::programs::CONVERT;
use crate::run::{Run, api_deadline};
use crate::say::say;
use crate::timeline::timeline;

/// The limit of each command run on the node for its artifacts.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// How the appliance reaches dom0 (as the 2014 check did: its user's key is
/// in dom0's authorized_keys).
const DOM0_FROM_APPLIANCE: &str = "sudo -u domzero ssh -o BatchMode=yes \
     -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=30 \
     root@192.168.33.2";

/// Which system answered at the node's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ubuntu,
    Dom0,
    /// Neither: the appliance, which reaches dom0.
    Appliance,
}

impl Run<'_> {
    /// Keeps the artifacts when asked (`--artifacts`) or when the run
    /// `failed`; says where. Returns the directory.
    pub fn keep_artifacts(&self, failed: bool) -> Option<PathBuf> {
        let dir = match &self.cli.artifacts {
            Some(dir) => dir.clone(),
            None if failed => match tempfile::Builder::new()
                .prefix(&format!("test-rs-{}-artifacts-", self.cli.postfix()))
                .tempdir()
            {
                Ok(dir) => dir.keep(),
                Err(error) => {
                    say(&format!(
                        "artifacts: cannot make a directory for them: {error}"
                    ));
                    return None;
                }
            },
            None => return None,
        };
        let mut notes = String::new();
        let booted = self.nodes.borrow().clone();
        for node in &booted {
            let node_dir = dir.join(&node.name);
            if let Err(error) = std::fs::create_dir_all(&node_dir) {
                let _ = writeln!(
                    notes,
                    "{}: cannot make {}: {error}",
                    node.name,
                    node_dir.display()
                );
                continue;
            }
            self.keep_console(&node.id, &node_dir, &mut notes);
            match &node.target {
                Some(target) => self.keep_node_files(target, &node_dir, &mut notes),
                None => {
                    let _ = writeln!(notes, "{}: no address, nothing from the node", node.name);
                }
            }
        }
        let timeline = timeline(&self.console.borrow());
        let written = serde_json::to_string_pretty(&timeline)
            .map_err(anyhow::Error::new)
            .and_then(|text| write(&dir.join("timeline.json"), text.as_bytes()));
        note(&mut notes, "timeline.json", written.map(|()| "kept"));
        if let Err(error) = write(&dir.join("notes.txt"), notes.as_bytes()) {
            say(&format!("artifacts: {error:#}"));
        }
        say(&format!("artifacts kept in {}", dir.display()));
        Some(dir)
    }

    /// The server's whole console log, as the cloud gives it.
    fn keep_console(&self, server_id: &str, dir: &Path, notes: &mut String) {
        let what = format!("{}/console.log", file_name(dir));
        let kept = self
            .client
            .console_log(server_id, None, &api_deadline())
            .and_then(|log| match log {
                ConsoleLog::Text(text) => {
                    write(&dir.join("console.log"), text.as_bytes()).map(|()| "kept")
                }
                ConsoleLog::NotYet(why) | ConsoleLog::Unavailable(why) => {
                    anyhow::bail!("the cloud gives none: {why}")
                }
            });
        note(notes, &what, kept);
    }

    /// xitc-convert's log and `--status`, and dom0's installer logs, from
    /// whichever side answers at `target`.
    fn keep_node_files(&self, target: &Target, dir: &Path, notes: &mut String) {
        let name = file_name(dir);
        let connection = match self.connect(target) {
            Ok(connection) => connection,
            Err(error) => {
                let _ = writeln!(notes, "{name}: nothing from the node: {error:#}");
                return;
            }
        };
        let install_dir = self.cli.install_dir.trim_end_matches('/');
        let side_probe = format!(
            "if [ -f /etc/xensource-inventory ]; then echo dom0; \
             elif [ -e {convert} ]; then echo ubuntu; else echo appliance; fi",
            convert = shell_quote(&format!("{install_dir}/{CONVERT}"))
        );
        let side = match connection.run(&side_probe, COMMAND_LIMIT) {
            Ok(output) => match output.stdout.trim() {
                "dom0" => Side::Dom0,
                "ubuntu" => Side::Ubuntu,
                _ => Side::Appliance,
            },
            Err(failure) => {
                let _ = writeln!(notes, "{name}: nothing from the node: {failure}");
                return;
            }
        };
        let _ = writeln!(notes, "{name}: the node answered as {side:?}");
        // In dom0, Ubuntu's root (with the install dir) is at /mnt/ubuntu.
        let convert_dir = match side {
            Side::Ubuntu => install_dir.to_owned(),
            Side::Dom0 | Side::Appliance => format!("/mnt/ubuntu{install_dir}"),
        };
        let in_node = |command: &str| match side {
            Side::Ubuntu | Side::Dom0 => command.to_owned(),
            Side::Appliance => format!("{DOM0_FROM_APPLIANCE} {}", shell_quote(command)),
        };
        let run = |command: &str| {
            connection
                .run(&in_node(command), COMMAND_LIMIT)
                .map(|output| output.stdout)
                .map_err(anyhow::Error::new)
        };
        let log = run(&format!(
            "cat {}",
            shell_quote(&format!("{convert_dir}/{CONVERT}.log"))
        ))
        .and_then(|text| write(&dir.join("xitc-convert.log"), text.as_bytes()).map(|()| "kept"));
        note(notes, &format!("{name}/xitc-convert.log"), log);
        let status = run(&format!(
            "{} --status",
            shell_quote(&format!("{convert_dir}/{CONVERT}"))
        ))
        .and_then(|text| write(&dir.join("status.txt"), text.as_bytes()).map(|()| "kept"));
        note(notes, &format!("{name}/status.txt"), status);
        if side == Side::Ubuntu {
            let _ = writeln!(
                notes,
                "{name}/installer-logs.tar.gz: not kept: the node runs Ubuntu (no dom0 answered)"
            );
            return;
        }
        let installer = run("tar -C /var/log -czf - installer | base64 -w 0")
            .and_then(|text| {
                base64ct::Base64::decode_vec(text.trim()).map_err(|error| {
                    anyhow::anyhow!("the archive did not come back whole: {error}")
                })
            })
            .and_then(|bytes| write(&dir.join("installer-logs.tar.gz"), &bytes).map(|()| "kept"));
        note(notes, &format!("{name}/installer-logs.tar.gz"), installer);
    }
}

fn file_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes)
        .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))
}

fn note(notes: &mut String, what: &str, result: anyhow::Result<&str>) {
    let _ = match result {
        Ok(done) => writeln!(notes, "{what}: {done}"),
        Err(error) => writeln!(notes, "{what}: not kept: {error:#}"),
    };
}
