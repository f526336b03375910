//! Phase lines: what the node says about its conversion on every console it
//! has, so that it can be followed from outside while it has no SSH (the
//! shrink boot, the installer, dom0's first boot) through the cloud's console
//! log. `xitc-convert` writes one per state start, step start and end, and
//! failure (and its log keeps them, for `--status`); the shrink in the
//! initramfs writes its own; `xitc-wait-until-done --console` and test-rs read
//! them back. The grammar is README's "Phase lines", and stable: a tool of one
//! version reads the lines of another.
//!
//! ```text
//! xitc-phase: STATE STEP EVENT[: DETAIL]
//! ```
//!
//! - `STATE`: a state's name (`START`, `SETUP_INSTALLER`, …) or `SHRINK`;
//! - `STEP`: the step's name (`download`), `-` for the state itself;
//! - `EVENT`: `begin`, `ok`, `done` (a state's end; DETAIL says what is next)
//!   or `FAILED` (DETAIL says why; the conversion stops there);
//! - `DETAIL`: one line, control characters escaped, at most
//!   [`MAX_DETAIL`] characters. No secret is ever in it: the messages it
//!   carries never hold one.

use crate::exit::escape_control;

/// What every phase line starts with.
pub const PREFIX: &str = "xitc-phase: ";

/// The STEP of a line about a whole state.
pub const NO_STEP: &str = "-";

/// The longest DETAIL a line carries (a console line should stay one line
/// on a terminal of any width; the log has the rest).
pub const MAX_DETAIL: usize = 300;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Begin,
    Ok,
    Done,
    Failed,
}

impl Event {
    pub fn word(self) -> &'static str {
        match self {
            Event::Begin => "begin",
            Event::Ok => "ok",
            Event::Done => "done",
            Event::Failed => "FAILED",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        [Event::Begin, Event::Ok, Event::Done, Event::Failed]
            .into_iter()
            .find(|event| event.word() == word)
    }
}

/// One phase line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub state: String,
    /// `None` for the state itself.
    pub step: Option<String>,
    pub event: Event,
    pub detail: Option<String>,
}

impl Phase {
    /// A line about `state`'s step `step` (`None`: the state itself).
    pub fn new(state: &str, step: Option<&str>, event: Event) -> Self {
        Phase {
            state: state.to_owned(),
            step: step.map(str::to_owned),
            event,
            detail: None,
        }
    }

    #[must_use]
    pub fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.to_owned());
        self
    }

    /// The line, without a newline.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{PREFIX}{} {} {}",
            self.state,
            self.step.as_deref().unwrap_or(NO_STEP),
            self.event.word()
        );
        if let Some(detail) = &self.detail {
            let one_line = escape_control(detail);
            let mut shortened: String = one_line.chars().take(MAX_DETAIL).collect();
            if shortened.len() < one_line.len() {
                shortened.push('…');
            }
            line.push_str(": ");
            line.push_str(&shortened);
        }
        line
    }

    /// The phase line in `text` (a console line, which may carry other text
    /// before it, or a log line with its time stamp), if it holds one.
    pub fn find(text: &str) -> Option<Self> {
        let rest = &text[text.find(PREFIX)? + PREFIX.len()..];
        let rest = rest.trim_end_matches(['\r', '\n']);
        let (head, detail) = match rest.split_once(": ") {
            Some((head, detail)) => (head, Some(detail.to_owned())),
            None => (rest, None),
        };
        let mut words = head.split(' ');
        let state = words.next()?;
        let step = words.next()?;
        let event = Event::from_word(words.next()?)?;
        let well_formed = words.next().is_none()
            && !state.is_empty()
            && state
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !step.is_empty()
            && step
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        well_formed.then(|| Phase {
            state: state.to_owned(),
            step: (step != NO_STEP).then(|| step.to_owned()),
            event,
            detail,
        })
    }

    /// `START download`, `SHRINK`: what the line is about, for people.
    pub fn name(&self) -> String {
        match &self.step {
            Some(step) => format!("{} {step}", self.state),
            None => self.state.clone(),
        }
    }
}

/// One state or step from its `begin` to its end, as read from phase lines
/// stamped with times of type `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span<T> {
    pub state: String,
    /// `None` for the state itself.
    pub step: Option<String>,
    pub start: T,
    /// When and how it ended (`ok`, `done` or `FAILED`, with the line's
    /// DETAIL); `None`: it has not ended (running, or cut short by a crash or
    /// a reboot).
    pub end: Option<(T, Event, Option<String>)>,
}

