//! The one bounded file reader. Files named on a command line or in the
//! environment (SSH keys, clouds.yaml, a password file) are small; reading one
//! whole would hang on `/dev/zero` or eat the memory on a huge file, and a
//! directory or a FIFO given by mistake would give a confusing error or none.
//! A file that is not a regular file, or larger than its limit, is a usage
//! error (exit 2) that names it.

use std::io::Read as _;
use std::path::Path;

use crate::exit::{self, Classify as _};

/// The limit for keys, passwords and config files: far above any real one.
pub const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// The contents of `path`, `what` naming it in errors ("key file", "--password-file").
pub fn read_bounded(path: &Path, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let shown = exit::escape_control(&path.display().to_string());
    let file = std::fs::File::open(path).or_usage(|| format!("cannot read {what} {shown}"))?;
    let metadata = file
        .metadata()
        .or_usage(|| format!("cannot read {what} {shown}"))?;
    if !metadata.is_file() {
        return Err(exit::usage(format!("{what} {shown} is not a regular file")));
    }
    let mut contents = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut contents)
        .or_usage(|| format!("cannot read {what} {shown}"))?;
    if contents.len() as u64 > limit {
        return Err(exit::usage(format!(
            "{what} {shown} is larger than {limit} bytes; is it the right file?"
        )));
    }
    Ok(contents)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_text(path: &Path, what: &str, limit: u64) -> anyhow::Result<String> {
    let shown = exit::escape_control(&path.display().to_string());
    String::from_utf8(read_bounded(path, what, limit)?)
        .map_err(|_| exit::usage(format!("{what} {shown} is not UTF-8 text")))
}

/// The permission bits of `path` when its group or others may read it (a
/// private key or a file with passwords should be its owner's alone: OpenSSH's
/// ssh refuses such a key outright); `None` otherwise, or when it cannot say.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

/// The warning every tool gives (after its name and "warning: ") when a file
/// holding a secret can be read by others, `what` naming it ("key file",
/// "clouds.yaml"); `None` when the file is private. A warning, not an error:
/// the user may mean it (a shared CI box), and the tools still work.
pub fn readable_by_others_warning(path: &Path, what: &str) -> Option<String> {
    let mode = readable_by_others(path)?;
    Some(format!(
        "{what} {} can be read by others (mode {mode:04o}): chmod 600 it",
        exit::escape_control(&path.display().to_string())
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::exit::{Kind, kind_of};

    fn refused(path: &Path, limit: u64) -> String {
        let error = read_bounded(path, "key file", limit).unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage, "{error:#}");
        format!("{error:#}")
    }

    #[test]
    fn small_regular_files_are_read_and_everything_else_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_bounded(&file, "key file", 10).unwrap(), b"0123456789");
        assert!(refused(&file, 9).contains("is larger than 9 bytes"));
        assert!(refused(dir.path(), 10).contains("is not a regular file"));
        assert!(refused(Path::new("/dev/zero"), 10).contains("/dev/zero is not a regular file"));
        assert!(refused(&dir.path().join("missing"), 10).starts_with("cannot read key file "));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(readable_by_others(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(readable_by_others(&file), Some(0o640));
        assert_eq!(
            readable_by_others_warning(&file, "key file"),
            Some(format!(
                "key file {} can be read by others (mode 0640): chmod 600 it",
                file.display()
            ))
        );
        std::fs::write(&file, b"\xff\xfe").unwrap();
        let error = read_bounded_text(&file, "key file", 10).unwrap_err();
        assert!(format!("{error:#}").contains("is not UTF-8 text"));
    }
}
