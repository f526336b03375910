//! `--console SERVER`: the cloud's console log of the node, followed beside
//! the SSH wait. The conversion writes phase lines on the node's consoles
//! (README "Phase lines"); this reads them back through Nova's
//! `os-getConsoleOutput` on each poll, prints the new ones on stderr as
//! progress, and ends the wait at once on a failure line (xitc-convert's,
//! the installer's, a kernel's or Xen's panic, emergency mode) instead of at
//! `--timeout`. The console is a help, not the verdict: only the stamp, over
//! SSH, is success, and a cloud that gives no console log (400, 403, 501) or a
//! call that fails leaves the wait going on by SSH alone, said once.

use std::io::Write;
use std::time::{Duration, Instant};

use xitc_common::cloud::{CloudClient, ConsoleLog};
use xitc_common::console::{Cursor, Line, TAIL_LINES};
use xitc_common::exit::escape_control;
use xitc_common::phase::Phase;
use xitc_common::poll::Deadline;

use crate::TOOL;

/// At most this many console lines after a failure line are shown with it.
const FAILURE_CONTEXT: usize = 20;

/// The longest one console call (with its retries) may hold up a poll.
const CALL_LIMIT: Duration = Duration::from_secs(20);

/// How many of the console's last lines a timeout shows.
const LAST_LINES: usize = 20;

/// The console of one server, followed.
pub struct ConsoleWatch {
    client: CloudClient,
    /// As the user named it (a name or an id).
    server: String,
    id: Option<String>,
    cursor: Cursor,
    /// Why the cloud gives no console log, once it said so.
    unavailable: Option<String>,
    /// The last call failure said on stderr (each new one is said once).
    last_problem: Option<String>,
}

impl ConsoleWatch {
    pub fn new(client: CloudClient, server: &str) -> Self {
        ConsoleWatch {
            client,
            server: server.to_owned(),
            id: None,
            cursor: Cursor::default(),
            unavailable: None,
            last_problem: None,
        }
    }

    /// Reads the console's new lines: phase and installer lines are said on
    /// `notes`; a failure line is an error (the wait ends, exit 1). A server
    /// that does not exist is an error too; any other problem of the call is
    /// said once and the wait goes on.
    pub fn poll(&mut self, deadline: &Deadline, notes: &mut impl Write) -> anyhow::Result<()> {
        self.read(deadline, notes, false)
    }

    /// Once the stamp is found: the lines written since the last poll (the
    /// node's last phases before the stamp), said as progress; the stamp is
    /// the verdict, so a failure line here is said too, not made an error.
    pub fn catch_up(&mut self, deadline: &Deadline, notes: &mut impl Write) {
        // Only a missing server can fail the read here; the stamp stands.
        let _ = self.read(deadline, notes, true);
    }

    fn read(
        &mut self,
        deadline: &Deadline,
        notes: &mut impl Write,
        stamp_found: bool,
    ) -> anyhow::Result<()> {
        if self.unavailable.is_some() {
            return Ok(());
        }
        let call = Deadline::new(
            Instant::now(),
            Some(deadline.cap(Instant::now(), CALL_LIMIT)),
        );
        let id = if let Some(id) = &self.id {
            id.clone()
        } else {
            let server = self.client.find_server(&self.server, &call)?;
            self.id = Some(server.id.clone());
            server.id
        };
        match self.client.console_log(&id, Some(TAIL_LINES), &call) {
            Ok(ConsoleLog::Text(tail)) => {
                self.last_problem = None;
                let lines = match self.cursor.new_lines_if_continued(tail.as_bytes()) {
                    Some(lines) => lines,
                    None => self.lines_from_whole_log(&id, tail, &call, notes),
                };
                for (index, line) in lines.iter().enumerate() {
                    // A phase line is shown from its prefix on: what shares
                    // its console line (a login prompt, an initramfs message
                    // the line was written into) is not the node's word.
                    let shown = || {
                        Phase::find(line)
                            .map_or_else(|| escape_control(line.trim()), |phase| phase.line())
                    };
                    match Line::of(line) {
                        Line::Failure(_) if stamp_found => {
                            let _ = writeln!(notes, "{TOOL}: console: {}", shown());
                        }
                        Line::Failure(what) => {
                            // What follows the failure in this poll says why
                            // (host-installer's exception after its INSTALL
                            // FAILED., a panic's trace): shown before the error.
                            for after in lines.iter().skip(index + 1).take(FAILURE_CONTEXT) {
                                let _ = writeln!(
                                    notes,
                                    "{TOOL}: console: {}",
                                    escape_control(after.trim_end())
                                );
                            }
                            return Err(anyhow::anyhow!(
                                "the console of server {:?} says {what}: {}",
                                self.server,
                                shown()
                            ));
                        }
                        Line::Phase(_) | Line::Installer(_) => {
                            let _ = writeln!(notes, "{TOOL}: console: {}", shown());
                        }
                        Line::Other => {}
                    }
                }
            }
            // No log yet, or the server still building: the next poll asks again.
            Ok(ConsoleLog::NotYet(_)) => {}
            Ok(ConsoleLog::Unavailable(why)) => {
                let _ = writeln!(
                    notes,
                    "{TOOL}: note: the cloud gives no console log of server {:?} ({why}); \
                     waiting by SSH alone",
                    self.server
                );
                self.unavailable = Some(why);
            }
            Err(error) => {
                let problem = format!("{error:#}");
                if self.last_problem.as_ref() != Some(&problem) {
                    let _ = writeln!(
                        notes,
                        "{TOOL}: note: reading the console log of server {:?}: {problem}; \
                         trying again at the next poll",
                        self.server
                    );
                    self.last_problem = Some(problem);
                }
            }
        }
        Ok(())
    }

    /// The new lines when `tail` did not go on from what was read before:
    /// more was written since the last poll than a tail holds (a boot's
    /// kernel messages under a slow poll), so the whole log the cloud keeps
    /// is read instead, and the lines between are not lost. A whole log that
    /// does not go on from them either (the log started afresh, or more than
    /// the cloud keeps was written) is read from its first line, and said:
    /// some lines may not have been shown.
    fn lines_from_whole_log(
        &mut self,
        id: &str,
        tail: String,
        call: &Deadline,
        notes: &mut impl Write,
    ) -> Vec<String> {
        let text = match self.client.console_log(id, None, call) {
            Ok(ConsoleLog::Text(whole)) => whole,
            _ => tail,
        };
        if let Some(lines) = self.cursor.new_lines_if_continued(text.as_bytes()) {
            return lines;
        }
        let _ = writeln!(
            notes,
            "{TOOL}: note: the console log of server {:?} does not go on from what was \
             read before (it started afresh, or more than the cloud keeps was written \
             since the last poll): lines between may not be shown",
            self.server
        );
        self.cursor.new_lines(text.as_bytes())
    }

    /// After a timeout: the console's last lines, on `notes`.
    pub fn tell_last_lines(&self, notes: &mut impl Write) {
        let lines = self.cursor.last_lines(LAST_LINES);
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(
            notes,
            "{TOOL}: the last {} lines of server {:?}'s console:",
            lines.len(),
            self.server
        );
        for line in lines {
            let _ = writeln!(notes, "{TOOL}:   {line}");
        }
    }
}
