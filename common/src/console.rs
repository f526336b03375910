//! Reading a node's console log as the cloud hands it out (Nova's
//! `os-getConsoleOutput`): each answer is the log's tail, so lines already
//! seen come back poll after poll, the tail scrolls past lines, and a reboot
//! may start the log afresh. [`Cursor`] turns the successive tails into the
//! lines not seen before; [`Line::of`] says what a new line means: a phase of
//! the conversion, a milestone of the XenServer installer, or a failure that
//! ends the wait at once.
//!
//! Console text is untrusted (anything on the node can write there): it is
//! read lossily as UTF-8 and every line shown is escaped.

use std::collections::VecDeque;

use crate::exit::escape_control;
use crate::phase::{Event, Phase};

/// How many of the last lines seen a [`Cursor`] keeps to recognise them in
/// the next tail: more than one tail holds (the watch asks for
/// [`TAIL_LINES`]); a tail that reaches back further (a cloud that ignores
/// the length) is matched by its lines that are remembered.
const REMEMBERED: usize = 4 * TAIL_LINES;

/// The tail the watch asks for (`os-getConsoleOutput`'s `length`, in lines;
/// Nova's libvirt driver gives at most its last 100 KiB in any case).
pub const TAIL_LINES: usize = 500;

/// The lines of successive console tails not seen before.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    seen: VecDeque<String>,
}

impl Cursor {
    /// The complete lines of `tail` after what was seen before, if `tail`
    /// goes on from it: it shares its first lines with the last ones seen
    /// (or nothing was seen yet, or it holds no complete line). A tail that
    /// does not (the log started afresh, or more was written between two
    /// polls than the tail holds) would leave a gap: `None`, and nothing is
    /// taken from it; the watch then asks for the whole log.
    pub fn new_lines_if_continued(&mut self, tail: &[u8]) -> Option<Vec<String>> {
        let lines = complete_lines(tail);
        let old = if lines.is_empty() || self.seen.is_empty() {
            0
        } else {
            self.old_lines(&lines)?
        };
        Some(self.take_new(lines, old))
    }

    /// The complete lines of `tail` that come after what was seen before.
    /// A last line without its newline is left for the next tail, where it
    /// will be whole. A tail that shares no line with what was seen (the log
    /// started afresh at a reboot, or scrolled past it all between two
    /// polls) is new from its first line.
    pub fn new_lines(&mut self, tail: &[u8]) -> Vec<String> {
        let lines = complete_lines(tail);
        let old = self.old_lines(&lines).unwrap_or(0);
        self.take_new(lines, old)
    }

    /// `lines` after the first `old`, remembered as seen.
    fn take_new(&mut self, mut lines: Vec<String>, old: usize) -> Vec<String> {
        let new: Vec<String> = lines.split_off(old.min(lines.len()));
        self.seen.extend(new.iter().cloned());
        while self.seen.len() > REMEMBERED {
            self.seen.pop_front();
        }
        new
    }

    /// How many lines at the start of `lines` were seen before, if they go
    /// on from what was seen. A tail cut by size (Nova's libvirt driver
    /// keeps the last 100 KiB) starts with a piece of a line: the run may
    /// start after it, and the piece is old too.
    fn old_lines(&self, lines: &[String]) -> Option<usize> {
        [0, 1].into_iter().find_map(|skip| {
            let rest = lines.get(skip..)?;
            self.overlap(rest).map(|count| skip + count)
        })
    }

    /// How many lines at the start of `lines` are old: the most such that
    /// they end with the last lines seen (as many of those as they are, or
    /// all that are remembered, when the tail reaches back further), if any.
    fn overlap(&self, lines: &[String]) -> Option<usize> {
        (1..=lines.len()).rev().find(|&end| {
            let run = end.min(self.seen.len());
            run > 0
                && self
                    .seen
                    .iter()
                    .skip(self.seen.len() - run)
                    .eq(lines[end - run..end].iter())
        })
    }

