//! The one path from a tool's result to what the user sees: a single stderr line
//! and an exit code (README "Exit status").
//!
//! Tools keep `anyhow` for plumbing and classify only where the class is known:
//! [`usage`] / [`timeout`] build classified errors, [`Classify`] turns any error into
//! one. The outermost classified error in the cause chain decides the exit code, so
//! adding `.context(…)` on the way up never changes it; an unclassified error is a
//! plain failure (1). [`report`] is called from every `main` and is the only place
//! that decides the process's exit status: no `process::exit` anywhere, so
//! destructors (temp dirs, lock files, child processes) always run.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// What kind of failure ended a run; each kind is one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation failed: API, SSH or I/O error, server in ERROR. Exit 1.
    Failed,
    /// Bad argument, unreadable key, missing credentials. Exit 2.
    Usage,
    /// A `--timeout` ran out. Exit 124, as timeout(1) does.
    Timeout,
}

impl Kind {
    /// The process exit code for this kind.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Timeout => 124,
        }
    }
}

/// The exit-code table every tool shows at the end of `--help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0    done
  1    the operation failed (API, SSH or I/O error, server in ERROR)
  2    usage or configuration error (bad argument, unreadable key, missing credentials)
  124  a --timeout ran out";

/// An error that knows its [`Kind`]. Displays as its message; the error it wraps, if
/// any, is its `source()`, so the cause chain stays intact.
#[derive(Debug)]
pub struct Classified {
    kind: Kind,
    message: String,
    source: Option<anyhow::Error>,
}

impl Classified {
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Classified {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

/// A new error of `kind` with `message` and no cause.
pub fn error(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        kind,
        message: message.into(),
        source: None,
    })
}

/// A usage or configuration error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    error(Kind::Usage, message)
}

/// A timeout (exit 124).
pub fn timeout(message: impl Into<String>) -> anyhow::Error {
    error(Kind::Timeout, message)
}

/// Classifies the error of a `Result`, adding a message in front of it, like
/// `anyhow::Context` does.
pub trait Classify<T> {
    /// Marks the error as `kind`, with `message()` as its context.
    fn classify<M: Into<String>>(
        self,
        kind: Kind,
        message: impl FnOnce() -> M,
    ) -> anyhow::Result<T>;

    /// Marks the error as a usage/configuration error (exit 2).
    fn or_usage<M: Into<String>>(self, message: impl FnOnce() -> M) -> anyhow::Result<T>
    where
        Self: Sized,
    {
        self.classify(Kind::Usage, message)
    }
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn classify<M: Into<String>>(
        self,
        kind: Kind,
        message: impl FnOnce() -> M,
    ) -> anyhow::Result<T> {
        self.map_err(|source| {
            anyhow::Error::new(Classified {
                kind,
                message: message().into(),
                source: Some(source.into()),
            })
        })
    }
}

/// The kind of an error: that of the outermost [`Classified`] in its chain, else
/// [`Kind::Failed`].
pub fn kind_of(error: &anyhow::Error) -> Kind {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Classified>())
        .map_or(Kind::Failed, Classified::kind)
}

