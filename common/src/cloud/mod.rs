//! The only HTTP client of the workspace: Keystone for a token, Nova for servers,
//! keypairs and images. Used by `xitc-get-ip-address-of-instance`
//! and `test-rs`.
//!
//! [`CloudClient`] authenticates lazily, once per run, and re-authenticates once
//! when a request gets 401 (a token that expired during a long wait), then repeats
//! that request. Every call takes the caller's [`Deadline`]: transient faults are
//! retried inside it (see [`http`]), so a call either answers, fails for good, or
//! runs out of time (exit 124).

mod clouds_yaml;
pub mod compute;
pub mod config;
mod credential;
mod env;
pub mod http;
pub mod identity;
pub mod model;
mod names;

use std::sync::Mutex;

use serde_json::Value;
use ureq::http::Method;
use url::Url;

pub use compute::{Fault, Image, Server, ServerAddress, ServerCreate};
pub use config::CloudConfig;
pub use env::Env;
pub use http::Timeouts;
pub use model::Secret;

use crate::poll::Deadline;
use http::{HttpClient, Response};
use identity::Session;

/// What the console log call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleLog {
    /// The log's tail.
    Text(String),
    /// Not there yet (404, 409): why, as the API said.
    NotYet(String),
    /// This cloud gives none (400, 403, 501): why.
    Unavailable(String),
}

/// A compute API client for one cloud and one run.
#[derive(Debug)]
pub struct CloudClient {
    http: HttpClient,
    config: CloudConfig,
    session: Mutex<Option<Session>>,
}

impl CloudClient {
    /// A client for `config`; nothing is sent until the first call.
    pub fn new(config: CloudConfig, timeouts: Timeouts) -> Self {
        CloudClient {
            http: HttpClient::new(timeouts),
            config,
            session: Mutex::new(None),
        }
    }

    /// Says on stderr, as `tool`, what it retries and why (see
    /// [`HttpClient::with_notes`]).
    #[must_use]
    pub fn with_notes(mut self, tool: &'static str) -> Self {
        self.http = self.http.with_notes(tool);
        self
    }

    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// The current session, authenticating first when there is none.
    fn session(&self, deadline: &Deadline) -> anyhow::Result<Session> {
        let mut guard = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(session) = guard.as_ref() {
            return Ok(session.clone());
        }
        let session = identity::authenticate(&self.http, &self.config, deadline)?;
        *guard = Some(session.clone());
        Ok(session)
    }

