//! ISO 9660 images for tests, made by the real xorriso (Debian `xorriso`),
//! one way for every test crate.
//!
//! Why a retry: xorriso 1.5.4 (Debian 12) once died of SIGSEGV in CI while
//! writing a 360 KiB tree's image ("xorriso : ABORT : Trying to shut down
//! drive and library"), a call that had succeeded on every run before and
//! did not crash in 300 runs here. The crash is in the tool that makes the
//! test's input, not in the code under test, so a run *killed by a signal*
//! is made again (twice at most, each time said on stderr). A run that
//! *exits* non-zero is a wrong call and fails the test at once, as does a
//! third crash.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

/// Crashed runs made again before the test fails.
const RETRIES_AFTER_A_CRASH: u32 = 2;

/// `xorriso -as mkisofs -quiet OPTIONS… -o IMAGE TREE`: `tree` as an ISO
/// image at `image`, with mkisofs's `options` (`-R`, `-V LABEL`…).
pub fn mkisofs(options: &[&str], image: &Path, tree: &Path) {
    mkisofs_by(Command::new("xorriso"), options, image, tree);
}

/// [`mkisofs`] by `command`: the real xorriso, or a test's crashing stand-in.
fn mkisofs_by(mut command: Command, options: &[&str], image: &Path, tree: &Path) {
    command
        .args(["-as", "mkisofs", "-quiet"])
        .args(options)
        .arg("-o")
        .arg(image)
        .arg(tree);
    let mut crashes = 0;
    loop {
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("xorriso: {error} ({})", crate::INSTALL_HINT));
        if output.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.signal() {
            Some(signal) if crashes < RETRIES_AFTER_A_CRASH => {
                crashes += 1;
                eprintln!(
                    "xorriso killed by signal {signal} making {}; making it again: {}",
                    image.display(),
                    stderr.trim()
                );
            }
            _ => panic!(
                "xorriso {:?}: {}: {stderr}",
                command.get_args().collect::<Vec<&OsStr>>(),
                output.status
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in xorriso in `dir` running `body`; each run adds a line to
    /// `dir/runs`. Run by `sh`, never executed itself: a script written
    /// while another test thread forks can be "Text file busy" to exec.
    fn stand_in(dir: &Path, body: &str) -> Command {
        let path = dir.join("xorriso");
        std::fs::write(
            &path,
            format!("echo run >> '{}/runs'\n{body}\n", dir.display()),
        )
        .unwrap();
        let mut command = Command::new("sh");
        command.arg(path);
        command
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs")).map_or(0, |runs| runs.lines().count())
    }

    fn made_by(xorriso: Command, dir: &Path) -> std::thread::Result<()> {
        let (image, tree) = (dir.join("image.iso"), dir.join("tree"));
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mkisofs_by(xorriso, &["-R"], &image, &tree);
        }))
    }

    #[test]
    fn a_crash_is_made_again_and_the_second_run_counts() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("crashed-once");
        let xorriso = stand_in(
            dir.path(),
            &format!(
                "[ -e '{0}' ] || {{ touch '{0}'; kill -SEGV $$; }}",
                marker.display()
            ),
        );
        made_by(xorriso, dir.path()).unwrap();
        assert_eq!(runs(dir.path()), 2);
    }

    #[test]
    fn a_third_crash_fails_the_test() {
        let dir = tempfile::tempdir().unwrap();
        let xorriso = stand_in(dir.path(), "kill -SEGV $$");
        assert!(made_by(xorriso, dir.path()).is_err());
        assert_eq!(runs(dir.path()), 3);
    }

    #[test]
    fn an_exit_status_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let xorriso = stand_in(dir.path(), "echo 'bad option' >&2; exit 5");
        assert!(made_by(xorriso, dir.path()).is_err());
        assert_eq!(runs(dir.path()), 1);
    }

    #[test]
    fn the_real_xorriso_makes_a_readable_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tree")).unwrap();
        std::fs::write(dir.path().join("tree/hello.txt"), "hello").unwrap();
        let image = dir.path().join("image.iso");
        mkisofs(&["-R", "-V", "LABEL"], &image, &dir.path().join("tree"));
        let bytes = std::fs::read(&image).unwrap();
        // The primary volume descriptor at sector 16: type 1, "CD001", the label.
        assert_eq!(&bytes[0x8000..0x8006], b"\x01CD001");
        assert_eq!(&bytes[0x8028..0x802d], b"LABEL");
    }
}
