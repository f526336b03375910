//! The exit statuses are documented twice, in README.md's "Exit status" table
//! and in every tool's `--help` (`EXIT_STATUS_HELP`); both must say what the
//! one error path (`exit::Kind`) does. The bad-input sweeps check each code
//! they see against the README table (test-support's `assert_one_line_error`).

use xitc_common::exit::{EXIT_STATUS_HELP, Kind};
use xitc_test_support::documented_exit_status;

#[test]
fn the_readme_table_and_the_help_text_say_the_same() {
    let readme: Vec<(i32, String)> = documented_exit_status();
    let help: Vec<(i32, String)> = EXIT_STATUS_HELP
        .lines()
        .skip(1)
        .map(|line| {
            let (code, meaning) = line.trim().split_once(' ').unwrap();
            (
                code.parse().unwrap(),
                meaning.trim().replace("--timeout", "`--timeout`"),
            )
        })
        .collect();
    assert_eq!(readme, help);
}

#[test]
fn every_kind_of_error_has_a_documented_code() {
    let codes: Vec<i32> = documented_exit_status()
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    assert_eq!(codes[0], 0, "success first");
    for kind in [Kind::Failed, Kind::Usage, Kind::Timeout] {
        assert!(
            codes.contains(&i32::from(kind.code())),
            "{kind:?} exits {}, which README.md does not document",
            kind.code()
        );
    }
}
