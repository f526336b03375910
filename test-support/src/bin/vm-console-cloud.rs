//! `vm-console-cloud BOOTS_DIR ENV_FILE`: the cloud whose console log the
//! real-VM test's watch follows (`tests/vm/convert-node` runs
//! `xitc-wait-until-done --console node` against it beside the node's
//! cycle).
//!
//! Real: OpenStack's Keystone (a private one, killed with this process), which
//! the tool authenticates with as on any cloud, and which checks each token the
//! compute side is shown. Not real: Nova, whose console action
//! (`os-getConsoleOutput`) no emulator here serves; `FakeHttp` answers it as
//! Nova does for a libvirt server, from what qemu wrote to the node's serial
//! port: the boots' files `BOOTS_DIR/N.serial` concatenated in boot order (the
//! one console file a server keeps across its reboots), the last 100 KiB of it
//! (libvirt driver, `MAX_CONSOLE_BYTES`), decoded as UTF-8 with replacement,
//! its last `length` lines (compute manager, `_tail_log`: split at `\n`), with
//! the control characters `[\x00-\x08\x0B-\x1F]` removed (the API,
//! `console_output.py`). One server, `node`.
//!
//! Writes the tool's cloud settings (`OS_*`, one `KEY=VALUE` a line, mode 0600)
//! to ENV_FILE once it serves, then serves until ENV_FILE is removed (the
//! test's way to stop it) or its parent, the test, is gone; then it stops
//! Keystone and removes Keystone's files. Each console
//! call is appended to `BOOTS_DIR/../console-calls` (seconds since it began
//! serving, the lines asked for, the bytes answered, the lines of the whole
//! console then: a gap between two calls can be judged from it), which
//! BENCHMARKS.md reads.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use xitc_test_support::{FakeHttp, KEYSTONE_REGION, Keystone, Reply};

const PASSWORD: &str = "vm-console-pw";
const SERVER_ID: &str = "6a1f3c6e-0d59-4c59-9d3e-7f4f0c1b2a10";
/// Nova's libvirt driver returns at most this much of the console file.
const MAX_CONSOLE_BYTES: usize = 100 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [boots, env_file] = args.as_slice() else {
        eprintln!("usage: vm-console-cloud BOOTS_DIR ENV_FILE");
        std::process::exit(2);
    };
    let boots = PathBuf::from(boots);
    let calls = boots
        .parent()
        .unwrap_or(Path::new("."))
        .join("console-calls");
    let parent = std::os::unix::process::parent_id();
    let started = std::time::Instant::now();
    let keystone = Arc::new(Keystone::start(None));
    let (project_id, _) = keystone.project_with_user("vm-console", "vm-console-user", PASSWORD);
    let checking = Arc::clone(&keystone);
    let nova = FakeHttp::start(move |request| {
        let keystone = &checking;
        if !keystone.token_is_valid(request.header("x-auth-token").unwrap_or_default()) {
            return Reply::json(401, &json!({"error": {"code": 401, "message": "no"}}));
        }
        let server = json!({"id": SERVER_ID, "name": "node", "status": "ACTIVE",
                            "accessIPv4": "127.0.0.1", "addresses": {}});
        let path = request.path();
        let Some(rest) = path.strip_prefix(&format!("/v2.1/{project_id}/servers")) else {
            return Reply::json(404, &json!({"itemNotFound": {"message": "no route"}}));
        };
        match (request.method.as_str(), rest) {
            ("GET", "/detail") => Reply::json(200, &json!({"servers": [server]})),
            ("GET", id) if id == format!("/{SERVER_ID}") => {
                Reply::json(200, &json!({"server": server}))
            }
            ("POST", action) if action == format!("/{SERVER_ID}/action") => {
                let length = serde_json::from_str::<serde_json::Value>(&request.body)
                    .ok()
                    .and_then(|body| body["os-getConsoleOutput"]["length"].as_u64());
                let (output, console_lines) = console_tail(&boots, length);
                record(
                    &calls,
                    started.elapsed(),
                    length,
                    output.len(),
                    console_lines,
                );
                Reply::json(200, &json!({ "output": output }))
            }
            _ => Reply::json(404, &json!({"itemNotFound": {"message": "not found"}})),
        }
    });
    keystone.add_compute(
        "nova",
        KEYSTONE_REGION,
        &format!("{}/v2.1/$(project_id)s", nova.base_url()),
    );
    let mut settings = String::new();
    for (key, value) in [
        ("OS_AUTH_URL", format!("{}/v3", keystone.url())),
        ("OS_USERNAME", "vm-console-user".to_owned()),
        ("OS_PASSWORD", PASSWORD.to_owned()),
        ("OS_PROJECT_NAME", "vm-console".to_owned()),
        ("OS_USER_DOMAIN_NAME", "Default".to_owned()),
        ("OS_PROJECT_DOMAIN_NAME", "Default".to_owned()),
    ] {
        writeln!(settings, "{key}={value}").unwrap();
    }
    let partial = PathBuf::from(format!("{env_file}.partial"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| file.write_all(settings.as_bytes()))
        .and_then(|()| std::fs::rename(&partial, env_file))
        .expect("writing the cloud settings");
    while Path::new(env_file).exists() && std::os::unix::process::parent_id() == parent {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(nova);
    drop(keystone);
}

/// What Nova answers for `os-getConsoleOutput` with `length` (module doc),
/// and how many lines the whole console has.
fn console_tail(boots: &Path, length: Option<u64>) -> (String, usize) {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(boots)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let path = entry.path();
                    let boot = path.file_stem()?.to_str()?.parse().ok()?;
                    (path.extension()? == "serial").then_some((boot, path))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut console = Vec::new();
    for (_, path) in files {
        console.extend(std::fs::read(path).unwrap_or_default());
    }
    let kept = &console[console.len().saturating_sub(MAX_CONSOLE_BYTES)..];
    let text = String::from_utf8_lossy(kept);
    let lines: Vec<&str> = text.split('\n').collect();
    let tail = match length {
        Some(0) => String::new(),
        Some(length) => {
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            lines[lines.len().saturating_sub(length)..].join("\n")
        }
        None => text.into_owned(),
    };
    let console_lines = String::from_utf8_lossy(&console).lines().count();
    let tail = tail
        .chars()
        .filter(|&c| !matches!(c, '\x00'..='\x08' | '\x0b'..='\x1f'))
        .collect();
    (tail, console_lines)
}

fn record(
    calls: &Path,
    since_start: std::time::Duration,
    length: Option<u64>,
    bytes: usize,
    console_lines: usize,
) {
    let line = format!(
        "at {:.1}s length {} bytes {bytes} console-lines {console_lines}\n",
        since_start.as_secs_f64(),
        length.map_or("none".to_owned(), |length| length.to_string())
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(calls)
    {
        let _ = file.write_all(line.as_bytes());
    }
}
