//! clouds.yaml and secure.yaml, as the OpenStack clients read them: the first
//! file found of `OS_CLIENT_CONFIG_FILE` (`OS_CLIENT_SECURE_FILE`), `./`,
//! `~/.config/openstack/`, `/etc/openstack/`; secure.yaml deep-merged over
//! clouds.yaml; one cloud's settings flattened with those under `auth:`.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::env::{Env, Settings};
use crate::exit::{self, Classify as _};

pub(super) fn clouds_yaml_candidates(env: &Env, file: &str) -> Vec<PathBuf> {
    let explicit = if file == "clouds.yaml" {
        "OS_CLIENT_CONFIG_FILE"
    } else {
        "OS_CLIENT_SECURE_FILE"
    };
    if let Some(path) = env.get(explicit) {
        return vec![PathBuf::from(path)];
    }
    let mut candidates = vec![env.cwd.join(file)];
    if let Some(home) = env.get("HOME") {
        candidates.push(Path::new(home).join(".config/openstack").join(file));
    }
    candidates.push(Path::new("/etc/openstack").join(file));
    candidates
}

pub(super) fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The clouds.yaml (and secure.yaml) that were read.
pub(super) struct CloudsYaml {
    /// clouds.yaml's path, for messages.
    pub path: PathBuf,
    /// The merged `clouds` mapping.
    pub clouds: Mapping,
    /// Each file as read, unmerged: to tell which one holds a secret.
    files: Vec<(PathBuf, Value)>,
}

/// The settings under a cloud (or its `auth:`) that are secrets.
const SECRET_KEYS: [&str; 4] = [
    "password",
    "api_key",
    "application_credential_secret",
    "token",
];

impl CloudsYaml {
    /// A warning for each file that holds a secret of `cloud` and can be read
    /// by others (ssh refuses such a key; the OpenStack clients stay silent).
    pub fn secret_warnings(&self, cloud: &str) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, document)| holds_a_secret(document, cloud))
            .filter_map(|(path, _)| {
                let what = path.file_name().map_or_else(
                    || "clouds.yaml".to_owned(),
                    |name| name.to_string_lossy().into_owned(),
                );
                crate::files::readable_by_others_warning(path, &what)
            })
            .collect()
    }
}

fn holds_a_secret(document: &Value, cloud: &str) -> bool {
    let Some(Value::Mapping(settings)) =
        document.get("clouds").and_then(|clouds| clouds.get(cloud))
    else {
        return false;
    };
    let auth = match settings.get("auth") {
        Some(Value::Mapping(auth)) => Some(auth),
        _ => None,
    };
    SECRET_KEYS
        .iter()
        .any(|key| settings.contains_key(*key) || auth.is_some_and(|auth| auth.contains_key(*key)))
}

/// The merged clouds.yaml + secure.yaml `clouds` mapping, with the clouds.yaml path.
pub(super) fn read_clouds_yaml(env: &Env) -> anyhow::Result<Option<CloudsYaml>> {
    let Some((path, mut document)) = read_first_yaml(env, "clouds.yaml")? else {
        return Ok(None);
    };
    let mut files = vec![(path.clone(), document.clone())];
    if let Some((secure_path, secure)) = read_first_yaml(env, "secure.yaml")? {
        files.push((secure_path, secure.clone()));
        merge(&mut document, secure);
    }
    let clouds = match document.get("clouds") {
        Some(Value::Mapping(clouds)) => clouds.clone(),
        None | Some(Value::Null) => Mapping::new(),
        Some(_) => {
            return Err(exit::usage(format!(
                "{}: `clouds` is not a mapping of cloud names",
                path.display()
            )));
        }
    };
    Ok(Some(CloudsYaml {
        path,
        clouds,
        files,
    }))
}

fn read_first_yaml(env: &Env, file: &str) -> anyhow::Result<Option<(PathBuf, Value)>> {
    for path in clouds_yaml_candidates(env, file) {
        match std::fs::metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            _ => {}
        }
        let text =
            crate::files::read_bounded_text(&path, "clouds.yaml", crate::files::SMALL_FILE_LIMIT)?;
        let document: Value = serde_yaml_ng::from_str(&text)
            .or_usage(|| format!("{} is not valid YAML", path.display()))?;
        if !matches!(document, Value::Mapping(_) | Value::Null) {
            return Err(exit::usage(format!(
                "{} is not a YAML mapping",
                path.display()
            )));
        }
        return Ok(Some((path, document)));
    }
    Ok(None)
}

/// Deep-merges `overlay` into `base` (mappings merge, anything else replaces).
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

pub(super) fn cloud_names(clouds: &Mapping) -> Vec<String> {
    clouds
        .keys()
        .filter_map(|key| key.as_str().map(str::to_owned))
        .collect()
}

/// One cloud's settings flattened: top-level scalars plus those under `auth:`.
pub(super) fn cloud_settings(clouds: &Mapping, name: &str) -> Option<Settings> {
    let cloud = clouds.get(name)?;
    let mut settings = Settings::new();
    let mut add_scalars = |mapping: &Mapping| {
        for (key, value) in mapping {
            let (Some(key), Some(value)) = (key.as_str(), scalar_text(value)) else {
                continue;
            };
            settings.insert(key.to_owned(), value);
        }
    };
    if let Value::Mapping(top) = cloud {
        add_scalars(top);
        if let Some(Value::Mapping(auth)) = top.get("auth") {
            add_scalars(auth);
        }
    }
    Some(settings)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}
