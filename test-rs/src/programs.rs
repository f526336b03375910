//! The programs test-rs runs: the sibling xitc tools, found next to test-rs
//! first, then in PATH; each run to its end or killed on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use xitc_common::exit;

pub const GET_IP: &str = "xitc-get-ip-address-of-instance";
pub const WAIT_DONE: &str = "xitc-wait-until-done";
pub const CONVERT: &str = "xitc-convert";

/// Set by Ctrl-C; every wait checks it, and cleanup runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C sets [`INTERRUPTED`] from now on. One handler per process; a second
/// Ctrl-C does not stop the cleanup.
pub fn catch_interrupts() {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted (Ctrl-C)");
    }
    Ok(())
}

/// The sibling tool `name`: next to this executable first, then in PATH.
pub fn find_sibling(name: &str) -> anyhow::Result<PathBuf> {
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    if let Some(dir) = &own_dir {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    which::which(name).map_err(|_| {
        exit::usage(format!(
            "{name} not found: looked next to test-rs ({}) and in PATH ({}); \
             install the xitc tools together (make install)",
            own_dir.map_or_else(|| "unknown".to_owned(), |dir| dir.display().to_string()),
            std::env::var("PATH").unwrap_or_default()
        ))
    })
}

/// Where the xitc-convert Debian package (scripts/build-deb) puts the static
/// binary: a payload to copy to nodes, not a command of this machine.
pub const PACKAGED_CONVERT: &str = "/usr/lib/xitc/xitc-convert";

/// The xitc-convert to upload: a sibling ([`find_sibling`]), else the
/// package's payload.
pub fn find_convert() -> anyhow::Result<PathBuf> {
    find_sibling(CONVERT).or_else(|error| {
        let packaged = Path::new(PACKAGED_CONVERT);
        if packaged.is_file() {
            Ok(packaged.to_path_buf())
        } else {
            Err(exit::usage(format!(
                "{error:#}; nor at {PACKAGED_CONVERT} (the xitc-convert package)"
            )))
        }
    })
}

/// What to do with each line of a program's stderr as it comes.
pub type StderrLine = Box<dyn FnMut(&str) + Send>;

/// Runs a sibling tool to its end, or kills it on Ctrl-C (which in a terminal
/// reaches it too, but not when only test-rs is signalled, as by a CI runner).
/// Returns its status and, when piped, its stdout.
pub fn run_interruptibly(
    command: &mut Command,
    program: &Path,
) -> anyhow::Result<(std::process::ExitStatus, String)> {
    run_watching_stderr(command, program, None)
}

/// [`run_interruptibly`], with the program's stderr passed on to test-rs's
/// as it comes, each line also handed to `each_line` when it arrives.
pub fn run_watching_stderr(
    command: &mut Command,
    program: &Path,
    each_line: Option<StderrLine>,
) -> anyhow::Result<(std::process::ExitStatus, String)> {
    use std::io::{BufRead as _, Read as _, Write as _};
    check_interrupted()?;
    if each_line.is_some() {
        command.stderr(Stdio::piped());
    }
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    let watcher = match (each_line, child.stderr.take()) {
        (Some(mut each_line), Some(pipe)) => Some(std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(pipe);
            let mut line = Vec::new();
            while reader
                .read_until(b'\n', &mut line)
                .is_ok_and(|read| read > 0)
            {
                let _ = std::io::stderr().write_all(&line);
                each_line(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
                line.clear();
            }
        })),
        _ => None,
    };
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            check_interrupted()?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)
            .with_context(|| format!("reading the output of {}", program.display()))?;
    }
    Ok((status, stdout))
}
