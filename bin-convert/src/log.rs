//! The log: `<install dir>/xitc-convert.log` (0600) and stdout, which journald
//! keeps in Ubuntu and dom0's console log keeps in dom0. The password never
//! reaches it: a run holds only its hash.
//!
//! Phase lines ([`xitc_common::phase`]) go to the log file (for `--status`)
//! and to every console of the node ([`crate::console`]), not to stdout:
//! Ubuntu's unit copies stdout to `/dev/console`, which would show each
//! twice there.

use std::path::Path;

use xitc_common::phase::Phase;

use crate::console;
use crate::system::System;

/// The name log lines and errors are reported under.
pub const TOOL: &str = "xitc-convert";

/// Appends timestamped lines to the log and prints them.
#[derive(Debug)]
pub struct Log<'a> {
    system: &'a System,
    path: &'a Path,
}

impl<'a> Log<'a> {
    pub fn new(system: &'a System, path: &'a Path) -> Self {
        Log { system, path }
    }

    pub fn line(&self, text: &str) {
        let stamp = timestamp();
        let line = format!("{stamp} {TOOL}: {text}\n");
        // Neither a log file nor a stdout that cannot be written (a reader
        // gone, a full disk) may stop the conversion: `print!` would panic.
        xitc_common::output::Output::new(std::io::stdout().lock()).write(&line);
        let _ = self.system.append(self.path, &line);
    }

    /// Writes a phase line to the log file and to every console.
    pub fn phase(&self, phase: &Phase) {
        let line = phase.line();
        let _ = self
            .system
            .append(self.path, &format!("{} {TOOL}: {line}\n", timestamp()));
        console::write_line(self.system, &line);
    }

    /// The phase lines in the log's text, in order.
    pub fn phases(text: &str) -> Vec<(u64, Phase)> {
        text.lines()
            .filter_map(|line| {
                let phase = Phase::find(line)?;
                let seconds = line
                    .strip_prefix('[')
                    .and_then(|rest| rest.split(']').next())
                    .and_then(|stamp| stamp.parse().ok())
                    .unwrap_or(0);
                Some((seconds, phase))
            })
            .collect()
    }
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    // Seconds since the epoch: sortable, and no time-zone library on the node.
    format!("[{now}]")
}
