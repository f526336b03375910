//! Bad input: each case exits with the right code, says what is wrong in one line
//! on stderr, prints nothing on stdout, and never panics.

use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use xitc_test_support::assert_one_line_error;

const TOOL: &str = "xitc-get-ip-address-of-instance";

/// Credentials that would work if anything listened on port 9 (nothing does; every
/// case here fails before a request, except the unreachable one).
const CREDENTIALS: &[(&str, &str)] = &[
    ("OS_AUTH_URL", "http://127.0.0.1:9/v2.0"),
    ("OS_USERNAME", "user"),
    ("OS_PASSWORD", "hunter2-secret"),
    ("OS_TENANT_NAME", "tenant"),
];

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    env: Vec<(&'static str, String)>,
    code: i32,
    message: &'static str,
    /// Contents of ./clouds.yaml in the working directory, if any.
    clouds_yaml: Option<&'static str>,
}

fn with_credentials(changes: &[(&'static str, Option<&str>)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = CREDENTIALS
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect();
    for (key, value) in changes {
        env.retain(|(existing, _)| existing != key);
        if let Some(value) = value {
            env.push((key, (*value).to_owned()));
        }
    }
    env
}

fn run(case: &Case) {
    let cwd = tempfile::tempdir().unwrap();
    if let Some(yaml) = case.clouds_yaml {
        std::fs::write(cwd.path().join("clouds.yaml"), yaml).unwrap();
    }
    let output = Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"))
        .envs(case.env.iter().map(|(key, value)| (*key, value.as_str())))
        .current_dir(cwd.path())
        .args(case.args)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_one_line_error(case.name, TOOL, &output, case.code, case.message);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("hunter2"),
        "{}: the password leaked",
        case.name
    );
}

// A table of cases: long by nature, and clearer whole than split.
#[allow(clippy::too_many_lines)]
fn cases(unreachable: &str) -> Vec<Case> {
    vec![
        Case {
            name: "no argument",
            args: &[],
            env: with_credentials(&[]),
            code: 2,
            message: "the following required arguments were not provided: <NAME_OR_ID>",
            clouds_yaml: None,
        },
        Case {
            name: "empty name",
            args: &[""],
            env: with_credentials(&[]),
            code: 2,
            message: "NAME_OR_ID is empty",
            clouds_yaml: None,
        },
        Case {
            name: "two names",
            args: &["a", "b"],
            env: with_credentials(&[]),
            code: 2,
            message: "unexpected argument 'b'",
            clouds_yaml: None,
        },
        Case {
            name: "unknown flag",
            args: &["--bogus", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "unexpected argument '--bogus'",
            clouds_yaml: None,
        },
        Case {
            name: "bad timeout",
            args: &["--timeout", "soon", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "invalid value 'soon' for '--timeout",
            clouds_yaml: None,
        },
        Case {
            name: "negative interval",
            args: &["--interval=-1", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "invalid value '-1' for '--interval",
            clouds_yaml: None,
        },
        Case {
            name: "zero interval",
            args: &["--interval", "0", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "--interval must be more than 0",
            clouds_yaml: None,
        },
        Case {
            name: "zero connect timeout",
            args: &["--connect-timeout", "0", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "--connect-timeout must be more than 0",
            clouds_yaml: None,
        },
        Case {
            name: "bad address choice",
            args: &["--address", "best", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "invalid value 'best' for '--address",
            clouds_yaml: None,
        },
        Case {
            name: "bad format",
            args: &["--format", "xml", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "invalid value 'xml' for '--format",
            clouds_yaml: None,
        },
        Case {
            name: "no credentials at all",
            args: &["x"],
            env: Vec::new(),
            code: 2,
            message: "no cloud credentials: set OS_CLOUD",
            clouds_yaml: None,
        },
        Case {
            name: "no user",
            args: &["x"],
            env: with_credentials(&[("OS_USERNAME", None)]),
            code: 2,
            message: "OS_USERNAME is not set",
            clouds_yaml: None,
        },
        Case {
            name: "no password",
            args: &["x"],
            env: with_credentials(&[("OS_PASSWORD", None)]),
            code: 2,
            message: "OS_PASSWORD is not set",
            clouds_yaml: None,
        },
        Case {
            name: "empty password",
            args: &["x"],
            env: with_credentials(&[("OS_PASSWORD", Some(""))]),
            code: 2,
            message: "OS_PASSWORD is not set",
            clouds_yaml: None,
        },
        Case {
            name: "no API key",
            args: &["x"],
            env: with_credentials(&[("OS_PASSWORD", None), ("OS_AUTH_SYSTEM", Some("rackspace"))]),
            code: 2,
            message: "OS_API_KEY or OS_PASSWORD is not set",
            clouds_yaml: None,
        },
        Case {
            name: "malformed auth URL",
            args: &["x"],
            env: with_credentials(&[("OS_AUTH_URL", Some("identity.example.com/v2.0"))]),
            code: 2,
            message: "OS_AUTH_URL \"identity.example.com/v2.0\" is not a usable URL",
            clouds_yaml: None,
        },
        Case {
            name: "auth URL with another scheme",
            args: &["x"],
            env: with_credentials(&[("OS_AUTH_URL", Some("ftp://127.0.0.1/v2.0"))]),
            code: 2,
            message: "scheme \"ftp\" is not http or https",
            clouds_yaml: None,
        },
        Case {
            name: "bad interface",
            args: &["x"],
            env: with_credentials(&[("OS_INTERFACE", Some("sideways"))]),
            code: 2,
            message: "interface \"sideways\" is not one of public, internal, admin",
            clouds_yaml: None,
        },
        Case {
            name: "unsupported auth type",
            args: &["x"],
            env: with_credentials(&[("OS_AUTH_TYPE", Some("v3oidcpassword"))]),
            code: 2,
            message: "auth type \"v3oidcpassword\" is not supported",
            clouds_yaml: None,
        },
        Case {
            name: "token auth without a token",
            args: &["x"],
            env: with_credentials(&[("OS_AUTH_TYPE", Some("v3token"))]),
            code: 2,
            message: "OS_TOKEN is not set",
            clouds_yaml: None,
        },
        Case {
            name: "application credential without id or name",
            args: &["x"],
            env: with_credentials(&[
                ("OS_USERNAME", None),
                ("OS_PASSWORD", None),
                ("OS_APPLICATION_CREDENTIAL_SECRET", Some("s")),
            ]),
            code: 2,
            message: "an application credential needs OS_APPLICATION_CREDENTIAL_ID",
            clouds_yaml: None,
        },
        Case {
            name: "API key with v3",
            args: &["x"],
            env: with_credentials(&[
                ("OS_AUTH_URL", Some("http://127.0.0.1:9/v3")),
                ("OS_AUTH_SYSTEM", Some("rackspace")),
            ]),
            code: 2,
            message: "Rackspace API-key authentication needs Identity v2.0",
            clouds_yaml: None,
        },
        Case {
            name: "v3 without a project",
            args: &["x"],
            env: with_credentials(&[
                ("OS_AUTH_URL", Some("http://127.0.0.1:9/v3")),
                ("OS_TENANT_NAME", None),
            ]),
            code: 2,
            message: "Identity v3 needs a project",
            clouds_yaml: None,
        },
        Case {
            name: "clouds.yaml that is not YAML",
            args: &["x"],
            env: vec![("OS_CLOUD", "mine".to_owned())],
            code: 2,
            message: "clouds.yaml is not valid YAML",
            clouds_yaml: Some("clouds: [unclosed\n"),
        },
        Case {
            name: "endless clouds.yaml",
            args: &["x"],
            env: vec![
                ("OS_CLOUD", "mine".to_owned()),
                ("OS_CLIENT_CONFIG_FILE", "/dev/zero".to_owned()),
            ],
            code: 2,
            message: "clouds.yaml /dev/zero is not a regular file",
            clouds_yaml: None,
        },
        Case {
            name: "clouds.yaml is a directory",
            args: &["x"],
            env: vec![
                ("OS_CLOUD", "mine".to_owned()),
                ("OS_CLIENT_CONFIG_FILE", "/".to_owned()),
            ],
            code: 2,
            message: "clouds.yaml / is not a regular file",
            clouds_yaml: None,
        },
        Case {
            name: "year-long timeout",
            args: &["--timeout", "8761h", "x"],
            env: with_credentials(&[]),
            code: 2,
            message: "out of range (at most 365 days",
            clouds_yaml: None,
        },
        Case {
            name: "unknown OS_CLOUD without clouds.yaml",
            args: &["x"],
            env: vec![
                ("OS_CLOUD", "mine".to_owned()),
                (
                    "OS_CLIENT_CONFIG_FILE",
                    "/nonexistent/clouds.yaml".to_owned(),
                ),
            ],
            code: 2,
            message: "OS_CLOUD is \"mine\" but no clouds.yaml was found",
            clouds_yaml: None,
        },
        Case {
            name: "unknown OS_CLOUD name",
            args: &["x"],
            env: vec![("OS_CLOUD", "mine".to_owned())],
            code: 2,
            message: "defines no such cloud (it has: theirs)",
            clouds_yaml: Some(
                "clouds:\n  theirs:\n    auth:\n      auth_url: http://127.0.0.1:9/v2.0\n",
            ),
        },
        Case {
            name: "auth URL on this machine where nothing listens",
            args: &["x"],
            env: with_credentials(&[("OS_AUTH_URL", Some(unreachable))]),
            code: 1,
            message: "nothing listens there",
            clouds_yaml: None,
        },
    ]
}

#[test]
fn bad_input_is_refused_clearly() {
    let unreachable = format!("http://127.0.0.1:{}/v2.0", xitc_test_support::free_port());
    let cases = cases(&unreachable);
    assert!(cases.len() >= 20);
    for case in &cases {
        run(case);
    }
}

#[test]
fn help_and_version_exit_0() {
    Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"))
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains(
                "Usage: xitc-get-ip-address-of-instance [OPTIONS] <NAME_OR_ID>",
            )
            .and(predicate::str::contains("OS_CLOUD"))
            .and(predicate::str::contains("124")),
        );
    Command::from_std(xitc_test_support::tool!("xitc-get-ip-address-of-instance"))
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("{TOOL} {}\n", env!("CARGO_PKG_VERSION")));
}
