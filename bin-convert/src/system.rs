//! The sandbox layer (the bottom layer, ARCHITECTURE.md): every file xitc-convert reads or writes and
//! every program it runs goes through [`System`], so `--root DIR` confines all of
//! it to DIR and tests can put stand-ins for `reboot`, `update-grub`, … first in
//! PATH. No step touches `std::fs` or `std::process::Command` directly.
//!
//! Paths are written as the node sees them (`/etc/default/grub`); [`System::path`]
//! maps them under the root. Programs are looked up in PATH at run time, never by
//! absolute path, and get `XITC_ROOT` in their environment when sandboxed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

/// The environment variable a sandboxed run passes to the programs it starts.
pub const ROOT_ENV: &str = "XITC_ROOT";

/// How many of a failed program's last stderr lines its error shows.
const STDERR_LINES_SHOWN: usize = 3;

/// The node's file system and programs, possibly confined under a root.
#[derive(Debug, Clone)]
pub struct System {
    root: PathBuf,
    /// PATH for programs; `None`: this process's.
    search_path: Option<std::ffi::OsString>,
}

impl System {
    /// The real system (`root` is `None`) or a sandbox under `root`.
    pub fn new(root: Option<PathBuf>) -> Self {
        System {
            root: root.unwrap_or_else(|| PathBuf::from("/")),
            search_path: None,
        }
    }

    /// Programs are looked up in `search_path` instead of this process's PATH
    /// (tests put their stand-ins first without changing the whole process).
    #[must_use]
    pub fn with_search_path(mut self, search_path: impl Into<std::ffi::OsString>) -> Self {
        self.search_path = Some(search_path.into());
        self
    }

