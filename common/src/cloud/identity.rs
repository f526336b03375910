//! Keystone: a token and the compute endpoint from the service catalog.
//!
//! Identity v2.0 (password, Rackspace API key, token) and v3 (password,
//! application credential, token). When the auth URL names no version (and no
//! setting did), the server's version document picks one (v3 preferred); that
//! costs one request more, so URLs with a version skip it.

use serde_json::{Value, json};
use ureq::http::Method;
use url::Url;

use super::config::CloudConfig;
use super::http::HttpClient;
use super::model::{Credential, IdentityVersion, NameOrId, Secret, join};
use crate::exit;
use crate::poll::Deadline;

/// One catalog endpoint, normalised over v2.0 and v3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub service_type: String,
    pub service_name: String,
    pub region: String,
    pub interface: String,
    pub url: String,
}

/// An authenticated session: the token and where the compute API is.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: Secret,
    pub compute_url: Url,
}

/// Authenticates and picks the compute endpoint.
pub fn authenticate(
    http: &HttpClient,
    config: &CloudConfig,
    deadline: &Deadline,
) -> anyhow::Result<Session> {
    let (auth_url, version) = match config.identity_version {
        Some(version) => (config.auth_url.clone(), version),
        None => discover_version(http, &config.auth_url, deadline)?,
    };
    let (token, endpoints, default_region) = match version {
        IdentityVersion::V2 => authenticate_v2(http, config, &auth_url, deadline)?,
        IdentityVersion::V3 => authenticate_v3(http, config, &auth_url, deadline)?,
    };
    let region = config.region.as_deref().or(default_region.as_deref());
    let endpoint = select_compute(&endpoints, config, region)?;
    let compute_url = Url::parse(&endpoint.url).map_err(|error| {
        anyhow::anyhow!(
            "the catalog's compute URL {:?} is not a URL: {error}",
            endpoint.url
        )
    })?;
    Ok(Session { token, compute_url })
}

fn discover_version(
    http: &HttpClient,
    auth_url: &Url,
    deadline: &Deadline,
) -> anyhow::Result<(Url, IdentityVersion)> {
    let what = format!("GET {} (identity version discovery)", auth_url.path());
    let response = http.send(&Method::GET, auth_url, None, None, deadline)?;
    // Keystone answers its root with 300 Multiple Choices.
    if !(response.is_success() || response.status == 300) {
        anyhow::bail!(
            "{what}: HTTP {}: {}; put /v2.0 or /v3 at the end of the auth URL to skip discovery",
            response.status,
            response.api_message()
        );
    }
    let document = response.json(&what)?;
    let versions = document["versions"]["values"]
        .as_array()
        .cloned()
        .or_else(|| document["versions"].as_array().cloned())
        .or_else(|| document.get("version").map(|one| vec![one.clone()]))
        .unwrap_or_default();
    let find = |prefix: &str| {
        versions.iter().find(|version| {
            let id = version["id"].as_str().unwrap_or_default();
            let status = version["status"].as_str().unwrap_or_default();
            id.starts_with(prefix) && !status.eq_ignore_ascii_case("deprecated")
        })
    };
    let (chosen, version) = find("v3")
        .map(|v| (v, IdentityVersion::V3))
        .or_else(|| find("v2.0").map(|v| (v, IdentityVersion::V2)))
        .ok_or_else(|| anyhow::anyhow!("{what}: the server offers neither v3 nor v2.0"))?;
    let self_link = chosen["links"]
        .as_array()
        .and_then(|links| links.iter().find(|link| link["rel"] == "self"))
        .and_then(|link| link["href"].as_str());
    let url = match self_link {
        Some(href) => Url::parse(href)
            .map_err(|error| anyhow::anyhow!("{what}: bad version link {href:?}: {error}"))?,
        None => join(
            auth_url,
            if version == IdentityVersion::V3 {
                "v3"
            } else {
                "v2.0"
            },
        ),
    };
    Ok((url, version))
}

type Authenticated = (Secret, Vec<Endpoint>, Option<String>);

