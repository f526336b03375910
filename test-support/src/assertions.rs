//! Assertions every tool's tests share.

use std::process::Output;

/// The tools' error contract (README "Exit status"): exit `code`, nothing on stdout, exactly
/// one line on stderr, `TOOL: error: …` containing `message`, no panic. `case`
/// names the situation in the failure message.
pub fn assert_one_line_error(case: &str, tool: &str, output: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{case}: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "{case}: stdout {:?}",
        output.stdout
    );
    assert!(
        stderr.starts_with(&format!("{tool}: error: ")) && stderr.lines().count() == 1,
        "{case}: {stderr}"
    );
    assert!(
        stderr.contains(message),
        "{case}: {stderr:?} lacks {message:?}"
    );
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}
