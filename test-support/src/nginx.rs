//! nginx (Debian's) serving a directory on a free loopback port: the real HTTP
//! server with Range support that downloads are tested against.
//! `/status/500` and `/status/503` answer with that status, for error cases.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::INSTALL_HINT;
use crate::process::{ServerProcess, free_port};

/// A running nginx; killed on drop.
#[derive(Debug)]
pub struct Nginx {
    dir: TempDir,
    port: u16,
    _process: ServerProcess,
}

impl Nginx {
    /// Serves the files of [`Nginx::root`] (empty at first).
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("xitc-nginx-")
            .tempdir()
            .expect("creating a temp dir for nginx");
        fs::create_dir_all(dir.path().join("www")).unwrap();
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("nginx not found: apt-get install nginx; {INSTALL_HINT}"));
        let mut failures = String::new();
        for _ in 0..5 {
            let port = free_port();
            fs::write(dir.path().join("nginx.conf"), config(dir.path(), port)).unwrap();
            let mut command = Command::new(&binary);
            command
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-p")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut process = ServerProcess::spawn("nginx", &mut command).expect("starting nginx");
            match process.wait_for_port(port, Duration::from_secs(10)) {
                Ok(()) => {
                    return Nginx {
                        dir,
                        port,
                        _process: process,
                    };
                }
                Err(why) => {
                    let _ = writeln!(failures, "{why}");
                }
            }
        }
        let log = fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not start:\n{failures}{log}");
    }

    /// The directory served at `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// The access log: one line per request, `"GET /x HTTP/1.1" STATUS BYTES "RANGE"`.
    ///
    /// nginx writes a request's line after its response, so a client can be done
    /// before the line is there: this waits until the log has not changed for
    /// 300 ms (5 s at most).
    pub fn access_log(&self) -> String {
        let read = || fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let start = std::time::Instant::now();
        let mut last = read();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = read();
            if now == last || start.elapsed() > Duration::from_secs(5) {
                return now;
            }
            last = now;
        }
    }
}

fn config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "daemon off;\n\
         master_process off;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         \x20   log_format range '\"$request\" $status $body_bytes_sent \"$http_range\"';\n\
         \x20   access_log {dir}/access.log range;\n\
         \x20   client_body_temp_path {dir}/tmp;\n\
         \x20   proxy_temp_path {dir}/tmp;\n\
         \x20   fastcgi_temp_path {dir}/tmp;\n\
         \x20   uwsgi_temp_path {dir}/tmp;\n\
         \x20   scgi_temp_path {dir}/tmp;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       root {dir}/www;\n\
         \x20       location = /status/500 {{ return 500; }}\n\
         \x20       location = /status/503 {{ return 503; }}\n\
         \x20   }}\n\
         }}\n"
    )
}