fn authenticate_v2(
    http: &HttpClient,
    config: &CloudConfig,
    auth_url: &Url,
    deadline: &Deadline,
) -> anyhow::Result<Authenticated> {
    let mut auth = match &config.credential {
        Credential::Password { username, password } => json!({
            "passwordCredentials": {"username": username, "password": password.expose()}
        }),
        Credential::RackspaceApiKey { username, api_key } => json!({
            "RAX-KSKEY:apiKeyCredentials": {"username": username, "apiKey": api_key.expose()}
        }),
        Credential::Token { token } => json!({"token": {"id": token.expose()}}),
        Credential::ApplicationCredential { .. } => {
            return Err(exit::usage(format!(
                "application credentials need Identity v3, and {} speaks v2.0 ({})",
                auth_url, config.source
            )));
        }
    };
    match &config.project {
        Some(NameOrId::Name(name)) => auth["tenantName"] = json!(name),
        Some(NameOrId::Id(id)) => auth["tenantId"] = json!(id),
        None => {}
    }
    let url = join(auth_url, "tokens");
    let what = format!("POST {}", url.path());
    let response = http.send(
        &Method::POST,
        &url,
        None,
        Some(&json!({"auth": auth})),
        deadline,
    )?;
    check_auth_status(&response, &what, config)?;
    let document = response.json(&what)?;
    let access = &document["access"];
    let token = access["token"]["id"]
        .as_str()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{what}: the response has no access.token.id"))?;
    let mut endpoints = Vec::new();
    for service in access["serviceCatalog"].as_array().into_iter().flatten() {
        for endpoint in service["endpoints"].as_array().into_iter().flatten() {
            for (interface, key) in [
                ("public", "publicURL"),
                ("internal", "internalURL"),
                ("admin", "adminURL"),
            ] {
                if let Some(url) = endpoint[key].as_str() {
                    endpoints.push(Endpoint {
                        service_type: text(&service["type"]),
                        service_name: text(&service["name"]),
                        region: text(&endpoint["region"]),
                        interface: interface.to_owned(),
                        url: url.to_owned(),
                    });
                }
            }
        }
    }
    let default_region = access["user"]["RAX-AUTH:defaultRegion"]
        .as_str()
        .filter(|region| !region.is_empty())
        .map(str::to_owned);
    Ok((Secret::new(token), endpoints, default_region))
}

fn authenticate_v3(
    http: &HttpClient,
    config: &CloudConfig,
    auth_url: &Url,
    deadline: &Deadline,
) -> anyhow::Result<Authenticated> {
    let domain = |domain: &NameOrId| match domain {
        NameOrId::Name(name) => json!({"name": name}),
        NameOrId::Id(id) => json!({"id": id}),
    };
    let project = || match &config.project {
        Some(NameOrId::Id(id)) => Ok(json!({"id": id})),
        Some(NameOrId::Name(name)) => {
            Ok(json!({"name": name, "domain": domain(&config.project_domain)}))
        }
        None => Err(exit::usage(format!(
            "Identity v3 needs a project: set OS_PROJECT_NAME or OS_PROJECT_ID ({})",
            config.source
        ))),
    };
    let body = match &config.credential {
        Credential::Password { username, password } => json!({"auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": username,
                    "domain": domain(&config.user_domain),
                    "password": password.expose(),
                }},
            },
            "scope": {"project": project()?},
        }}),
        Credential::Token { token } => json!({"auth": {
            "identity": {"methods": ["token"], "token": {"id": token.expose()}},
            "scope": {"project": project()?},
        }}),
        // An application credential is bound to its project: Keystone
        // refuses a scope beside it.
        Credential::ApplicationCredential {
            id,
            name,
            user,
            secret,
        } => {
            let mut credential = json!({"secret": secret.expose()});
            if let Some(id) = id {
                credential["id"] = json!(id);
            } else {
                credential["name"] = json!(name);
                credential["user"] = match user {
                    Some(NameOrId::Id(id)) => json!({"id": id}),
                    Some(NameOrId::Name(name)) => {
                        json!({"name": name, "domain": domain(&config.user_domain)})
                    }
                    None => json!({}),
                };
            }
            json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": credential,
            }}})
        }
        Credential::RackspaceApiKey { .. } => {
            return Err(exit::usage(
                "Rackspace API-key authentication needs Identity v2.0, not v3",
            ));
        }
    };
    let url = join(auth_url, "auth/tokens");
    let what = format!("POST {}", url.path());
    let response = http.send(&Method::POST, &url, None, Some(&body), deadline)?;
    check_auth_status(&response, &what, config)?;
    let token = response
        .header("X-Subject-Token")
        .filter(|token| !token.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{what}: the response has no X-Subject-Token header"))?
        .to_owned();
    let document = response.json(&what)?;
    let mut endpoints = Vec::new();
    for service in document["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for endpoint in service["endpoints"].as_array().into_iter().flatten() {
            let region = endpoint["region_id"]
                .as_str()
                .or_else(|| endpoint["region"].as_str())
                .unwrap_or_default();
            endpoints.push(Endpoint {
                service_type: text(&service["type"]),
                service_name: text(&service["name"]),
                region: region.to_owned(),
                interface: text(&endpoint["interface"]),
                url: text(&endpoint["url"]),
            });
        }
    }
    Ok((Secret::new(token), endpoints, None))
}