/// Turns a tool's result into its exit code, printing `TOOL: error: …` for a failure.
///
/// Special cases: a clap error is `--help`/`--version` (printed, exit 0) or a usage
/// error (one line, exit 2); a broken pipe on stdout means the reader went away
/// (`tool | head -1`), which is not an error (exit 0, nothing printed).
pub fn report(tool: &str, result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    if is_broken_pipe(&error) {
        return ExitCode::SUCCESS;
    }
    let (line, code) = match error.downcast_ref::<clap::Error>() {
        Some(clap_error) if !clap_error.use_stderr() => {
            // --help / --version: clap's own rendering, to stdout. Failing to write it
            // (closed stdout) is the reader's business, not an error.
            let _ = clap_error.print();
            return ExitCode::SUCCESS;
        }
        Some(clap_error) => (clap_summary(clap_error), Kind::Usage.code()),
        None => (format!("{error:#}"), kind_of(&error).code()),
    };
    let _ = writeln!(
        io::stderr().lock(),
        "{tool}: error: {}",
        escape_control(&line)
    );
    ExitCode::from(code)
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_error| io_error.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// clap's error text is several paragraphs (message, tip, usage, "try --help"); the
/// first paragraph, joined into one line, is the message. It can span lines ("the
/// following required arguments were not provided:\n  <NAME>").
fn clap_summary(error: &clap::Error) -> String {
    let rendered = error.to_string();
    let first_paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let joined = first_paragraph
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let message = joined.strip_prefix("error: ").unwrap_or(&joined);
    format!("{message} (see --help)")
}

/// Prints `{tool}: {text}` on stderr as one line (control characters escaped):
/// what a tool says on the way (a retry, a warning) without ending. Failing to
/// write it (stderr closed or a full disk) is no reason to stop the work.
pub fn note(tool: &str, text: &str) {
    let _ = writeln!(io::stderr().lock(), "{tool}: {}", escape_control(text));
}

/// [`note`] of a warning: `{tool}: warning: {text}`.
pub fn warn(tool: &str, text: &str) {
    note(tool, &format!("warning: {text}"));
}

/// Escapes control characters (newlines, escape sequences from a remote API's
/// message, …) so that a message stays one line and cannot drive the terminal.
pub fn escape_control(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn unclassified_errors_are_failures() {
        let error = anyhow::anyhow!("boom").context("doing things");
        assert_eq!(kind_of(&error), Kind::Failed);
        assert_eq!(Kind::Failed.code(), 1);
    }

    #[test]
    fn context_on_top_keeps_the_kind() {
        let error = Err::<(), _>(usage("OS_AUTH_URL is not set"))
            .context("reading credentials")
            .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        assert_eq!(
            format!("{error:#}"),
            "reading credentials: OS_AUTH_URL is not set"
        );
    }

    #[test]
    fn classify_wraps_the_cause_and_keeps_the_chain() {
        let io_error = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        let error = Err::<(), _>(io_error)
            .or_usage(|| "reading key file /k")
            .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        assert_eq!(
            format!("{error:#}"),
            "reading key file /k: No such file or directory"
        );
    }

    #[test]
    fn the_outermost_classification_wins() {
        let inner = timeout("gave up after 5s");
        let error = Err::<(), _>(inner)
            .classify(Kind::Failed, || "outer")
            .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Failed);
        let error = Err::<(), _>(error)
            .classify(Kind::Timeout, || "waiting")
            .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Timeout);
        assert_eq!(Kind::Timeout.code(), 124);
    }

    #[test]
    fn broken_pipe_anywhere_in_the_chain_is_detected() {
        let error = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing to stdout");
        assert!(is_broken_pipe(&error));
        assert!(!is_broken_pipe(&anyhow::anyhow!("broken pipe")));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_control("bad\nthing\t\u{1b}[31mred"),
            "bad\\nthing\\t\\u{1b}[31mred"
        );
        assert_eq!(
            escape_control("plain «ünïcode» text"),
            "plain «ünïcode» text"
        );
    }

    #[test]
    fn clap_errors_become_one_line() {
        use clap::{Arg, Command};
        let command = Command::new("tool").arg(Arg::new("NAME").required(true));
        let error = command.clone().try_get_matches_from(["tool"]).unwrap_err();
        let summary = clap_summary(&error);
        assert!(!summary.contains('\n'), "{summary}");
        assert!(summary.contains("<NAME>"), "{summary}");
        let error = command
            .try_get_matches_from(["tool", "x", "--bogus"])
            .unwrap_err();
        let summary = clap_summary(&error);
        assert!(
            summary.starts_with("unexpected argument '--bogus'"),
            "{summary}"
        );
    }
}
