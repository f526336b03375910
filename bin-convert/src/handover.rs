//! Handing the cloud's settings over to dom0: this boot's network, as
//! `cloud-settings.json` ([`crate::settings`]), and the user's
//! authorized_keys, written where dom0 reads them. SETUP_INSTALLER writes them
//! into `xsinst/` (the installer's post-install script copies them into the
//! new dom0), every UBUNTU boot into dom0's mounted `/root`.

use std::path::Path;

use anyhow::Context as _;

use crate::log::Log;
use crate::network::Network;
use crate::settings::{self, CloudSettings};
use crate::system::System;

/// Writes the settings of `network` into `settings_dir` and Ubuntu's root
/// authorized_keys to `keys_file`. Logged, without secrets.
pub fn hand_over(
    system: &System,
    log: &Log<'_>,
    network: &Network,
    settings_dir: &Path,
    keys_file: &Path,
) -> anyhow::Result<()> {
    let settings = CloudSettings::from_network(network);
    log.line(&format!(
        "network settings for the appliance: {}",
        settings.describe()
    ));
    system.write_json(settings_dir.join(settings::FILE_NAME), &settings, 0o644)?;
    let keys = system
        .read_to_string("/root/.ssh/authorized_keys")
        .context("reading /root/.ssh/authorized_keys (without it nobody could log in to dom0)")?;
    system.write_atomic(keys_file, keys.as_bytes(), 0o600)
}