fn check_auth_status(
    response: &super::http::Response,
    what: &str,
    config: &CloudConfig,
) -> anyhow::Result<()> {
    if response.is_success() {
        return Ok(());
    }
    let reason = if response.status == 401 {
        "authentication failed, check the credentials"
    } else {
        "authentication request rejected"
    };
    anyhow::bail!(
        "{what}: HTTP {}: {reason} ({}): {}",
        response.status,
        config.source,
        response.api_message()
    )
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// Picks the compute endpoint: type `compute`; by name when
/// `OS_COMPUTE_SERVICE_NAME` is set, else `cloudServersOpenStack` when several
/// compute services exist (Rackspace lists its first-generation API too); then
/// region and interface.
pub(crate) fn select_compute<'a>(
    endpoints: &'a [Endpoint],
    config: &CloudConfig,
    region: Option<&str>,
) -> anyhow::Result<&'a Endpoint> {
    let compute: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|endpoint| endpoint.service_type == "compute")
        .collect();
    let mut names: Vec<&str> = compute.iter().map(|e| e.service_name.as_str()).collect();
    names.dedup();
    let wanted_name = config.compute_service_name.as_deref().or_else(|| {
        (names.len() > 1 && names.contains(&"cloudServersOpenStack"))
            .then_some("cloudServersOpenStack")
    });
    let found = compute.iter().copied().find(|endpoint| {
        wanted_name.is_none_or(|name| endpoint.service_name == name)
            && region.is_none_or(|region| endpoint.region == region)
            && endpoint.interface == config.interface.as_str()
    });
    found.ok_or_else(|| {
        let available = if compute.is_empty() {
            "the catalog has no compute service".to_owned()
        } else {
            let listed: Vec<String> = compute
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {}",
                        e.service_name,
                        region_label(&e.region),
                        e.interface
                    )
                })
                .collect();
            format!("the catalog has: {}", listed.join(", "))
        };
        exit::usage(format!(
            "no compute endpoint for service {}, region {}, interface {}; {available}",
            wanted_name.unwrap_or("(any)"),
            region.unwrap_or("(any)"),
            config.interface.as_str(),
        ))
    })
}

fn region_label(region: &str) -> &str {
    if region.is_empty() {
        "(no region)"
    } else {
        region
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::env::Env;
    use crate::cloud::model::Interface;
    use crate::exit::{Kind, kind_of};

    fn endpoint(name: &str, region: &str, interface: &str) -> Endpoint {
        Endpoint {
            service_type: "compute".into(),
            service_name: name.into(),
            region: region.into(),
            interface: interface.into(),
            url: format!("http://{name}/{region}/{interface}"),
        }
    }

    fn config(service_name: Option<&str>) -> CloudConfig {
        let mut pairs = vec![
            ("OS_AUTH_URL", "http://127.0.0.1/v2.0"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "p"),
        ];
        if let Some(name) = service_name {
            pairs.push(("OS_COMPUTE_SERVICE_NAME", name));
        }
        CloudConfig::load(&Env::from_pairs(pairs, std::path::Path::new("/"))).unwrap()
    }

    fn rackspace_catalog() -> Vec<Endpoint> {
        vec![
            endpoint("cloudServers", "", "public"),
            endpoint("cloudServersOpenStack", "ORD", "public"),
            endpoint("cloudServersOpenStack", "DFW", "public"),
            endpoint("cloudServersOpenStack", "DFW", "internal"),
            endpoint("cloudServersBehavior", "DFW", "public"),
        ]
    }

    #[test]
    fn rackspace_prefers_cloud_servers_openstack() {
        let catalog = rackspace_catalog();
        let chosen = select_compute(&catalog, &config(None), Some("DFW")).unwrap();
        assert_eq!(chosen.url, "http://cloudServersOpenStack/DFW/public");
        let chosen = select_compute(&catalog, &config(None), None).unwrap();
        assert_eq!(chosen.url, "http://cloudServersOpenStack/ORD/public");
    }

    #[test]
    fn service_name_and_interface_can_be_chosen() {
        let catalog = rackspace_catalog();
        let chosen =
            select_compute(&catalog, &config(Some("cloudServersBehavior")), Some("DFW")).unwrap();
        assert_eq!(chosen.service_name, "cloudServersBehavior");
        let mut internal = config(None);
        internal.interface = Interface::Internal;
        let chosen = select_compute(&catalog, &internal, Some("DFW")).unwrap();
        assert_eq!(chosen.url, "http://cloudServersOpenStack/DFW/internal");
    }

    #[test]
    fn a_single_compute_service_is_used_whatever_its_name() {
        let catalog = vec![endpoint("nova", "RegionOne", "public")];
        assert_eq!(
            select_compute(&catalog, &config(None), Some("RegionOne"))
                .unwrap()
                .service_name,
            "nova"
        );
    }

    #[test]
    fn no_match_lists_what_exists() {
        let catalog = rackspace_catalog();
        let error = select_compute(&catalog, &config(None), Some("SYD")).unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        let message = error.to_string();
        assert!(message.contains("region SYD"), "{message}");
        assert!(
            message.contains("cloudServersOpenStack DFW public"),
            "{message}"
        );
        let error = select_compute(&[], &config(None), None).unwrap_err();
        assert!(error.to_string().contains("no compute service"));
    }

    #[test]
    fn join_keeps_the_base_path() {
        let base = Url::parse("http://h:1/identity/v2.0/").unwrap();
        assert_eq!(
            join(&base, "tokens").as_str(),
            "http://h:1/identity/v2.0/tokens"
        );
        let base = Url::parse("http://h/v2/t1").unwrap();
        assert_eq!(
            join(&base, "/servers/detail").as_str(),
            "http://h/v2/t1/servers/detail"
        );
    }
}
