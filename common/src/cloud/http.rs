//! One JSON request at a time over ureq, with the fault handling README
//! "xitc-get-ip-address-of-instance" describes:
//! transient faults (connection refused/reset, a lookup that may work later,
//! timeouts, 500/502/503/504, 413/429) are retried by the workspace's one
//! policy ([`crate::retry`], [`crate::retry::API`]) for as long as the
//! caller's [`Deadline`] allows; anything else is returned to the caller
//! (status codes) or reported at once (bad URL, TLS, a host name that does not
//! exist: [`crate::resolve`]).
//!
//! Messages name the method, the URL's path and the status, never headers (the
//! token) or request bodies (the password).

use std::time::{Duration, SystemTime};

use serde_json::Value;
use ureq::http::{self, HeaderMap, Method};
use url::Url;

use crate::poll::{Clock, Deadline, SystemClock};
use crate::retry::{self, Attempt};

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
            .build();
        let agent = crate::resolve::agent(agent);
        HttpClient {
            agent,
            timeouts,
            notes: None,
        }
    }

    /// Says on stderr, as `tool`, what is retried and why: at the first
    /// transient fault of a request and every [`retry::NOTE_EVERY`] after, so
    /// a wait of minutes is never silent.
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
        self.send_on(&SystemClock, retry::API, method, url, token, body, deadline)
    }

    /// [`HttpClient::send`] on `clock`, with `policy` (tests).
    #[allow(clippy::too_many_arguments)]
    fn send_on(
        &self,
        clock: &impl Clock,
        policy: retry::Policy,
        method: &Method,
        url: &Url,
        token: Option<&str>,
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> anyhow::Result<Response> {
        let what = format!("{method} {}", url.path());
        retry::retry(clock, deadline, policy, &what, self.notes, |deadline| {
            let attempt_time = deadline.cap(clock.now(), self.timeouts.read);
            self.attempt(method, url, token, body, attempt_time)
                .map_err(|error| error.context(what.clone()))
        })
    }

    fn attempt(
        &self,
        method: &Method,
        url: &Url,
        token: Option<&str>,
        body: Option<&Value>,
        time_limit: Duration,
    ) -> anyhow::Result<Attempt<Response>> {
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
fn classify_error(error: ureq::Error, url: &Url) -> anyhow::Result<Attempt<Response>> {
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
        Ok(Attempt::transient(error.to_string()))
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
        let started = std::time::Instant::now();
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
        // (A host name that does not exist is final too:
        // bin-get-ip/tests/unknown_host.rs, in a namespace whose resolver
        // asks no network.)
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

    fn send_on_fake_clock(
        clock: &crate::testing::FakeClock,
        url: &str,
        timeout: f64,
    ) -> anyhow::Result<Response> {
        let deadline = Deadline::new(clock.now(), Some(Duration::from_secs_f64(timeout)));
        HttpClient::new(Timeouts::default()).send_on(
            clock,
            retry::Policy {
                jitter: false,
                ..retry::API
            },
            &Method::GET,
            &Url::parse(url).unwrap(),
            None,
            None,
            &deadline,
        )
    }

    #[test]
    fn a_transient_fault_is_retried_up_to_the_deadline_itself() {
        let (url, served) = crate::testing::scripted_server(&[crate::testing::UNAVAILABLE]);
        let clock = crate::testing::FakeClock::new();
        let error = send_on_fake_clock(&clock, &url, 4.0).unwrap_err();
        assert_eq!(crate::exit::kind_of(&error), crate::exit::Kind::Timeout);
        assert_eq!(
            format!("{error:#}"),
            "GET /v3: timed out after 3.0s (HTTP 503)"
        );
        // The policy's back-off, 0.25, 0.5, 1 s; the next (2 s) shortened so
        // that a last try is made a second before the deadline.
        let secs = Duration::from_secs_f64;
        assert_eq!(clock.sleeps(), [0.25, 0.5, 1.0, 1.25].map(secs));
        assert_eq!(*served.lock().unwrap(), 5);
    }

    #[test]
    fn retry_after_is_what_the_server_asked_for() {
        let (url, served) = crate::testing::scripted_server(&[
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        ]);
        let clock = crate::testing::FakeClock::new();
        let response = send_on_fake_clock(&clock, &url, 60.0).unwrap();
        assert_eq!((response.status, response.body.as_str()), (200, "{}"));
        assert_eq!(clock.sleeps(), [Duration::from_secs(7)]);
        assert_eq!(*served.lock().unwrap(), 2);
    }
}
