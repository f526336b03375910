//! Assertions every tool's tests share.

use std::process::Output;

/// The tools' error contract (README "Exit status"): exit `code`, nothing on stdout, exactly
/// one line on stderr, `TOOL: error: …` containing `message`, no panic. `case`
/// names the situation in the failure message. `code` must be one the README's
/// exit-status table documents: every bad-input sweep goes through here, so
/// what the sweeps see is checked against what the README promises.
pub fn assert_one_line_error(case: &str, tool: &str, output: &Output, code: i32, message: &str) {
    assert!(
        documented_exit_codes().contains(&code),
        "{case}: exit {code} is not in README.md's \"Exit status\" table"
    );
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

/// The rows of README.md's "## Exit status" table: (code, meaning).
pub fn documented_exit_status() -> Vec<(i32, String)> {
    let readme = std::fs::read_to_string(crate::workspace_root().join("README.md"))
        .expect("reading README.md");
    let section = readme
        .split("\n## Exit status\n")
        .nth(1)
        .expect("README.md has an \"## Exit status\" section");
    section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let code = cells.first()?.trim().parse().ok()?;
            Some((code, cells.get(1)?.trim().to_owned()))
        })
        .collect()
}

/// The exit codes README.md documents.
pub fn documented_exit_codes() -> Vec<i32> {
    documented_exit_status()
        .into_iter()
        .map(|(code, _)| code)
        .collect()
}
