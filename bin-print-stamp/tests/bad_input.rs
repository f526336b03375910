//! The project's sweep of bad input for xitc-print-stamp-path (issue: every
//! tool under bad input): each case exits with its documented code, one line
//! on stderr naming the problem, nothing on stdout, no panic. The tool reads
//! only its arguments and XITC_STAMP_PATH, so those are what goes wrong.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use xitc_test_support::assert_one_line_error;

const TOOL: &str = "xitc-print-stamp-path";

fn bytes(value: &[u8]) -> OsString {
    OsString::from_vec(value.to_vec())
}

#[test]
fn bad_overrides_and_arguments_are_one_line_usage_errors() {
    let long = format!("relative/{}", "x".repeat(100_000));
    let overrides: Vec<(&str, OsString, &str)> = vec![
        ("empty", "".into(), "is set but empty"),
        (
            "relative",
            "relative.ready".into(),
            "must be an absolute path",
        ),
        (
            "dot-relative",
            "./x.ready".into(),
            "must be an absolute path",
        ),
        ("tilde", "~/x.ready".into(), "must be an absolute path"),
        (
            "leading space",
            " /tmp/x".into(),
            "must be an absolute path",
        ),
        ("huge and relative", long.into(), "must be an absolute path"),
        (
            "newline",
            "/tmp/two\nlines".into(),
            "must not contain control characters",
        ),
        (
            "tab",
            "/tmp/a\tb".into(),
            "must not contain control characters",
        ),
        (
            "escape",
            "/tmp/\u{1b}[2J".into(),
            "must not contain control characters",
        ),
        (
            "delete",
            "/tmp/\u{7f}".into(),
            "must not contain control characters",
        ),
        (
            "carriage return",
            "/tmp/x\r".into(),
            "must not contain control characters",
        ),
        ("not UTF-8", bytes(b"/tmp/\xff"), "not valid UTF-8"),
        ("cut character", bytes(b"/tmp/caf\xc3"), "not valid UTF-8"),
    ];
    let mut cases = 0;
    for (name, value, message) in &overrides {
        let output = xitc_test_support::tool!("xitc-print-stamp-path")
            .env("XITC_STAMP_PATH", value)
            .output()
            .unwrap();
        assert_one_line_error(name, TOOL, &output, 2, message);
        // The escape must not reach the terminal raw.
        assert!(
            !output.stderr.contains(&0x1b),
            "{name}: raw escape on stderr"
        );
        cases += 1;
    }
    let arguments: [(&str, &[&str], &str); 9] = [
        ("unknown flag", &["--bogus"], "unexpected argument"),
        ("extra argument", &["extra"], "unexpected argument"),
        ("short flag", &["-x"], "unexpected argument"),
        ("dash", &["-"], "unexpected argument"),
        (
            "option with value",
            &["--stamp", "/x"],
            "unexpected argument",
        ),
        ("after --", &["--", "x"], "unexpected argument"),
        ("value on --help", &["--help=1"], "unexpected value"),
        ("non-UTF-8 argument", &[], "unexpected argument"),
        (
            "control characters",
            &["\u{1b}[31mred"],
            "unexpected argument",
        ),
    ];
    for (name, args, message) in arguments {
        let mut command = xitc_test_support::tool!("xitc-print-stamp-path");
        if name == "non-UTF-8 argument" {
            command.arg(bytes(b"\xff\xfe"));
        } else {
            command.args(args);
        }
        let output = command.output().unwrap();
        assert_one_line_error(name, TOOL, &output, 2, message);
        assert!(
            !output.stderr.contains(&0x1b),
            "{name}: raw escape on stderr"
        );
        cases += 1;
    }
    assert!(cases >= 20, "{cases} cases");
}

#[test]
fn a_full_stdout_is_exit_1_with_one_line() {
    let output = xitc_test_support::tool!("xitc-print-stamp-path")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    xitc_test_support::assert_one_line_error(
        "a full stdout",
        "xitc-print-stamp-path",
        &output,
        1,
        "writing to stdout: ",
    );
}
