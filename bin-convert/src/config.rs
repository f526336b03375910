//! The run's configuration, saved 0600 beside the state file by the first run so
//! that the boot-time runs need no arguments: the password never appears in a
//! unit file or in argv.
//!
//! Only a SHA-512 crypt hash of the root password is saved: the installer's
//! answerfile takes a hash (`root-password type="hash"`), and nothing later needs
//! the plaintext, so it never reaches the disk.

use std::path::Path;

use serde::{Deserialize, Serialize};
use xitc_common::secret::Secret;

use crate::system::System;

/// What the node becomes (README "Modes"). The command line takes it as it
/// is saved (`--mode`, clap's ValueEnum: the same kebab-case names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The 2014 design: dom0 behind an appliance VM that takes the cloud's
    /// address; Ubuntu boots between dom0 boots (the bounce).
    #[default]
    Appliance,
    /// dom0's own xapi at the cloud's address; no appliance, no Ubuntu boot
    /// after the install.
    Direct,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Appliance => "appliance",
            Mode::Direct => "direct",
        }
    }
}

/// Where dom0 learns the cloud's network on each boot (README "Network
/// sources"); `--network` takes it as it is saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkSource {
    /// START's preflight chooses and saves its choice in place of this one:
    /// the config drive if it describes the node's NIC, else DHCP if this
    /// boot's address came with a DHCP lease, else the bounce (appliance
    /// mode; the direct mode refuses)
    Auto,
    /// The cloud's DHCP.
    Dhcp,
    /// The config drive's `network_data.json`, read on every boot.
    ConfigDrive,
    /// Ubuntu boots between dom0 boots and saves what the cloud gave it (2014).
    #[default]
    Bounce,
}

impl NetworkSource {
    pub fn name(self) -> &'static str {
        match self {
            NetworkSource::Auto => "auto",
            NetworkSource::Dhcp => "dhcp",
            NetworkSource::ConfigDrive => "config-drive",
            NetworkSource::Bounce => "bounce",
        }
    }
}

/// Everything a run needs besides the live system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Configs saved before the direct mode existed are the appliance mode's.
    #[serde(default)]
    pub mode: Mode,
    /// Never `Auto` once START has saved the config.
    #[serde(default)]
    pub network: NetworkSource,
    /// Empty in the direct mode, which has no appliance (as are the other
    /// `appliance_*` settings, unused there).
    pub appliance_url: String,
    pub appliance_label: String,
    pub iso_url: String,
    pub iso_sha256: Option<String>,
    pub appliance_sha256: Option<String>,
    /// Bytes; `None`: computed from the space in use.
    pub ubuntu_size: Option<u64>,
    /// The installer's name for the disk; `None`: derived from the node's
    /// ([`crate::disk::installer_disk_name`]). Configs saved before it was
    /// derived hold the 2014 default, `sda`, which then stays.
    #[serde(default)]
    pub installer_disk: Option<String>,
    pub installer_nic: String,
    /// `$6$…`, for the answerfile.
    pub root_password_hash: String,
    /// VCPUs for the appliance; `None`: as many as the host has CPUs.
    #[serde(default)]
    pub appliance_vcpus: Option<u32>,
    /// The appliance's user that dom0 logs in as (with sudo), as in 2014.
    #[serde(default = "default_appliance_user")]
    pub appliance_user: String,
    /// The stamp touched on the appliance at the end of each dom0 state: fixed
    /// by the first run (`XITC_STAMP_PATH` then, else the default), so boot-time
    /// runs, which have no such variable, touch the same file.
    #[serde(default = "default_stamp_path")]
    pub stamp_path: String,
}

/// The 2014 appliances' user for dom0.
pub const DEFAULT_APPLIANCE_USER: &str = "domzero";

fn default_appliance_user() -> String {
    DEFAULT_APPLIANCE_USER.to_owned()
}

fn default_stamp_path() -> String {
    xitc_common::stamp::DEFAULT_STAMP_PATH.to_owned()
}