    pub fn is_sandboxed(&self) -> bool {
        self.root != Path::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the node path `path` (absolute) is on this machine.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        let relative = path.strip_prefix("/").unwrap_or(path);
        self.root.join(relative)
    }

    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.path(path).exists()
    }

    pub fn read_to_string(&self, path: impl AsRef<Path>) -> io::Result<String> {
        fs::read_to_string(self.path(path))
    }

    /// The last `limit` bytes of a file (all of it when shorter), or `None`
    /// when it does not exist.
    pub fn read_tail(&self, path: impl AsRef<Path>, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
        use std::io::{Read as _, Seek as _};
        let path = self.path(path);
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", path.display()));
            }
        };
        let length = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let mut tail = Vec::new();
        file.seek(io::SeekFrom::Start(length.saturating_sub(limit)))
            .and_then(|_| file.take(limit).read_to_end(&mut tail))
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(tail))
    }

    /// The contents, or `None` when the file does not exist.
    pub fn read_if_exists(&self, path: impl AsRef<Path>) -> anyhow::Result<Option<String>> {
        let path = path.as_ref();
        match self.read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// `path` with every symbolic link resolved, as a path on this machine.
    pub fn canonicalize(&self, path: impl AsRef<Path>) -> io::Result<PathBuf> {
        fs::canonicalize(self.path(path))
    }

    pub fn metadata(&self, path: impl AsRef<Path>) -> io::Result<fs::Metadata> {
        fs::metadata(self.path(path))
    }

    pub fn create_dir_all(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        fs::create_dir_all(self.path(path)).with_context(|| format!("creating {}", path.display()))
    }

    /// Writes `contents` to `path` so that a crash leaves either the old file or
    /// the new one, never a mix: a temp file beside it, fsync, rename, fsync of
    /// the directory. The file gets `mode` from its creation on (no window in
    /// which a secret is world-readable).
    pub fn write_atomic(
        &self,
        path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
    ) -> anyhow::Result<()> {
        self.write_atomic_with(path, mode, |file| file.write_all(contents))
    }

    /// `value` as pretty JSON and a newline, by [`System::write_atomic`]: the
    /// files the two halves hand each other and the saved config.
    pub fn write_json(
        &self,
        path: impl AsRef<Path>,
        value: &impl serde::Serialize,
        mode: u32,
    ) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(value)?;
        json.push(b'\n');
        self.write_atomic(path, &json, mode)
    }

    /// [`System::write_atomic`] for contents that `write_contents` streams into
    /// the file (large files in bounded memory). An error from it leaves the old
    /// file in place.
    pub fn write_atomic_with(
        &self,
        path: impl AsRef<Path>,
        mode: u32,
        write_contents: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        let path = path.as_ref();
        let target = self.path(path);
        let dir = target
            .parent()
            .with_context(|| format!("{} has no parent directory", path.display()))?;
        let temp = dir.join(format!(
            ".{}.tmp-{}",
            target
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("file"),
            std::process::id()
        ));
        let result = (|| -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&temp)?;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            write_contents(&mut file)?;
            file.sync_all()?;
            fs::rename(&temp, &target)?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.with_context(|| format!("writing {}", path.display()))
    }

    /// Removes a file; one that is not there is fine.
    pub fn remove_file(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        match fs::remove_file(self.path(path)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(error).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Removes a file, or a directory with all in it; one that is not there
    /// is fine. A symbolic link is removed, never followed.
    pub fn remove_all(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let real = self.path(path);
        let result = match fs::symlink_metadata(&real) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&real),
            Ok(_) => fs::remove_file(&real),
            Err(error) => Err(error),
        };
        match result {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(error).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The files in a directory: name and length.
    pub fn list_files(
        &self,
        dir: impl AsRef<Path>,
    ) -> anyhow::Result<Vec<(std::ffi::OsString, u64)>> {
        let dir = dir.as_ref();
        let mut files = Vec::new();
        for entry in
            fs::read_dir(self.path(dir)).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() {
                files.push((entry.file_name(), meta.len()));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Copies a file (streamed, atomically, keeping its permission bits).
    pub fn copy_file(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> anyhow::Result<()> {
        let from = from.as_ref();
        let mut input =
            File::open(self.path(from)).with_context(|| format!("reading {}", from.display()))?;
        let mode = input.metadata()?.permissions().mode() & 0o7777;
        self.write_atomic_with(to, mode, |file| io::copy(&mut input, file).map(drop))
    }

    /// Makes `link` a symbolic link to `target` (replacing what is there).
    pub fn symlink(&self, target: impl AsRef<Path>, link: impl AsRef<Path>) -> anyhow::Result<()> {
        let link_path = self.path(&link);
        let _ = fs::remove_file(&link_path);
        std::os::unix::fs::symlink(target.as_ref(), &link_path)
            .with_context(|| format!("linking {}", link.as_ref().display()))
    }

    /// Makes `link` a hard link to `original` (replacing what is there): the
    /// same bytes under a second name without a copy.
    pub fn hard_link(
        &self,
        original: impl AsRef<Path>,
        link: impl AsRef<Path>,
    ) -> anyhow::Result<()> {
        let link_path = self.path(&link);
        let _ = fs::remove_file(&link_path);
        fs::hard_link(self.path(&original), &link_path)
            .with_context(|| format!("linking {}", link.as_ref().display()))
    }

    /// Appends a line (for the log).
    pub fn append(&self, path: impl AsRef<Path>, line: &str) -> anyhow::Result<()> {
        let path = path.as_ref();
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.path(path))
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .with_context(|| format!("appending to {}", path.display()))
    }

    /// Writes `bytes` to the device (or file) at `path` if it is there, never
    /// creating it, never making it the controlling terminal, and never
    /// waiting long: a console whose buffer stays full (a stuck flow
    /// control) gets what fits within about a second.
    pub fn write_to_device(&self, path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut device = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(self.path(path))?;
        let mut rest = bytes;
        let mut waits = 0;
        while !rest.is_empty() {
            match device.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => rest = &rest[written..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && waits < 20 => {
                    waits += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Opens (creating) a file to lock.
    pub fn open_for_lock(&self, path: impl AsRef<Path>) -> anyhow::Result<File> {
        let path = path.as_ref();
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.path(path))
            .with_context(|| format!("opening {}", path.display()))
    }

    /// Where `program` is in PATH, if anywhere.
    pub fn find_program(&self, program: &str) -> Option<PathBuf> {
        match &self.search_path {
            Some(path) => which::which_in(program, Some(path), "/").ok(),
            None => which::which(program).ok(),
        }
    }

    /// Runs `program` with `args` (found in PATH, `XITC_ROOT` set when
    /// sandboxed); its stdout when it succeeds, else an error with its status and
    /// the end of its stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        self.run_with_input(program, args, "")
    }

    /// [`System::run`] with `input` on the program's stdin.
    pub fn run_with_input(
        &self,
        program: &str,
        args: &[&str],
        input: &str,
    ) -> anyhow::Result<String> {
        let found = self
            .find_program(program)
            .unwrap_or_else(|| PathBuf::from(program));
        let mut command = Command::new(found);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.search_path {
            command.env("PATH", path);
        }
        if self.is_sandboxed() {
            command.env(ROOT_ENV, &self.root);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("running {program} (is it installed and in PATH?)"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(input.as_bytes());
        }
        let output = child
            .wait_with_output()
            .with_context(|| format!("running {program}"))?;
        if !output.status.success() {
            // Its last lines, not only the last: xe writes the error first
            // and its parameters after it ("HVM is required for this
            // operation" then "vm: UUID").
            let stderr = String::from_utf8_lossy(&output.stderr);
            let mut said: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .rev()
                .take(STDERR_LINES_SHOWN)
                .collect();
            said.reverse();
            let last = said.join("; ");
            let shown: Vec<String> = args
                .iter()
                .map(|arg| xitc_common::shell::shell_quote(arg))
                .collect();
            anyhow::bail!(
                "{program} {} failed ({}): {last}",
                shown.join(" "),
                output.status
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_paths_map_under_the_root() {
        let sandbox = System::new(Some(PathBuf::from("/tmp/sb")));
        assert_eq!(
            sandbox.path("/etc/default/grub"),
            Path::new("/tmp/sb/etc/default/grub")
        );
        assert!(sandbox.is_sandboxed());
        let real = System::new(None);
        assert_eq!(
            real.path("/etc/default/grub"),
            Path::new("/etc/default/grub")
        );
        assert!(!real.is_sandboxed());
    }

    #[test]
    fn atomic_writes_replace_whole_files_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        system.write_atomic("/config", b"one", 0o600).unwrap();
        system.write_atomic("/config", b"two", 0o600).unwrap();
        assert_eq!(system.read_to_string("/config").unwrap(), "two");
        let mode = system.metadata("/config").unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
        assert!(system.write_atomic("/missing-dir/x", b"", 0o600).is_err());
    }

    #[test]
    fn programs_get_the_root_and_failures_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let out = system
            .run("sh", &["-c", "printf %s \"$XITC_ROOT\""])
            .unwrap();
        assert_eq!(out, dir.path().to_str().unwrap());
        let error = system
            .run("sh", &["-c", "echo bad >&2; exit 3"])
            .unwrap_err();
        assert!(
            error.to_string().contains("exit status: 3): bad"),
            "{error}"
        );
    }
}
