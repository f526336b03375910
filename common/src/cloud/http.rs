//! One JSON request at a time over ureq, with the fault handling README
//! "xitc-get-ip-address-of-instance" describes:
//! transient faults (connection refused/reset, DNS failure, timeouts, 500/502/503/
//! 504, 413/429) are retried with exponential backoff and jitter, honouring
//! `Retry-After`, for as long as the caller's [`Deadline`] allows; anything else is
//! returned to the caller (status codes) or reported at once (bad URL, TLS).
//!
//! Messages name the method, the URL's path and the status, never headers (the
//! token) or request bodies (the password).

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use ureq::http::{self, HeaderMap, Method};
use url::Url;

use crate::exit;
use crate::poll::{Deadline, format_duration};

/// Timeouts of one HTTP attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// Everything after that: sending, waiting for and reading the response.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(30),
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A finished HTTP exchange whose status was not a transient fault.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The body as JSON; a clear error naming the request when it is not.
    pub fn json(&self, request: &str) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).map_err(|error| {
            anyhow::anyhow!(
                "{request}: the response is not valid JSON ({error}): {}",
                excerpt(&self.body)
            )
        })
    }

    /// The error message an OpenStack API put in an error body
    /// (`{"itemNotFound": {"message": …}}`, `{"error": {"message": …}}`,
    /// `{"message": …}`), else an excerpt of the body.
    pub fn api_message(&self) -> String {
        let from_json = serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|json| {
                let direct = json.get("message").and_then(Value::as_str);
                let nested = json
                    .as_object()
                    .and_then(|object| object.values().find_map(|inner| inner.get("message")))
                    .and_then(Value::as_str);
                direct.or(nested).map(str::to_owned)
            });
        from_json.unwrap_or_else(|| excerpt(&self.body))
    }
}

/// The first 200 characters of a body, for messages.
fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut text: String = trimmed.chars().take(200).collect();
    if text.len() < trimmed.len() {
        text.push('…');
    }
    text
}

/// A JSON-over-HTTP client with retries.
#[derive(Debug)]
pub struct HttpClient {
    agent: ureq::Agent,
    timeouts: Timeouts,
    /// The tool that says on stderr what it retries ([`HttpClient::with_notes`]).
    notes: Option<&'static str>,
}

/// The time a last try before the deadline gets.
const LAST_TRY: Duration = Duration::from_secs(1);

/// How often a retried request says so again on stderr.
const NOTE_EVERY: Duration = Duration::from_secs(30);

/// What one attempt came to.
enum Attempt {
    Done(Response),
    /// Worth retrying: why, and how long the server asked us to wait.
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
}

impl HttpClient {
    pub fn new(timeouts: Timeouts) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Keystone answers version discovery with 300 Multiple Choices, which is
            // data, not a redirect; and no API call of ours should be re-sent elsewhere.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(timeouts.connect))
            .user_agent(concat!("xitc/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        HttpClient {
            agent,
            timeouts,
            notes: None,
        }
    }

    /// Says on stderr, as `tool`, what is retried and why: at the first
    /// transient fault of a request and every [`NOTE_EVERY`] after, so a wait
    /// of minutes is never silent.
    #[must_use]
    pub fn with_notes(mut self, tool: &'static str) -> Self {
        self.notes = Some(tool);
        self
    }