    fn forget_session(&self) {
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The compute URL with `segments` appended (each percent-encoded as one path
    /// segment, so an id can never become a different path) and `query`.
    fn compute_url(session: &Session, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = session.compute_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one compute request; on 401 re-authenticates once and repeats it.
    fn request(
        &self,
        method: &Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> anyhow::Result<(String, Response)> {
        let mut reauthenticated = false;
        loop {
            let session = self.session(deadline)?;
            let url = Self::compute_url(&session, segments, query);
            let what = format!("{method} {}", url.path());
            let response =
                self.http
                    .send(method, &url, Some(session.token.expose()), body, deadline)?;
            if response.status == 401 && !reauthenticated {
                self.forget_session();
                reauthenticated = true;
                continue;
            }
            return Ok((what, response));
        }
    }

    /// [`Self::request`], then: 2xx → the response; anything else → an error with
    /// method, path, status and the API's message.
    fn expect_success(
        &self,
        method: &Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> anyhow::Result<(String, Response)> {
        let (what, response) = self.request(method, segments, query, body, deadline)?;
        if response.is_success() {
            Ok((what, response))
        } else {
            Err(api_error(&what, &response))
        }
    }

    /// Servers whose name contains `name` (the API's filter is a substring or
    /// regex match, depending on the cloud: callers filter exactly).
    pub fn list_servers(
        &self,
        name: Option<&str>,
        deadline: &Deadline,
    ) -> anyhow::Result<Vec<Server>> {
        self.list_detail("servers", name, deadline)
    }

    /// The server with `id`, or `None` when the API says 404.
    pub fn get_server(&self, id: &str, deadline: &Deadline) -> anyhow::Result<Option<Server>> {
        self.get_one("servers", "server", id, deadline)
    }

    /// The server named exactly `name_or_id`, else the one with that id.
    ///
    /// Costs one request when the name matches; several servers with the name are
    /// an error listing their ids (an id is then unambiguous).
    pub fn find_server(&self, name_or_id: &str, deadline: &Deadline) -> anyhow::Result<Server> {
        let mut named: Vec<Server> = self
            .list_servers(Some(name_or_id), deadline)?
            .into_iter()
            .filter(|server| server.name == name_or_id)
            .collect();
        match named.len() {
            1 => return Ok(named.remove(0)),
            0 => {}
            count => {
                let ids: Vec<&str> = named.iter().map(|server| server.id.as_str()).collect();
                anyhow::bail!(
                    "{count} servers are named {name_or_id:?} (ids: {}); give an id instead",
                    ids.join(", ")
                );
            }
        }
        self.get_server(name_or_id, deadline)?
            .ok_or_else(|| anyhow::anyhow!("no server is named {name_or_id:?} or has that id"))
    }

    /// Boots a server; returns its id.
    pub fn create_server(
        &self,
        spec: &ServerCreate,
        deadline: &Deadline,
    ) -> anyhow::Result<String> {
        let body = serde_json::json!({ "server": spec });
        let (what, response) =
            self.expect_success(&Method::POST, &["servers"], &[], Some(&body), deadline)?;
        let json = response.json(&what)?;
        compute::string_field(&json["server"]["id"], "server.id", &what)
    }

    /// Deletes a server; one that is already gone is not an error.
    pub fn delete_server(&self, id: &str, deadline: &Deadline) -> anyhow::Result<()> {
        self.delete(&["servers", id], deadline)
    }

    /// Uploads the public half of a keypair generated locally.
    pub fn create_keypair(
        &self,
        name: &str,
        public_key: &str,
        deadline: &Deadline,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({"keypair": {"name": name, "public_key": public_key}});
        self.expect_success(&Method::POST, &["os-keypairs"], &[], Some(&body), deadline)?;
        Ok(())
    }

    /// Deletes a keypair; one that is already gone is not an error.
    pub fn delete_keypair(&self, name: &str, deadline: &Deadline) -> anyhow::Result<()> {
        self.delete(&["os-keypairs", name], deadline)
    }

    /// Snapshots a server into an image named `name`; returns the image id.
    ///
    /// When the response does not name the image, the id is looked up by the
    /// (exact) name: then the name must be unique, which test-rs ensures by
    /// deleting old images of that name first.
    pub fn create_image(
        &self,
        server_id: &str,
        name: &str,
        deadline: &Deadline,
    ) -> anyhow::Result<String> {
        let body = serde_json::json!({"createImage": {"name": name}});
        let (what, response) = self.server_action(server_id, &body, deadline)?;
        if !response.is_success() {
            return Err(api_error(&what, &response));
        }
        if let Some(id) = compute::image_id_from_create(&response) {
            return Ok(id);
        }
        let images: Vec<Image> = self
            .list_images(Some(name), deadline)?
            .into_iter()
            .filter(|image| image.name == name)
            .collect();
        match images.as_slice() {
            [image] => Ok(image.id.clone()),
            [] => anyhow::bail!("{what}: accepted, but no image named {name:?} appeared"),
            _ => anyhow::bail!(
                "{what}: the response names no image id and {} images are named {name:?}",
                images.len()
            ),
        }
    }

    /// Images whose name contains `name` (callers filter exactly).
    pub fn list_images(
        &self,
        name: Option<&str>,
        deadline: &Deadline,
    ) -> anyhow::Result<Vec<Image>> {
        self.list_detail("images", name, deadline)
    }

    /// The image with `id`, or `None` when the API says 404.
    pub fn get_image(&self, id: &str, deadline: &Deadline) -> anyhow::Result<Option<Image>> {
        self.get_one("images", "image", id, deadline)
    }

    /// Deletes an image; one that is already gone is not an error.
    pub fn delete_image(&self, id: &str, deadline: &Deadline) -> anyhow::Result<()> {
        self.delete(&["images", id], deadline)
    }

    /// `GET /COLLECTION/detail[?name=NAME]`, the list under the key COLLECTION.
    fn list_detail<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        name: Option<&str>,
        deadline: &Deadline,
    ) -> anyhow::Result<Vec<T>> {
        let query: Vec<(&str, &str)> = name.map(|name| ("name", name)).into_iter().collect();
        let (what, response) = self.expect_success(
            &Method::GET,
            &[collection, "detail"],
            &query,
            None,
            deadline,
        )?;
        compute::parse_list(&response.json(&what)?, collection, &what)
    }

    /// `GET /COLLECTION/ID`, the object under `key`; `None` on 404.
    fn get_one<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        id: &str,
        deadline: &Deadline,
    ) -> anyhow::Result<Option<T>> {
        let (what, response) =
            self.request(&Method::GET, &[collection, id], &[], None, deadline)?;
        match response.status {
            404 => Ok(None),
            _ if response.is_success() => {
                compute::parse_one(&response.json(&what)?, key, &what).map(Some)
            }
            _ => Err(api_error(&what, &response)),
        }
    }

    /// The last `lines` lines of the server's console log, or all the cloud
    /// keeps of it with `None` (Nova's `os-getConsoleOutput` without a
    /// `length`; `openstack console log show`). 404 and 409
    /// (no log yet, the server still building) are [`ConsoleLog::NotYet`],
    /// to be waited through; 400 (no such action), 403 (a policy) and 501 (a
    /// driver without console logs) are [`ConsoleLog::Unavailable`]: asking
    /// again will not help.
    pub fn console_log(
        &self,
        server_id: &str,
        lines: Option<usize>,
        deadline: &Deadline,
    ) -> anyhow::Result<ConsoleLog> {
        let body = match lines {
            Some(lines) => serde_json::json!({"os-getConsoleOutput": {"length": lines}}),
            None => serde_json::json!({"os-getConsoleOutput": {}}),
        };
        let (what, response) = self.server_action(server_id, &body, deadline)?;
        let why = || format!("HTTP {}: {}", response.status, response.api_message());
        match response.status {
            404 | 409 => Ok(ConsoleLog::NotYet(why())),
            // 400: a cloud (or an emulator: mimic) that has no such action.
            400 | 403 | 501 => Ok(ConsoleLog::Unavailable(why())),
            _ if response.is_success() => {
                // An empty log is an answer: nothing written yet.
                let json = response.json(&what)?;
                json["output"]
                    .as_str()
                    .map(|text| ConsoleLog::Text(text.to_owned()))
                    .ok_or_else(|| anyhow::anyhow!("{what}: the response has no \"output\""))
            }
            _ => Err(api_error(&what, &response)),
        }
    }

    /// `POST servers/ID/action` with `body` (one action); the caller reads
    /// the status, as each action has its own.
    fn server_action(
        &self,
        server_id: &str,
        body: &Value,
        deadline: &Deadline,
    ) -> anyhow::Result<(String, Response)> {
        self.request(
            &Method::POST,
            &["servers", server_id, "action"],
            &[],
            Some(body),
            deadline,
        )
    }

    fn delete(&self, segments: &[&str], deadline: &Deadline) -> anyhow::Result<()> {
        let (what, response) = self.request(&Method::DELETE, segments, &[], None, deadline)?;
        if response.is_success() || response.status == 404 {
            Ok(())
        } else {
            Err(api_error(&what, &response))
        }
    }
}

/// "GET /v2/t/servers/x: HTTP 403: Policy doesn't allow …".
fn api_error(what: &str, response: &Response) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: HTTP {}: {}",
        response.status,
        response.api_message()
    )
}
