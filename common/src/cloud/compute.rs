//! Nova's data: servers and images as the API returns them, and what we send to
//! create a server.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::Response;

/// A server, with the fields xitc reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "accessIPv4", default)]
    pub access_ipv4: Option<String>,
    #[serde(rename = "accessIPv6", default)]
    pub access_ipv6: Option<String>,
    /// Network name → addresses on it.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<ServerAddress>>,
    #[serde(default)]
    pub fault: Option<Fault>,
}

impl Server {
    /// `server ID is in ERROR: FAULT` when the server is in ERROR, else `None`.
    pub fn error(&self) -> Option<String> {
        if !self.status.eq_ignore_ascii_case("ERROR") {
            return None;
        }
        let fault = self
            .fault
            .as_ref()
            .map(|fault| fault.message.trim())
            .filter(|message| !message.is_empty())
            .unwrap_or("the cloud gave no fault message");
        Some(format!("server {} is in ERROR: {fault}", self.id))
    }
}

/// One address of a server on one network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ServerAddress {
    pub addr: String,
    #[serde(default)]
    pub version: u8,
    /// `fixed` or `floating`, where the cloud says.
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

/// Why a server is in ERROR, where the cloud says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Fault {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<u16>,
}

/// An image (a snapshot, for test-rs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerCreate {
    pub name: String,
    #[serde(rename = "imageRef")]
    pub image: String,
    #[serde(rename = "flavorRef")]
    pub flavor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

pub(crate) fn parse_list<T: DeserializeOwned>(
    json: &Value,
    key: &str,
    what: &str,
) -> anyhow::Result<Vec<T>> {
    let list = json
        .get(key)
        .ok_or_else(|| anyhow::anyhow!("{what}: the response has no {key:?} list"))?;
    serde_json::from_value(list.clone())
        .map_err(|error| anyhow::anyhow!("{what}: unexpected {key:?} list: {error}"))
}

pub(crate) fn parse_one<T: DeserializeOwned>(
    json: &Value,
    key: &str,
    what: &str,
) -> anyhow::Result<T> {
    let one = json
        .get(key)
        .ok_or_else(|| anyhow::anyhow!("{what}: the response has no {key:?} object"))?;
    serde_json::from_value(one.clone())
        .map_err(|error| anyhow::anyhow!("{what}: unexpected {key:?} object: {error}"))
}

pub(crate) fn string_field(value: &Value, name: &str, what: &str) -> anyhow::Result<String> {
    value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{what}: the response has no {name}"))
}

/// The image id a createImage response names: in the body (microversion 2.45+)
/// or in a `Location` header `…/images/ID` before that. `None` when it names
/// none (some clouds, and mimic, send a `Location` without an image path).
pub(crate) fn image_id_from_create(response: &Response) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<Value>(&response.body)
        && let Some(id) = json["image_id"].as_str().filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let location = response.header("Location")?;
    let (_, id) = location.trim_end_matches('/').rsplit_once("/images/")?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderMap;

    #[test]
    fn servers_parse_with_missing_and_null_fields() {
        let json = serde_json::json!({"servers": [
            {"id": "a", "name": "n", "status": "ACTIVE", "accessIPv4": null,
             "addresses": {"public": [{"addr": "1.2.3.4", "version": 4,
                                       "OS-EXT-IPS:type": "floating"}]}},
            {"id": "b"}
        ]});
        let servers: Vec<Server> = parse_list(&json, "servers", "GET x").unwrap();
        assert_eq!(servers[0].access_ipv4, None);
        assert_eq!(
            servers[0].addresses["public"][0].kind.as_deref(),
            Some("floating")
        );
        assert_eq!(servers[1].status, "");
        let error = parse_list::<Server>(&serde_json::json!({"x": 1}), "servers", "GET x");
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("no \"servers\" list")
        );
    }

    #[test]
    fn errors_carry_the_fault_message() {
        let json = serde_json::json!({"id": "s1", "status": "ERROR", "fault": {"message": " No valid host "}});
        let server: Server = serde_json::from_value(json).unwrap();
        assert_eq!(
            server.error().as_deref(),
            Some("server s1 is in ERROR: No valid host")
        );
        let bare: Server =
            serde_json::from_value(serde_json::json!({"id": "s2", "status": "error"})).unwrap();
        assert_eq!(
            bare.error().as_deref(),
            Some("server s2 is in ERROR: the cloud gave no fault message")
        );
        let fine: Server =
            serde_json::from_value(serde_json::json!({"id": "s3", "status": "ACTIVE"})).unwrap();
        assert_eq!(fine.error(), None);
    }

    #[test]
    fn image_id_from_body_or_location() {
        let mut headers = HeaderMap::new();
        headers.insert("Location", "http://h/v2/t/images/img-9".parse().unwrap());
        let from_header = Response {
            status: 202,
            headers: headers.clone(),
            body: String::new(),
        };
        assert_eq!(image_id_from_create(&from_header).as_deref(), Some("img-9"));
        let from_body = Response {
            status: 202,
            headers,
            body: r#"{"image_id": "img-10"}"#.into(),
        };
        assert_eq!(image_id_from_create(&from_body).as_deref(), Some("img-10"));
        let mut elsewhere = HeaderMap::new();
        elsewhere.insert("Location", "www.someurl.com".parse().unwrap());
        let neither = Response {
            status: 202,
            headers: elsewhere,
            body: String::new(),
        };
        assert_eq!(image_id_from_create(&neither), None);
    }

    #[test]
    fn server_create_serialises_as_nova_wants() {
        let spec = ServerCreate {
            name: "Jxitct1".into(),
            image: "img".into(),
            flavor: "performance1-8".into(),
            key_name: Some("k".into()),
            metadata: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"name": "Jxitct1", "imageRef": "img",
                               "flavorRef": "performance1-8", "key_name": "k"})
        );
    }
}