    /// Sends a request, retrying transient faults until `deadline`.
    ///
    /// `token` goes into `X-Auth-Token`; `body` is sent as JSON.
    pub fn send(
        &self,
        method: &Method,
        url: &Url,
        token: Option<&str>,
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> anyhow::Result<Response> {
        let what = format!("{method} {}", url.path());
        let mut backoff = FIRST_BACKOFF;
        let mut noted: Option<Instant> = None;
        let mut last_try = false;
        loop {
            let now = Instant::now();
            let attempt_time = deadline.cap(now, self.timeouts.read);
            let (why, retry_after) = match self.attempt(method, url, token, body, attempt_time) {
                Ok(Attempt::Done(response)) => return Ok(response),
                Ok(Attempt::Transient { why, retry_after }) => (why, retry_after),
                Err(error) => return Err(error.context(what)),
            };
            let now = Instant::now();
            if deadline.is_expired(now) {
                return Err(exit::timeout(format!(
                    "{what}: timed out after {} ({why})",
                    format_duration(deadline.elapsed(now))
                )));
            }
            if let Some(tool) = self.notes
                && noted.is_none_or(|at| now.duration_since(at) >= NOTE_EVERY)
            {
                noted = Some(now);
                let left = deadline
                    .remaining(now)
                    .map_or("no time limit".to_owned(), |left| {
                        format!("{} left", format_duration(left))
                    });
                exit::note(tool, &format!("{what}: {why}; retrying ({left})"));
            }
            // The server's Retry-After is honoured: past the deadline, it is
            // over. Our own back-off that would leave no time for another try
            // is shortened so that one last try still fits; after that one,
            // it is over.
            let jittered = backoff.mul_f64(0.5 + fastrand::f64());
            let wanted = retry_after.unwrap_or(jittered);
            let pause = match deadline.remaining(now) {
                Some(left) if wanted + LAST_TRY > left => {
                    if last_try || retry_after.is_some_and(|asked| asked > left) {
                        return Err(exit::timeout(format!(
                            "{what}: timed out after {} ({why})",
                            format_duration(deadline.elapsed(now))
                        )));
                    }
                    last_try = true;
                    left.saturating_sub(LAST_TRY)
                }
                _ => wanted,
            };
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn attempt(
        &self,
        method: &Method,
        url: &Url,
        token: Option<&str>,
        body: Option<&Value>,
        time_limit: Duration,
    ) -> anyhow::Result<Attempt> {
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header("Accept", "application/json");
        if let Some(token) = token {
            builder = builder.header("X-Auth-Token", token);
        }
        let payload = match body {
            Some(json) => {
                builder = builder.header("Content-Type", "application/json");
                serde_json::to_vec(json)?
            }
            None => Vec::new(),
        };
        let request = builder.body(payload)?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(time_limit.max(Duration::from_millis(1))))
            .build();
        let mut response = match self.agent.run(request) {
            Ok(response) => response,
            Err(error) => return classify_error(error, url),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let 413 | 429 | 500 | 502 | 503 | 504 = status {
            return Ok(Attempt::Transient {
                why: format!("HTTP {status}"),
                retry_after: retry_after(&headers, SystemTime::now()),
            });
        }
        let body = match response.body_mut().read_to_string() {
            Ok(body) => body,
            Err(error) => return classify_error(error, url),
        };
        Ok(Attempt::Done(Response {
            status,
            headers,
            body,
        }))
    }
}

/// Network-level trouble is transient; a bad URL, TLS failure or protocol
/// violation will not improve by retrying, and neither will a host name that
/// does not resolve or a refused connection to this machine's own address
/// (nothing listens there; a remote cloud's refusal can be a restart).
fn classify_error(error: ureq::Error, url: &Url) -> anyhow::Result<Attempt> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    let refused = match &error {
        ureq::Error::Io(io_error) => io_error.kind() == std::io::ErrorKind::ConnectionRefused,
        ureq::Error::ConnectionFailed => true,
        _ => false,
    };
    if refused && is_loopback(host) {
        return Err(anyhow::Error::new(error).context(format!(
            "connection refused by {host}:{port}: nothing listens there"
        )));
    }
    if matches!(error, ureq::Error::HostNotFound) {
        return Err(anyhow::Error::new(error).context(format!("no such host: {host}")));
    }
    let transient = matches!(
        error,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
    );
    if transient {
        Ok(Attempt::Transient {
            why: error.to_string(),
            retry_after: None,
        })
    } else {
        Err(anyhow::Error::new(error))
    }
}

/// This machine's own addresses, where a refused connection is final.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// `Retry-After` as seconds or as an HTTP date, relative to `now`.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get("Retry-After")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("Retry-After", retry_after.parse().unwrap());
        map
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        // 2015-10-21 07:28:10 GMT is 10 s after `now`.
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:10 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    fn response(body: &str) -> Response {
        Response {
            status: 404,
            headers: HeaderMap::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn api_messages_are_found_in_the_usual_shapes() {
        let nested = r#"{"itemNotFound": {"message": "Instance could not be found", "code": 404}}"#;
        assert_eq!(
            response(nested).api_message(),
            "Instance could not be found"
        );
        assert_eq!(response(r#"{"message": "nope"}"#).api_message(), "nope");
        assert_eq!(
            response("<html>oops</html>").api_message(),
            "<html>oops</html>"
        );
        assert_eq!(response("  ").api_message(), "(empty body)");
        assert!(response(&"x".repeat(500)).api_message().ends_with('…'));
    }

    fn get(
        client: &HttpClient,
        url: &str,
        timeout: Duration,
    ) -> (anyhow::Result<Response>, Duration) {
        let started = Instant::now();
        let deadline = Deadline::new(started, Some(timeout));
        let result = client.send(
            &Method::GET,
            &Url::parse(url).unwrap(),
            None,
            None,
            &deadline,
        );
        (result, started.elapsed())
    }

    #[test]
    fn a_refused_connection_on_this_machine_and_an_unknown_host_fail_at_once() {
        let client = HttpClient::new(Timeouts::default());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // (An unknown host is final too; not tried here: tests contact
        // loopback only, and a name lookup asks the network's resolver.)
        for url in [
            format!("http://127.0.0.1:{port}/v3"),
            format!("http://localhost:{port}/v3"),
        ] {
            let (result, took) = get(&client, &url, Duration::from_secs(60));
            let error = result.unwrap_err();
            assert_eq!(
                crate::exit::kind_of(&error),
                crate::exit::Kind::Failed,
                "{url}"
            );
            let message = format!("{error:#}");
            assert!(
                message.contains("nothing listens there"),
                "{url}: {message}"
            );
            assert!(took < Duration::from_secs(10), "{url}: {took:?}");
        }
    }

    #[test]
    fn a_transient_fault_is_retried_up_to_the_deadline_itself() {
        // A server that answers 503 to everything, with no Retry-After.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v3", listener.local_addr().unwrap());
        let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&served);
        let started = Instant::now();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buffer = [0u8; 4096];
                let _ = std::io::Read::read(&mut stream, &mut buffer);
                log.lock().unwrap().push(started.elapsed());
                let _ = std::io::Write::write_all(
                    &mut stream,
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        let client = HttpClient::new(Timeouts::default());
        let (result, took) = get(&client, &url, Duration::from_secs(4));
        let error = result.unwrap_err();
        assert_eq!(crate::exit::kind_of(&error), crate::exit::Kind::Timeout);
        assert!(format!("{error:#}").contains("(HTTP 503)"), "{error:#}");
        // Back-off 0.25, 0.5, 1, 2 s (jittered): the last pause would pass
        // the deadline, and is shortened so that a last try is made within
        // its final seconds instead of giving up early.
        let served = served.lock().unwrap().clone();
        assert!(served.len() >= 3, "{served:?}");
        assert!(
            *served.last().unwrap() >= Duration::from_millis(2500),
            "the last try came at {served:?}"
        );
        assert!(took < Duration::from_secs(6), "{took:?}");
    }
}