/// SHA-512 crypt (`$6$…`) of `password`, with a random salt.
pub fn hash_password(password: &Secret) -> anyhow::Result<String> {
    let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT)
        .map_err(|error| anyhow::anyhow!("SHA-512 crypt parameters: {error:?}"))?;
    sha_crypt::sha512_simple(password.expose(), &params)
        .map_err(|error| anyhow::anyhow!("hashing the root password: {error:?}"))
}

impl Config {
    /// A complete config for unit tests, with loopback URLs.
    #[cfg(test)]
    pub fn example() -> Config {
        Config {
            mode: Mode::Appliance,
            network: NetworkSource::Bounce,
            appliance_url: "http://127.0.0.1:9/a.xva".into(),
            appliance_label: "Devstack".into(),
            iso_url: "http://127.0.0.1:9/x.iso".into(),
            iso_sha256: None,
            appliance_sha256: None,
            ubuntu_size: None,
            installer_disk: None,
            installer_nic: "eth0".into(),
            root_password_hash: "$6$x$y".into(),
            appliance_vcpus: None,
            appliance_user: "domzero".into(),
            stamp_path: "/var/run/xenserver.ready".into(),
        }
    }

    pub fn save(&self, system: &System, file: &Path) -> anyhow::Result<()> {
        system.write_json(file, self, 0o600)
    }

    pub fn load(system: &System, file: &Path) -> anyhow::Result<Option<Config>> {
        let Some(text) = system.read_if_exists(file)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| anyhow::anyhow!("saved config {} is damaged: {error}", file.display()))
    }

    /// For `--status`: every setting, the password only as "set".
    pub fn describe(&self) -> String {
        let or_none =
            |value: &Option<String>| value.clone().unwrap_or_else(|| "(not checked)".into());
        format!(
            "  mode:             {}\n  network:          {}\n  \
             appliance URL:    {}\n  appliance label:  {}\n  ISO URL:          {}\n  \
             ISO SHA-256:      {}\n  appliance SHA-256: {}\n  Ubuntu size:      {}\n  \
             installer disk:   {}\n  installer NIC:    {}\n  appliance VCPUs:  {}\n  \
             appliance user:   {}\n  stamp:            {}\n  root password:    set (SHA-512 crypt hash; \
             the plaintext is not stored)\n",
            self.mode.name(),
            self.network.name(),
            self.appliance_url,
            self.appliance_label,
            self.iso_url,
            or_none(&self.iso_sha256),
            or_none(&self.appliance_sha256),
            self.ubuntu_size.map_or_else(
                || "computed at START".to_owned(),
                |bytes| format!("{bytes} bytes")
            ),
            self.installer_disk
                .as_deref()
                .unwrap_or("derived from the node's disk"),
            self.installer_nic,
            self.appliance_vcpus.map_or_else(
                || "as many as the host has CPUs".to_owned(),
                |n| n.to_string()
            ),
            self.appliance_user,
            self.stamp_path,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn config(hash: String) -> Config {
        Config {
            appliance_sha256: Some("ab".repeat(32)),
            root_password_hash: hash,
            ..Config::example()
        }
    }

    #[test]
    fn the_password_is_saved_only_as_a_crypt_hash_in_a_0600_file() {
        let password = Secret::new("s3cret <&> pass");
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$6$"), "{hash}");
        sha_crypt::sha512_check(password.expose(), &hash).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let file = Path::new("/xitc-convert.config");
        let saved = config(hash);
        saved.save(&system, file).unwrap();
        let text = system.read_to_string(file).unwrap();
        assert!(!text.contains("s3cret"));
        assert_eq!(
            system.metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Config::load(&system, file).unwrap(), Some(saved.clone()));
        assert!(!saved.describe().contains("$6$"));
    }

    #[test]
    fn missing_and_damaged_configs() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        assert_eq!(Config::load(&system, Path::new("/none")).unwrap(), None);
        system.write_atomic("/bad", b"{", 0o600).unwrap();
        assert!(
            Config::load(&system, Path::new("/bad"))
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
    }
}
