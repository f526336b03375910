//! Bad input: exit 2 with one line on stderr naming the problem, nothing on
//! stdout (no banner, no marks), no panic, and no connection attempted (the
//! target is a port nothing listens on; a connection attempt would show as `X`).

use std::path::Path;

use xitc_test_support::{KeyType, assert_one_line_error, generate_key};

const TOOL: &str = "xitc-wait-until-done";

struct Case<'a> {
    name: &'a str,
    args: Vec<String>,
    env: Vec<(&'a str, String)>,
    message: &'a str,
}

fn case<'a>(name: &'a str, args: &[&str], message: &'a str) -> Case<'a> {
    Case {
        name,
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        env: Vec::new(),
        message,
    }
}

fn check(case: &Case) {
    let output = xitc_test_support::tool!("xitc-wait-until-done")
        .envs(case.env.iter().map(|(key, value)| (*key, value.as_str())))
        .args(&case.args)
        .output()
        .unwrap();
    assert_one_line_error(case.name, TOOL, &output, 2, case.message);
}

// A table of cases: long by nature, and clearer whole than split.
#[allow(clippy::too_many_lines)]
#[test]
fn bad_input_is_refused_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    generate_key(&key, KeyType::Ed25519, "", false);
    let key_text = std::fs::read_to_string(&key).unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "this is no key\n").unwrap();
    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &key_text[..key_text.len() / 2]).unwrap();
    let truncated_pem = dir.path().join("truncated.pem");
    std::fs::write(
        &truncated_pem,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x01]).unwrap();

    let huge = dir.path().join("huge");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let huge_key = huge.to_str().unwrap();
    let key = key.to_str().unwrap();
    let port = xitc_test_support::free_port().to_string();
    let host = format!("127.0.0.1:{port}");
    let host = host.as_str();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();

    let mut cases = vec![
        case(
            "no arguments",
            &[],
            "the following required arguments were not provided",
        ),
        case("no key", &[host], "<PRIVKEY>"),
        case(
            "three arguments",
            &[host, key, "x"],
            "unexpected argument 'x'",
        ),
        case(
            "unknown flag",
            &["--bogus", host, key],
            "unexpected argument '--bogus'",
        ),
        case("missing key file", &[host, missing], "cannot read key file"),
        case(
            "key is a directory",
            &[host, dir.path().to_str().unwrap()],
            "is not a regular file",
        ),
        case(
            "key is no key",
            &[host, &path(&garbage)],
            "is not a private key",
        ),
        case("key is binary", &[host, &path(&binary)], "is not a text"),
        case(
            "public key given",
            &[host, &format!("{key}.pub")],
            "is not a private key",
        ),
        case(
            "truncated key",
            &[host, &path(&truncated)],
            "is not a valid OpenSSH private key",
        ),
        case(
            "truncated PEM",
            &[host, &path(&truncated_pem)],
            "is not a valid PEM private key",
        ),
        case("empty target", &["", key], "the host is empty"),
        case(
            "empty user",
            &[&format!("@{host}"), key],
            "the user before '@' is empty",
        ),
        case(
            "bad port",
            &["127.0.0.1:http", key],
            "the port is not a number",
        ),
        case("port twice", &[host, key, "--port", "1"], "--port says 1"),
        case(
            "zero interval",
            &["--interval", "0", host, key],
            "--interval must be more than 0",
        ),
        case(
            "bad timeout",
            &["--timeout", "forever", host, key],
            "invalid value 'forever'",
        ),
        case(
            "zero connect timeout",
            &["--connect-timeout", "0", host, key],
            "--connect-timeout",
        ),
        case(
            "policy without file",
            &["--host-key-policy", "strict", host, key],
            "--known-hosts",
        ),
        case(
            "bad policy",
            &[
                "--known-hosts",
                "/k",
                "--host-key-policy",
                "yolo",
                host,
                key,
            ],
            "'yolo'",
        ),
        case(
            "relative stamp",
            &["--stamp", "stamp.ready", host, key],
            "--stamp must be",
        ),
        case(
            "empty stamp",
            &["--stamp", "", host, key],
            "--stamp must be",
        ),
        case(
            "agent without socket",
            &[host, "-"],
            "SSH_AUTH_SOCK is not set",
        ),
        case("port 0", &["--port", "0", "127.0.0.1", key], "'0'"),
        case(
            "endless key",
            &[host, "/dev/zero"],
            "/dev/zero is not a regular file",
        ),
        case(
            "huge key",
            &[host, huge_key],
            "is larger than 1048576 bytes",
        ),
        case(
            "year-long timeout",
            &["--timeout", "99999999999", host, key],
            "out of range (at most 365 days",
        ),
        case(
            "year-long interval",
            &["--interval", "9000h", host, key],
            "out of range (at most 365 days",
        ),
    ];
    let mut with_env = |name, env: Vec<(&'static str, String)>, args: &[&str], message| {
        let mut c = case(name, args, message);
        c.env = env;
        cases.push(c);
    };
    with_env(
        "agent socket missing",
        vec![("SSH_AUTH_SOCK", missing.to_owned())],
        &[host, "-"],
        "does not exist",
    );
    with_env(
        "empty XITC_STAMP_PATH",
        vec![("XITC_STAMP_PATH", String::new())],
        &[host, key],
        "XITC_STAMP_PATH is set but empty",
    );
    assert!(cases.len() >= 20);
    for case in &cases {
        check(case);
    }
}

#[test]
fn help_and_version() {
    let help = xitc_test_support::tool!("xitc-wait-until-done")
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for expected in [
        "Usage: xitc-wait-until-done [OPTIONS] <[USER@]HOST> <PRIVKEY>",
        " !  ",
        "124",
        "XITC_KEY_PASSPHRASE",
    ] {
        assert!(
            text.contains(expected),
            "--help lacks {expected:?}:\n{text}"
        );
    }
    let version = xitc_test_support::tool!("xitc-wait-until-done")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("{TOOL} {}\n", env!("CARGO_PKG_VERSION"))
    );
}
