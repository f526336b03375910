//! What the cloud code reads before it decides anything: a snapshot of the
//! environment (so every rule is tested without touching the process's), and
//! one cloud's settings as they were written, not yet checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A snapshot of the environment variables the cloud code reads.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    pub(super) cwd: PathBuf,
}

impl Env {
    /// The process environment (`OS_*` and `HOME`) and working directory.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(key, _)| key.starts_with("OS_") || key == "HOME")
            .collect();
        Env {
            vars,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// A synthetic environment, for tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, cwd: &Path) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            cwd: cwd.to_path_buf(),
        }
    }

    /// A variable's value; set-but-empty counts as unset, as in the OpenStack clients.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The first of `keys` that is set.
    pub(super) fn first(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|key| self.get(key))
    }
}

/// The settings of one cloud, before validation: flat `key → value` with the
/// clouds.yaml key names (`auth_url`, `username`, `project_name`, …).
pub(super) type Settings = BTreeMap<String, String>;
