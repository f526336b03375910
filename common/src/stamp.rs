//! The stamp file: its existence on the node means "conversion done, the appliance
//! answers". `xitc-convert` touches it, `xitc-wait-until-done` and `test-rs` look
//! for it, `xitc-print-stamp-path` prints it.
//!
//! This module holds the only copy of the path in the code base. The 2014 scripts
//! hard-coded it in three places; `XITC_STAMP_PATH` overrides it for every tool at
//! once (tests, or a node whose /var/run is not writable).
//!
//! An override must be a non-empty, absolute, UTF-8 path without control
//! characters: it is used on the node (where a relative path would depend on the
//! remote working directory), quoted into a remote shell command, and printed as one
//! line for `$(xitc-print-stamp-path)`. Anything else is a usage error (exit 2)
//! rather than a stamp nobody will ever find.

use std::ffi::OsString;

use crate::exit;

/// Where the stamp lives unless `XITC_STAMP_PATH` says otherwise (as in 2014).
pub const DEFAULT_STAMP_PATH: &str = "/var/run/xenserver.ready";

/// The environment variable that overrides [`DEFAULT_STAMP_PATH`].
pub const STAMP_PATH_ENV: &str = "XITC_STAMP_PATH";

/// The stamp path for this process: `XITC_STAMP_PATH` when set, else the default.
pub fn stamp_path() -> anyhow::Result<String> {
    stamp_path_from(std::env::var_os(STAMP_PATH_ENV))
}

/// The stamp path given the value of `XITC_STAMP_PATH` (`None` when unset).
pub fn stamp_path_from(override_value: Option<OsString>) -> anyhow::Result<String> {
    let Some(value) = override_value else {
        return Ok(DEFAULT_STAMP_PATH.to_owned());
    };
    let value = value.into_string().map_err(|raw| {
        exit::usage(format!(
            "{STAMP_PATH_ENV} is not valid UTF-8: {}",
            raw.to_string_lossy()
        ))
    })?;
    if value.is_empty() {
        return Err(exit::usage(format!(
            "{STAMP_PATH_ENV} is set but empty; unset it to use {DEFAULT_STAMP_PATH}"
        )));
    }
    if !value.starts_with('/') {
        return Err(exit::usage(format!(
            "{STAMP_PATH_ENV} must be an absolute path, got {value:?}"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(exit::usage(format!(
            "{STAMP_PATH_ENV} must not contain control characters, got {value:?}"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Kind, kind_of};

    fn usage_message(value: &str) -> String {
        let error = stamp_path_from(Some(value.into())).unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        error.to_string()
    }

    #[test]
    fn unset_means_the_2014_path() {
        assert_eq!(stamp_path_from(None).unwrap(), "/var/run/xenserver.ready");
    }

    #[test]
    fn an_absolute_override_is_used_as_is() {
        let path = "/tmp/with space/'quoted'.ready";
        assert_eq!(stamp_path_from(Some(path.into())).unwrap(), path);
    }

    #[test]
    fn bad_overrides_are_usage_errors() {
        assert!(usage_message("").contains("empty"));
        assert!(usage_message("relative/stamp").contains("absolute"));
        assert!(usage_message("/tmp/a\nb").contains("control characters"));
    }

    #[test]
    fn non_utf8_override_is_a_usage_error() {
        use std::os::unix::ffi::OsStringExt;
        let value = OsString::from_vec(b"/tmp/\xff".to_vec());
        let error = stamp_path_from(Some(value)).unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
    }
}