    /// The last `count` lines seen, oldest first, escaped (for a timeout's
    /// message).
    pub fn last_lines(&self, count: usize) -> Vec<String> {
        self.seen
            .iter()
            .skip(self.seen.len().saturating_sub(count))
            .map(|line| escape_control(line))
            .collect()
    }
}

/// The lines of `tail` that end in a newline (a carriage return before it
/// dropped): the piece after the last newline is a line still being written.
fn complete_lines(tail: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(tail);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|line| line.trim_end_matches('\r').to_owned())
        .collect();
    lines.pop();
    lines
}

/// What a console line means to someone waiting for the conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A phase line of xitc-convert or the shrink (not a failure).
    Phase(Phase),
    /// A milestone the XenServer installer logs (README "The installer on
    /// the serial console" names each with its source).
    Installer(String),
    /// The conversion failed: the wait ends now. Says what it is.
    Failure(String),
    /// Anything else.
    Other,
}

/// What host-installer logs when it starts and ends an install
/// (`install.py`, `logger.log`): shown as progress.
const INSTALLER_MILESTONES: [&str; 3] = [
    "Starting installation/upgrade/restore",
    "Starting actual installation",
    "The installation completed successfully.",
];

/// Lines that end the wait: (what the line holds, what it means).
const FAILURES: [(&str, &str); 6] = [
    // host-installer's install.py, logged when an install raises.
    ("INSTALL FAILED.", "the XenServer installer failed"),
    ("Kernel panic - not syncing", "a kernel panicked"),
    // Xen's panic(), xen/drivers/char/console.c.
    ("Panic on CPU", "Xen panicked"),
    // systemd's emergency.service (systemd 240 and later, and before).
    (
        "You are in emergency mode",
        "a boot stopped in emergency mode",
    ),
    (
        "Welcome to emergency mode",
        "a boot stopped in emergency mode",
    ),
    (
        "Give root password for maintenance",
        "a boot stopped in emergency mode",
    ),
];