/// The spans of `phases` (in the order they began): each `begin` is closed
/// by the next end event of the same state and step; an end without a
/// `begin` before it (a watch that started late) is left out.
pub fn spans<T: Copy>(phases: &[(T, Phase)]) -> Vec<Span<T>> {
    let mut spans: Vec<Span<T>> = Vec::new();
    for (at, phase) in phases {
        if phase.event == Event::Begin {
            spans.push(Span {
                state: phase.state.clone(),
                step: phase.step.clone(),
                start: *at,
                end: None,
            });
        } else if let Some(open) = spans
            .iter_mut()
            .rev()
            .find(|span| span.end.is_none() && span.state == phase.state && span.step == phase.step)
        {
            open.end = Some((*at, phase.event, phase.detail.clone()));
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span's step, start and end, for comparing.
    type Summary<'a> = (Option<&'a str>, u32, Option<(u32, Event)>);

    #[test]
    fn spans_pair_each_begin_with_its_end() {
        let lines = [
            (1, "xitc-phase: START - begin"),
            (2, "xitc-phase: START preflight begin"),
            (3, "xitc-phase: START preflight ok"),
            (4, "xitc-phase: START download begin"),
            // A reboot cut it short; the state begins again.
            (9, "xitc-phase: START - begin"),
            (10, "xitc-phase: START download begin"),
            (12, "xitc-phase: START download FAILED: HTTP 404"),
            (13, "xitc-phase: SETUP_INSTALLER - done: next state X"),
        ];
        let phases: Vec<(u32, Phase)> = lines
            .iter()
            .map(|(at, line)| (*at, Phase::find(line).unwrap()))
            .collect();
        let spans = spans(&phases);
        let summary: Vec<Summary> = spans
            .iter()
            .map(|span| {
                (
                    span.step.as_deref(),
                    span.start,
                    span.end.as_ref().map(|(at, event, _)| (*at, *event)),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (None, 1, None),
                (Some("preflight"), 2, Some((3, Event::Ok))),
                (Some("download"), 4, None),
                (None, 9, None),
                (Some("download"), 10, Some((12, Event::Failed))),
            ]
        );
        assert_eq!(
            spans[4].end.as_ref().unwrap().2.as_deref(),
            Some("HTTP 404")
        );
    }

    #[test]
    fn lines_read_back_as_written() {
        for phase in [
            Phase::new("START", None, Event::Begin),
            Phase::new("START", Some("download"), Event::Ok),
            Phase::new("SETUP_INSTALLER", None, Event::Done)
                .with_detail("next state XENSERVER_FIRSTBOOT, reboot"),
            Phase::new("XENSERVER_FIRSTBOOT", Some("wait-xapi"), Event::Failed)
                .with_detail("xapi did not finish starting within 1200s: see: it"),
        ] {
            let line = phase.line();
            assert!(line.starts_with(PREFIX), "{line}");
            assert_eq!(Phase::find(&line), Some(phase.clone()), "{line}");
            // With what a console or the log puts before it, and a CR.
            assert_eq!(
                Phase::find(&format!("[1796665181] xitc-convert: {line}\r")),
                Some(phase)
            );
        }
        assert_eq!(
            Phase::new("START", Some("download"), Event::Begin).line(),
            "xitc-phase: START download begin"
        );
    }

    #[test]
    fn a_detail_stays_one_short_line() {
        let line = Phase::new("START", Some("preflight"), Event::Failed)
            .with_detail(&format!("a\nb\u{1b}[2J{}", "x".repeat(1000)))
            .line();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.chars().count() < MAX_DETAIL + 60, "{line}");
        assert!(line.ends_with('…'));
    }

    #[test]
    fn other_text_is_no_phase() {
        for text in [
            "",
            "xitc-phase:",
            "xitc-phase: START",
            "xitc-phase: START download",
            "xitc-phase: START download started",
            "xitc-phase: start download ok",
            "xitc-phase: START Download ok",
            "xitc-phase: START download ok extra",
            "[    3.1] random kernel line",
        ] {
            assert_eq!(Phase::find(text), None, "{text:?}");
        }
    }
}
