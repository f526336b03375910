//! test-rs's one output path: the lines it prints on stdout, escaped.

use std::io;
use std::sync::{Mutex, PoisonError};

use xitc_common::exit;
use xitc_common::output::Output;

/// The name errors are reported under.
pub const TOOL: &str = "test-rs";

/// test-rs's stdout ([`Output`]): a line never panics, and neither a reader
/// that went away nor a full disk stops the test, whose cleanup of what it
/// made in the cloud must run whatever happens to its output.
static STDOUT: Mutex<Option<Output<io::Stdout>>> = Mutex::new(None);

/// Prints `line` on test-rs's stdout. Its text comes from the cloud in part
/// (server ids, addresses, fault messages): control characters are escaped in
/// each of its lines, so nothing remote can drive the terminal.
pub(crate) fn say(line: &str) {
    let escaped: Vec<String> = line.split('\n').map(exit::escape_control).collect();
    STDOUT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(|| Output::new(io::stdout()))
        .line(&escaped.join("\n"));
}

/// The output, for its end ([`Output::finish`]) when the run is over.
pub(crate) fn take_output() -> Option<Output<io::Stdout>> {
    STDOUT.lock().unwrap_or_else(PoisonError::into_inner).take()
}
