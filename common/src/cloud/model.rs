//! The words of the cloud code: credentials, names and ids, interfaces,
//! Identity versions, and the auth URL's rules. Everything else in
//! `cloud` speaks in these; they depend on nothing of it.

use url::Url;

pub use crate::secret::Secret;

/// How to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Password {
        username: String,
        password: Secret,
    },
    /// Rackspace's `RAX-KSKEY:apiKeyCredentials` (Identity v2.0 only).
    RackspaceApiKey {
        username: String,
        api_key: Secret,
    },
    /// A Keystone application credential (Identity v3 only): by id, or by name
    /// with its user (by name with the user's domain, or by id). It carries its
    /// own project, so no scope is sent.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        /// The owner, needed when the credential is named rather than given by id.
        user: Option<NameOrId>,
        secret: Secret,
    },
    /// A token someone else got (`OS_TOKEN`), re-scoped to the project.
    Token {
        token: Secret,
    },
}

/// A project (tenant), or a domain of users/projects, by name or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(String),
}

/// Which endpoint of a catalog entry to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Public,
    Internal,
    Admin,
}

impl Interface {
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        match text.trim_end_matches("URL").to_ascii_lowercase().as_str() {
            "public" => Some(Interface::Public),
            "internal" => Some(Interface::Internal),
            "admin" => Some(Interface::Admin),
            _ => None,
        }
    }
}

/// Identity API version, from the auth URL or the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityVersion {
    V2,
    V3,
}

impl IdentityVersion {
    /// The version's path segment: `v2.0`, `v3`.
    pub fn path_segment(self) -> &'static str {
        match self {
            IdentityVersion::V2 => "v2.0",
            IdentityVersion::V3 => "v3",
        }
    }
}

/// An auth URL: http or https, with a host.
pub(super) fn parse_auth_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text)?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("scheme {:?} is not http or https", url.scheme());
    }
    if url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("it has no host");
    }
    Ok(url)
}

/// The Identity version the URL's last segment names (`v2.0`, `v3`).
pub(super) fn version_from_url(url: &Url) -> Option<IdentityVersion> {
    let last = url
        .path_segments()?
        .rev()
        .find(|segment| !segment.is_empty())?;
    match last {
        "v2.0" => Some(IdentityVersion::V2),
        "v3" => Some(IdentityVersion::V3),
        _ => None,
    }
}

/// `2`, `2.0`, `v3`, … as a version.
pub(super) fn parse_identity_version(text: &str) -> Option<IdentityVersion> {
    match text.trim_start_matches('v') {
        "2" | "2.0" => Some(IdentityVersion::V2),
        "3" => Some(IdentityVersion::V3),
        _ => None,
    }
}

/// `base` + `path` (relative), keeping every segment of `base`.
pub(super) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{trimmed}/{}", path.trim_start_matches('/')));
    url
}
