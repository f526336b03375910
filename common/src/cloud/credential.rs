//! Which credential a cloud's settings describe, as openstacksdk chooses it
//! (an explicit auth type, else what is set: a token, an application
//! credential's secret, a password).

use super::model::{Credential, NameOrId, Secret};
use super::names::Names;
use crate::exit;

/// The credential the settings describe (`get` reads one setting).
pub(super) fn credential<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    names: &Names,
    source: &str,
) -> anyhow::Result<Credential> {
    let missing = |what: &str| exit::usage(format!("{what} is not set ({source})"));
    let username = || {
        get("username")
            .map(str::to_owned)
            .ok_or_else(|| missing(names.username))
    };
    // Without an auth type, what is set decides, as in openstacksdk: a
    // token, else an application credential's secret, else a password.
    let auth_type = get("auth_type").unwrap_or_else(|| {
        if get("token").is_some() {
            "token"
        } else if get("application_credential_secret").is_some() {
            "v3applicationcredential"
        } else {
            "password"
        }
    });
    Ok(match auth_type {
        "rackspace" | "rackspace_apikey" | "rax_apikey" | "apikey" => Credential::RackspaceApiKey {
            username: username()?,
            api_key: Secret::new(
                get("api_key")
                    .or_else(|| get("password"))
                    .ok_or_else(|| missing(names.api_key))?,
            ),
        },
        "password" | "v2password" | "v3password" => Credential::Password {
            username: username()?,
            password: Secret::new(get("password").ok_or_else(|| missing(names.password))?),
        },
        "v3applicationcredential" | "applicationcredential" => {
            let secret = get("application_credential_secret")
                .ok_or_else(|| missing(names.application_credential_secret))?;
            let id = get("application_credential_id").map(str::to_owned);
            let name = get("application_credential_name").map(str::to_owned);
            let user = get("user_id")
                .map(|id| NameOrId::Id(id.to_owned()))
                .or_else(|| get("username").map(|name| NameOrId::Name(name.to_owned())));
            if id.is_none() && (name.is_none() || user.is_none()) {
                return Err(exit::usage(format!(
                    "an application credential needs {} (or {} with {} or {}) ({source})",
                    names.application_credential_id,
                    names.application_credential_name,
                    names.username,
                    names.user_id
                )));
            }
            Credential::ApplicationCredential {
                id,
                name,
                user,
                secret: Secret::new(secret),
            }
        }
        "v3token" | "v2token" | "token" => Credential::Token {
            token: Secret::new(get("token").ok_or_else(|| missing(names.token))?),
        },
        other => {
            return Err(exit::usage(format!(
                "auth type {other:?} is not supported ({source}); use password, \
                 v3applicationcredential, token or rackspace_apikey"
            )));
        }
    })
}
