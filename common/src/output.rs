//! The one path for what tools print on stdout. A write never panics (as
//! `print!` does on a closed or full stdout) and never ends the tool's work:
//! a tool's output reports its work, and the work (a wait, a test that made
//! cloud resources and must clean them up) goes on when nobody reads it. So
//! [`Output`] stops writing at the first failure and remembers it; the tool
//! asks [`Output::finish`] at its end. A reader that went away (`tool | head
//! -1`, EPIPE) is then no error, as for any Unix tool: the exit status is the
//! work's own. Any other write error (a full disk, `> /dev/full`) is exit 1
//! with its message, since the output the user asked for was lost.

use std::io::{self, Write};

use anyhow::Context as _;

/// A writer for a tool's stdout (or a buffer in tests) that records, rather
/// than returns, its first write error.
#[derive(Debug)]
pub struct Output<W: Write> {
    inner: W,
    failed: Option<io::Error>,
}

impl<W: Write> Output<W> {
    pub fn new(inner: W) -> Self {
        Output {
            inner,
            failed: None,
        }
    }

    /// Writes `text` and flushes (each line is seen as it happens, also in
    /// a pipe); after a failed write, nothing more is written.
    pub fn write(&mut self, text: &str) {
        if self.failed.is_some() {
            return;
        }
        if let Err(error) = self
            .inner
            .write_all(text.as_bytes())
            .and_then(|()| self.inner.flush())
        {
            self.failed = Some(error);
        }
    }

    /// [`Output::write`] of `line` and a newline.
    pub fn line(&mut self, line: &str) {
        self.write(&format!("{line}\n"));
    }

    /// Whether the reader went away (EPIPE); for the tests, which tell the
    /// two ways a write can fail apart.
    #[cfg(test)]
    fn reader_gone(&self) -> bool {
        self.failed
            .as_ref()
            .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The end of the tool's output: `Ok` when everything was written or the
    /// reader went away; the first other write error otherwise.
    pub fn finish(self) -> anyhow::Result<()> {
        match self.failed {
            Some(error) if error.kind() != io::ErrorKind::BrokenPipe => {
                Err(error).context("writing to stdout")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails every write with `kind` after `room` bytes.
    struct Failing {
        room: usize,
        kind: io::ErrorKind,
        written: Vec<u8>,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from(self.kind));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_went_away_stops_the_output_and_is_no_error() {
        let mut out = Output::new(Failing {
            room: 4,
            kind: io::ErrorKind::BrokenPipe,
            written: Vec::new(),
        });
        out.line("one");
        assert!(!out.reader_gone());
        out.line("two");
        assert!(out.reader_gone());
        out.line("three");
        assert_eq!(out.inner.written, b"one\n");
        out.finish().unwrap();
    }

    #[test]
    fn a_full_disk_is_an_error_at_the_end_and_stops_the_output() {
        let mut out = Output::new(Failing {
            room: 0,
            kind: io::ErrorKind::StorageFull,
            written: Vec::new(),
        });
        out.line("lost");
        out.line("also lost");
        assert!(!out.reader_gone());
        let error = out.finish().unwrap_err();
        assert_eq!(crate::exit::kind_of(&error), crate::exit::Kind::Failed);
        assert!(
            format!("{error:#}").starts_with("writing to stdout: "),
            "{error:#}"
        );
    }

    #[test]
    fn everything_written_is_ok() {
        let mut out = Output::new(Vec::new());
        out.write("a");
        out.line("b");
        assert_eq!(out.inner, b"ab\n");
        out.finish().unwrap();
    }
}