impl Line {
    /// What `line` means.
    pub fn of(line: &str) -> Self {
        if let Some(phase) = Phase::find(line) {
            return if phase.event == Event::Failed {
                Line::Failure(format!("{} failed", phase.name()))
            } else {
                Line::Phase(phase)
            };
        }
        if let Some((_, what)) = FAILURES.iter().find(|(text, _)| line.contains(text)) {
            return Line::Failure((*what).to_owned());
        }
        if INSTALLER_MILESTONES
            .iter()
            .any(|milestone| line.contains(milestone))
        {
            return Line::Installer(line.trim().to_owned());
        }
        Line::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn each_line_once_across_tails_that_repeat_and_scroll() {
        let mut cursor = Cursor::default();
        assert_eq!(cursor.new_lines(b"a\nb\nc\n"), lines("a\nb\nc"));
        // The same tail again: nothing new.
        assert_eq!(cursor.new_lines(b"a\nb\nc\n"), Vec::<String>::new());
        // The tail grew and scrolled: it starts at b now.
        assert_eq!(cursor.new_lines(b"b\nc\nd\ne\n"), lines("d\ne"));
        // It scrolled past everything seen: all of it is new.
        assert_eq!(cursor.new_lines(b"x\ny\n"), lines("x\ny"));
    }

    #[test]
    fn a_tail_continues_what_was_seen_or_leaves_a_gap() {
        // Asked of a copy: a tail that goes on is taken.
        let continues =
            |cursor: &Cursor, tail: &[u8]| cursor.clone().new_lines_if_continued(tail).is_some();
        let mut cursor = Cursor::default();
        // Nothing seen yet, or nothing in the tail: nothing can be lost.
        assert!(continues(&cursor, b"a\nb\n"));
        cursor.new_lines(b"a\nb\nc\n");
        assert!(continues(&cursor, b"partial"));
        // It shares its first lines with the last seen (whole or cut by size).
        assert!(continues(&cursor, b"b\nc\nd\n"));
        assert!(continues(&cursor, b"ece of a\nb\nc\nd\n"));
        assert!(continues(&cursor, b"c\n"));
        // It scrolled past the last line seen: the lines between are lost.
        assert!(!continues(&cursor, b"d\ne\n"));
        assert!(!continues(&cursor, b"a\nb\nd\n"));
    }

    #[test]
    fn a_line_being_written_waits_for_its_end() {
        let mut cursor = Cursor::default();
        assert_eq!(cursor.new_lines(b"one\ntw"), lines("one"));
        assert_eq!(cursor.new_lines(b"one\ntwo\nthr"), lines("two"));
        assert_eq!(cursor.new_lines(b"two\nthree\r\n"), lines("three"));
    }

    #[test]
    fn a_log_started_afresh_by_a_reboot_is_new() {
        let mut cursor = Cursor::default();
        cursor.new_lines(b"boot 1 line a\nboot 1 line b\n");
        assert_eq!(
            cursor.new_lines(b"boot 2 line a\nboot 2 line b\n"),
            lines("boot 2 line a\nboot 2 line b")
        );
    }

    #[test]
    fn repeated_lines_are_counted_by_their_run() {
        let mut cursor = Cursor::default();
        cursor.new_lines(b"x\n.\n.\n");
        // Two of the three dots were seen; one is new.
        assert_eq!(cursor.new_lines(b".\n.\n.\n"), lines("."));
    }

    #[test]
    fn bytes_that_are_not_utf8_and_control_characters_are_no_harm() {
        let mut cursor = Cursor::default();
        let new = cursor.new_lines(b"ok \xff\xfe line\n\x1b[2J\x1b]0;title\x07clear\n");
        assert_eq!(new.len(), 2);
        assert!(new[0].contains('\u{fffd}'));
        let shown = cursor.last_lines(2);
        assert!(
            shown
                .iter()
                .all(|line| !line.contains('\u{1b}') && !line.contains('\u{7}'))
        );
    }

    #[test]
    fn a_hundred_kib_console_is_read_once() {
        let mut text = String::new();
        for number in 0..2500 {
            let _ = writeln!(
                text,
                "[{number:6}] a line of fifty characters or so, padded"
            );
        }
        assert!(text.len() >= 100 * 1024);
        let mut cursor = Cursor::default();
        assert_eq!(cursor.new_lines(text.as_bytes()).len(), 2500);
        // Nova's 100 KiB cut: the tail starts mid-line; that piece and the
        // rest are old.
        let cut = &text.as_bytes()[text.len() - 100 * 1024..];
        let tail_start = cut.iter().position(|&byte| byte == b'\n').unwrap() + 1;
        assert_eq!(cursor.new_lines(&cut[tail_start..]), Vec::<String>::new());
        assert_eq!(cursor.new_lines(cut), Vec::<String>::new());
        // And a new line after a cut tail is the one new line.
        let mut grown = cut.to_vec();
        grown.extend_from_slice(b"the next line\n");
        assert_eq!(cursor.new_lines(&grown), lines("the next line"));
    }

    #[test]
    fn what_lines_mean() {
        assert_eq!(
            Line::of("xitc-phase: START download begin"),
            Line::Phase(Phase::new("START", Some("download"), Event::Begin))
        );
        assert_eq!(
            Line::of("[  OK  ] xitc-phase: SHRINK - FAILED: resize2fs failed"),
            Line::Failure("SHRINK failed".into())
        );
        assert_eq!(
            Line::of("Dec  7 18:00:01 INSTALL FAILED."),
            Line::Failure("the XenServer installer failed".into())
        );
        assert_eq!(
            Line::of("[   12.3] Kernel panic - not syncing: VFS: Unable to mount root fs"),
            Line::Failure("a kernel panicked".into())
        );
        assert_eq!(
            Line::of("(XEN) Panic on CPU 0:"),
            Line::Failure("Xen panicked".into())
        );
        assert_eq!(
            Line::of("You are in emergency mode. After logging in, type \"journalctl -xb\""),
            Line::Failure("a boot stopped in emergency mode".into())
        );
        assert_eq!(
            Line::of("INFO     The installation completed successfully."),
            Line::Installer("INFO     The installation completed successfully.".into())
        );
        assert_eq!(Line::of("[    0.000000] Linux version 6.1"), Line::Other);
    }
}
