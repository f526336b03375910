//! Where the cloud credentials come from, as the OpenStack clients do it.
//!
//! Order (first match wins; written down because users mix the two):
//! 1. `OS_CLOUD` names a cloud in clouds.yaml;
//! 2. else `OS_AUTH_URL` is set: the `OS_*` variables;
//! 3. else a clouds.yaml that defines exactly one cloud: that cloud.
//!
//! clouds.yaml is the first of `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
//! `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`; secure.yaml
//! (`OS_CLIENT_SECURE_FILE` or the same folders) is merged over it, so passwords can
//! live apart. `OS_REGION_NAME`, `OS_INTERFACE` and `OS_COMPUTE_SERVICE_NAME` apply
//! in every case (they pick an endpoint, not an identity).
//!
//! Everything here is pure over an [`Env`] snapshot, so it is tested without
//! touching the process environment. The precedence rules are here, tested
//! case by case beside the code that makes them; what they build on is in leaf
//! modules that import nothing of this one: `env.rs` (the snapshot),
//! `model.rs` (the types and the auth URL's rules), `names.rs` (what users
//! call each setting), `credential.rs` (the credential choice) and
//! `clouds_yaml.rs` (reading the YAML files).

use url::Url;

use super::clouds_yaml::{
    CloudsYaml, cloud_names, cloud_settings, clouds_yaml_candidates, display_paths,
    read_clouds_yaml,
};
use super::credential::credential;
use super::env::{Env, Settings};
use super::model::{
    Credential, IdentityVersion, Interface, NameOrId, join, parse_auth_url, parse_identity_version,
    version_from_url,
};
use super::names::{ENV_NAMES, Names, YAML_NAMES};
use crate::exit::{self, Classify as _};

/// Everything needed to get a token and find the compute endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    pub auth_url: Url,
    /// Set by the URL (`…/v2.0`, `…/v3`) or `OS_IDENTITY_API_VERSION`; `None` means
    /// ask the server (version discovery).
    pub identity_version: Option<IdentityVersion>,
    pub credential: Credential,
    pub project: Option<NameOrId>,
    pub user_domain: NameOrId,
    pub project_domain: NameOrId,
    pub region: Option<String>,
    pub interface: Interface,
    pub compute_service_name: Option<String>,
    /// Where this came from, for messages: "OS_* variables" or "cloud 'x' in PATH".
    pub source: String,
    /// What the tool should print as warnings before it starts: a clouds.yaml
    /// or secure.yaml that holds this cloud's secret and others can read.
    pub warnings: Vec<String>,
}

impl CloudConfig {
    /// Resolves the configuration as the module doc describes.
    pub fn load(env: &Env) -> anyhow::Result<Self> {
        if let Some(cloud) = env.get("OS_CLOUD") {
            let yaml = read_clouds_yaml(env)?.ok_or_else(|| {
                exit::usage(format!(
                    "OS_CLOUD is {cloud:?} but no clouds.yaml was found (looked in {})",
                    display_paths(&clouds_yaml_candidates(env, "clouds.yaml"))
                ))
            })?;
            let settings = cloud_settings(&yaml.clouds, cloud).ok_or_else(|| {
                exit::usage(format!(
                    "OS_CLOUD is {cloud:?} but {} defines no such cloud (it has: {})",
                    yaml.path.display(),
                    cloud_names(&yaml.clouds).join(", ")
                ))
            })?;
            return Self::from_clouds_yaml(&yaml, cloud, &settings, env);
        }
        if env.get("OS_AUTH_URL").is_some() {
            return Self::from_settings(
                &env_settings(env),
                env,
                &ENV_NAMES,
                "OS_* variables".into(),
            );
        }
        if let Some(yaml) = read_clouds_yaml(env)? {
            let names = cloud_names(&yaml.clouds);
            if let [only] = names.as_slice() {
                let settings = cloud_settings(&yaml.clouds, only).unwrap_or_default();
                return Self::from_clouds_yaml(&yaml, only, &settings, env);
            }
            return Err(exit::usage(format!(
                "no cloud chosen: set OS_CLOUD to one of {} (from {}), or set OS_AUTH_URL",
                names.join(", "),
                yaml.path.display()
            )));
        }
        Err(exit::usage(
            "no cloud credentials: set OS_CLOUD (with a clouds.yaml) or OS_AUTH_URL, \
             OS_USERNAME and OS_PASSWORD",
        ))
    }

    /// The config of `cloud` in `yaml` (its `settings`), with a warning for
    /// each file holding its secret that others can read.
    fn from_clouds_yaml(
        yaml: &CloudsYaml,
        cloud: &str,
        settings: &Settings,
        env: &Env,
    ) -> anyhow::Result<Self> {
        let source = format!("cloud '{cloud}' in {}", yaml.path.display());
        Ok(CloudConfig {
            warnings: yaml.secret_warnings(cloud),
            ..Self::from_settings(settings, env, &YAML_NAMES, source)?
        })
    }

    fn from_settings(
        settings: &Settings,
        env: &Env,
        names: &Names,
        source: String,
    ) -> anyhow::Result<Self> {
        let get = |key: &str| {
            settings
                .get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let missing = |what: &str| exit::usage(format!("{what} is not set ({source})"));

        let auth_url_text = get("auth_url").ok_or_else(|| missing(names.auth_url))?;
        let auth_url = parse_auth_url(auth_url_text)
            .or_usage(|| format!("{} {auth_url_text:?} is not a usable URL", names.auth_url))?;
        let credential = credential(&get, names, &source)?;
        let from_url = version_from_url(&auth_url);
        let identity_version = match get("identity_api_version") {
            Some(version) => Some(parse_identity_version(version).ok_or_else(|| {
                exit::usage(format!(
                    "identity API version {version:?} is not supported ({source}); use 2 or 3"
                ))
            })?),
            None => from_url,
        };
        // An auth URL without a version (`http://host:5000`, devstack's
        // `http://host/identity`) plus a version setting is how devstack's
        // openrc and many clouds' rc files are written: the version goes on
        // the URL, as the OpenStack clients do. A URL that names another
        // version than the setting is a mistake the user should see.
        let auth_url = match (identity_version, from_url) {
            (Some(version), None) => join(&auth_url, version.path_segment()),
            (Some(version), Some(in_url)) if version != in_url => {
                return Err(exit::usage(format!(
                    "{} {auth_url_text:?} names Identity {} but the identity API version \
                     setting says {} ({source})",
                    names.auth_url,
                    in_url.path_segment(),
                    version.path_segment()
                )));
            }
            _ => auth_url,
        };
        let needs = match credential {
            Credential::RackspaceApiKey { .. } => Some((IdentityVersion::V2, "Rackspace API-key")),
            Credential::ApplicationCredential { .. } => {
                Some((IdentityVersion::V3, "application credential"))
            }
            Credential::Password { .. } | Credential::Token { .. } => None,
        };
        if let Some((needed, what)) = needs
            && identity_version.is_some_and(|version| version != needed)
        {
            return Err(exit::usage(format!(
                "{what} authentication needs Identity {}, not {} ({source})",
                needed.path_segment(),
                identity_version.map_or("", IdentityVersion::path_segment)
            )));
        }

        let project = get("project_id")
            .or_else(|| get("tenant_id"))
            .map(|id| NameOrId::Id(id.to_owned()))
            .or_else(|| {
                get("project_name")
                    .or_else(|| get("tenant_name"))
                    .map(|name| NameOrId::Name(name.to_owned()))
            });
        let domain = |id_key: &str, name_key: &str| {
            get(id_key)
                .map(|id| NameOrId::Id(id.to_owned()))
                .or_else(|| get(name_key).map(|name| NameOrId::Name(name.to_owned())))
                .or_else(|| get("domain_id").map(|id| NameOrId::Id(id.to_owned())))
                .or_else(|| get("domain_name").map(|name| NameOrId::Name(name.to_owned())))
                .unwrap_or_else(|| NameOrId::Name("Default".to_owned()))
        };

        let interface_text = env.get("OS_INTERFACE").or_else(|| get("interface"));
        let interface = match interface_text {
            None => Interface::Public,
            Some(text) => Interface::parse(text).ok_or_else(|| {
                exit::usage(format!(
                    "interface {text:?} is not one of public, internal, admin"
                ))
            })?,
        };

        Ok(CloudConfig {
            auth_url,
            identity_version,
            credential,
            project,
            user_domain: domain("user_domain_id", "user_domain_name"),
            project_domain: domain("project_domain_id", "project_domain_name"),
            region: env
                .get("OS_REGION_NAME")
                .or_else(|| get("region_name"))
                .map(str::to_owned),
            interface,
            compute_service_name: env.get("OS_COMPUTE_SERVICE_NAME").map(str::to_owned),
            source,
            warnings: Vec::new(),
        })
    }
}

/// The `OS_*` variables as clouds.yaml-style settings.
fn env_settings(env: &Env) -> Settings {
    let rackspace = env.get("OS_AUTH_SYSTEM") == Some("rackspace");
    let pairs: &[(&str, &[&str])] = &[
        ("auth_url", &["OS_AUTH_URL"]),
        ("username", &["OS_USERNAME"]),
        ("user_id", &["OS_USER_ID"]),
        ("password", &["OS_PASSWORD"]),
        (
            "application_credential_id",
            &["OS_APPLICATION_CREDENTIAL_ID"],
        ),
        (
            "application_credential_name",
            &["OS_APPLICATION_CREDENTIAL_NAME"],
        ),
        (
            "application_credential_secret",
            &["OS_APPLICATION_CREDENTIAL_SECRET"],
        ),
        ("token", &["OS_TOKEN"]),
        ("api_key", &["OS_API_KEY"]),
        ("project_id", &["OS_PROJECT_ID", "OS_TENANT_ID"]),
        ("project_name", &["OS_PROJECT_NAME", "OS_TENANT_NAME"]),
        ("user_domain_id", &["OS_USER_DOMAIN_ID"]),
        ("user_domain_name", &["OS_USER_DOMAIN_NAME"]),
        ("project_domain_id", &["OS_PROJECT_DOMAIN_ID"]),
        ("project_domain_name", &["OS_PROJECT_DOMAIN_NAME"]),
        ("domain_id", &["OS_DOMAIN_ID"]),
        ("domain_name", &["OS_DOMAIN_NAME"]),
        ("identity_api_version", &["OS_IDENTITY_API_VERSION"]),
        ("auth_type", &["OS_AUTH_TYPE"]),
    ];
    let mut settings: Settings = pairs
        .iter()
        .filter_map(|(key, vars)| Some(((*key).to_owned(), env.first(vars)?.to_owned())))
        .collect();
    if rackspace && !settings.contains_key("auth_type") {
        settings.insert("auth_type".into(), "rackspace_apikey".into());
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Kind, kind_of};
    use crate::secret::Secret;
    use std::path::Path;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied(), Path::new("/nonexistent-cwd"))
    }

    fn usage_error(env: &Env) -> String {
        let error = CloudConfig::load(env).unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage, "{error:#}");
        format!("{error:#}")
    }

    const V2: &[(&str, &str)] = &[
        ("OS_AUTH_URL", "http://127.0.0.1:5000/v2.0"),
        ("OS_USERNAME", "alice"),
        ("OS_PASSWORD", "s3cret"),
        ("OS_TENANT_NAME", "tenant-a"),
    ];

    #[test]
    fn v2_password_from_env_with_tenant_spelling() {
        let config = CloudConfig::load(&env(V2)).unwrap();
        assert_eq!(config.identity_version, Some(IdentityVersion::V2));
        assert_eq!(config.project, Some(NameOrId::Name("tenant-a".into())));
        assert_eq!(
            config.credential,
            Credential::Password {
                username: "alice".into(),
                password: Secret::new("s3cret")
            }
        );
        assert_eq!(config.interface, Interface::Public);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn project_spelling_wins_over_tenant_and_id_over_name() {
        let mut pairs = V2.to_vec();
        pairs.push(("OS_PROJECT_NAME", "project-b"));
        let config = CloudConfig::load(&env(&pairs)).unwrap();
        assert_eq!(config.project, Some(NameOrId::Name("project-b".into())));
        pairs.push(("OS_TENANT_ID", "123"));
        let config = CloudConfig::load(&env(&pairs)).unwrap();
        assert_eq!(config.project, Some(NameOrId::Id("123".into())));
    }

    #[test]
    fn rackspace_api_key_from_either_variable() {
        for (key_var, auth_var, auth_value) in [
            ("OS_API_KEY", "OS_AUTH_SYSTEM", "rackspace"),
            ("OS_PASSWORD", "OS_AUTH_TYPE", "rackspace_apikey"),
        ] {
            let config = CloudConfig::load(&env(&[
                ("OS_AUTH_URL", "https://identity.example/v2.0/"),
                ("OS_USERNAME", "bob"),
                (key_var, "KEY"),
                (auth_var, auth_value),
            ]))
            .unwrap();
            assert_eq!(
                config.credential,
                Credential::RackspaceApiKey {
                    username: "bob".into(),
                    api_key: Secret::new("KEY")
                }
            );
        }
    }

    #[test]
    fn version_comes_from_the_url_or_is_discovered() {
        let with_url = |url| {
            let mut pairs = V2.to_vec();
            pairs[0] = ("OS_AUTH_URL", url);
            CloudConfig::load(&env(&pairs)).unwrap().identity_version
        };
        assert_eq!(with_url("http://h/identity/v3"), Some(IdentityVersion::V3));
        assert_eq!(with_url("http://h/v2.0/"), Some(IdentityVersion::V2));
        assert_eq!(with_url("http://h:5000/"), None);
        assert_eq!(with_url("http://h/identity"), None);
    }

    #[test]
    fn v3_domains_default_and_can_be_named() {
        let mut pairs = V2.to_vec();
        pairs[0] = ("OS_AUTH_URL", "http://h/v3");
        let config = CloudConfig::load(&env(&pairs)).unwrap();
        assert_eq!(config.user_domain, NameOrId::Name("Default".into()));
        pairs.push(("OS_USER_DOMAIN_ID", "d-1"));
        pairs.push(("OS_PROJECT_DOMAIN_NAME", "Pdom"));
        let config = CloudConfig::load(&env(&pairs)).unwrap();
        assert_eq!(config.user_domain, NameOrId::Id("d-1".into()));
        assert_eq!(config.project_domain, NameOrId::Name("Pdom".into()));
    }

    #[test]
    fn missing_settings_are_named() {
        assert!(usage_error(&env(&[])).contains("OS_CLOUD"));
        for (index, expected) in [(1, "OS_USERNAME"), (2, "OS_PASSWORD")] {
            let mut pairs = V2.to_vec();
            pairs.remove(index);
            assert!(usage_error(&env(&pairs)).contains(expected));
        }
        let mut pairs = V2.to_vec();
        pairs.push(("OS_AUTH_TYPE", "rackspace_apikey"));
        pairs.remove(2);
        assert!(usage_error(&env(&pairs)).contains("OS_API_KEY"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for (key, value, expected) in [
            ("OS_AUTH_URL", "not a url", "not a usable URL"),
            ("OS_AUTH_URL", "ftp://h/v2.0", "scheme"),
            ("OS_INTERFACE", "sideways", "interface"),
            ("OS_AUTH_TYPE", "v3oidcpassword", "not supported"),
            ("OS_IDENTITY_API_VERSION", "4", "version"),
        ] {
            let mut pairs: Vec<_> = V2.iter().copied().filter(|(k, _)| *k != key).collect();
            pairs.push((key, value));
            let message = usage_error(&env(&pairs));
            assert!(message.contains(expected), "{key}={value}: {message}");
            assert!(!message.contains("s3cret"));
        }
    }

    #[test]
    fn endpoint_choices_come_from_env() {
        let mut pairs = V2.to_vec();
        pairs.extend([
            ("OS_REGION_NAME", "IAD"),
            ("OS_INTERFACE", "internalURL"),
            ("OS_COMPUTE_SERVICE_NAME", "nova"),
        ]);
        let config = CloudConfig::load(&env(&pairs)).unwrap();
        assert_eq!(config.region.as_deref(), Some("IAD"));
        assert_eq!(config.interface, Interface::Internal);
        assert_eq!(config.compute_service_name.as_deref(), Some("nova"));
    }

    const V3_BASE: &[(&str, &str)] = &[
        ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
        ("OS_PROJECT_NAME", "demo"),
    ];

    fn with(base: &[(&'static str, &'static str)], more: &[(&'static str, &'static str)]) -> Env {
        env(&base.iter().chain(more).copied().collect::<Vec<_>>())
    }

    #[test]
    fn application_credentials_by_id_or_by_name_with_their_user() {
        // Only the id and the secret, as clouds hand them out: no username asked for.
        let config = CloudConfig::load(&with(
            &[("OS_AUTH_URL", "http://127.0.0.1:5000/v3")],
            &[
                ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s3"),
            ],
        ))
        .unwrap();
        assert_eq!(
            config.credential,
            Credential::ApplicationCredential {
                id: Some("ac-1".into()),
                name: None,
                user: None,
                secret: Secret::new("s3"),
            }
        );
        let config = CloudConfig::load(&with(
            V3_BASE,
            &[
                ("OS_AUTH_TYPE", "v3applicationcredential"),
                ("OS_APPLICATION_CREDENTIAL_NAME", "ci"),
                ("OS_USERNAME", "carol"),
                ("OS_USER_DOMAIN_NAME", "Users"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s3"),
            ],
        ))
        .unwrap();
        assert!(matches!(
            &config.credential,
            Credential::ApplicationCredential { name: Some(name), user: Some(NameOrId::Name(user)), .. }
                if name == "ci" && user == "carol"
        ));
        let message = usage_error(&with(
            V3_BASE,
            &[
                ("OS_APPLICATION_CREDENTIAL_NAME", "ci"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s3"),
            ],
        ));
        assert!(
            message.contains("needs OS_APPLICATION_CREDENTIAL_ID (or OS_APPLICATION_CREDENTIAL_NAME with OS_USERNAME or OS_USER_ID)"),
            "{message}"
        );
        let message = usage_error(&with(
            &[("OS_AUTH_URL", "http://127.0.0.1:5000/v2.0")],
            &[
                ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s3"),
            ],
        ));
        assert!(
            message.contains("application credential authentication needs Identity v3, not v2.0"),
            "{message}"
        );
        assert!(!message.contains("s3"), "{message}");
    }

    #[test]
    fn a_token_from_the_environment_or_clouds_yaml() {
        let config = CloudConfig::load(&with(V3_BASE, &[("OS_TOKEN", "gAAAA-token")])).unwrap();
        assert_eq!(
            config.credential,
            Credential::Token {
                token: Secret::new("gAAAA-token")
            }
        );
        let dir = yaml_dir(
            "clouds:\n  t:\n    auth_type: v3token\n    auth:\n      auth_url: http://h/v3\n      \
             token: tok\n      project_id: p1\n",
            None,
        );
        let config = CloudConfig::load(&Env::from_pairs([("OS_CLOUD", "t")], dir.path())).unwrap();
        assert_eq!(
            config.credential,
            Credential::Token {
                token: Secret::new("tok")
            }
        );
        let message = usage_error(&with(V3_BASE, &[("OS_AUTH_TYPE", "v3token")]));
        assert!(message.contains("OS_TOKEN is not set"), "{message}");
    }

    #[test]
    fn a_version_setting_goes_onto_an_unversioned_auth_url() {
        let auth_url = |url: &'static str, version: Option<&'static str>| {
            let mut pairs = vec![
                ("OS_AUTH_URL", url),
                ("OS_USERNAME", "u"),
                ("OS_PASSWORD", "p"),
            ];
            pairs.extend(version.map(|version| ("OS_IDENTITY_API_VERSION", version)));
            CloudConfig::load(&env(&pairs)).map(|config| config.auth_url.to_string())
        };
        for (url, version, expected) in [
            ("http://h:5000", Some("3"), "http://h:5000/v3"),
            ("http://h:5000/", Some("3"), "http://h:5000/v3"),
            ("http://h/identity", Some("3"), "http://h/identity/v3"),
            ("http://h/identity/", Some("2.0"), "http://h/identity/v2.0"),
            ("http://h:5000/v3/", Some("3"), "http://h:5000/v3/"),
            ("http://h:5000/v3", None, "http://h:5000/v3"),
            ("http://h:5000", None, "http://h:5000/"),
        ] {
            assert_eq!(
                auth_url(url, version).unwrap(),
                expected,
                "{url} {version:?}"
            );
        }
        let error = auth_url("http://h:5000/v2.0", Some("3")).unwrap_err();
        assert!(
            format!("{error:#}")
                .contains("names Identity v2.0 but the identity API version setting says v3"),
            "{error:#}"
        );
    }

    fn yaml_dir(clouds: &str, secure: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), clouds).unwrap();
        if let Some(secure) = secure {
            std::fs::write(dir.path().join("secure.yaml"), secure).unwrap();
        }
        dir
    }

    const CLOUDS: &str = "
clouds:
  rax:
    auth_type: rackspace_apikey
    auth:
      auth_url: https://identity.api.rackspacecloud.com/v2.0/
      username: carol
    region_name: DFW
  dev:
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: dave
      password: pw
      project_name: demo
      user_domain_name: Users
    identity_api_version: 3
    interface: internal
";

    #[test]
    fn os_cloud_picks_a_cloud_and_secure_yaml_is_merged() {
        let dir = yaml_dir(
            CLOUDS,
            Some("clouds:\n  rax:\n    auth:\n      api_key: SECRET\n"),
        );
        let env = Env::from_pairs([("OS_CLOUD", "rax")], dir.path());
        let config = CloudConfig::load(&env).unwrap();
        assert_eq!(
            config.credential,
            Credential::RackspaceApiKey {
                username: "carol".into(),
                api_key: Secret::new("SECRET")
            }
        );
        assert_eq!(config.region.as_deref(), Some("DFW"));
        assert!(config.source.contains("cloud 'rax'"));

        let env = Env::from_pairs([("OS_CLOUD", "dev"), ("OS_REGION_NAME", "R2")], dir.path());
        let config = CloudConfig::load(&env).unwrap();
        assert_eq!(config.identity_version, Some(IdentityVersion::V3));
        assert_eq!(config.user_domain, NameOrId::Name("Users".into()));
        assert_eq!(config.interface, Interface::Internal);
        assert_eq!(config.region.as_deref(), Some("R2"));
    }

    #[test]
    fn a_secret_in_a_file_others_can_read_is_warned_about_naming_the_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = yaml_dir(
            CLOUDS,
            Some("clouds:\n  rax:\n    auth:\n      api_key: SECRET\n"),
        );
        let chmod = |file: &str, mode| {
            std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        let warnings = |cloud| {
            CloudConfig::load(&Env::from_pairs([("OS_CLOUD", cloud)], dir.path()))
                .unwrap()
                .warnings
        };
        let warning = |file: &str, mode| {
            format!(
                "{file} {} can be read by others (mode {mode:04o}): chmod 600 it",
                dir.path().join(file).display()
            )
        };
        chmod("clouds.yaml", 0o644);
        chmod("secure.yaml", 0o640);
        // rax's secret is in secure.yaml only; dev's password in clouds.yaml.
        assert_eq!(warnings("rax"), [warning("secure.yaml", 0o640)]);
        assert_eq!(warnings("dev"), [warning("clouds.yaml", 0o644)]);
        chmod("clouds.yaml", 0o600);
        chmod("secure.yaml", 0o600);
        assert_eq!(warnings("rax"), Vec::<String>::new());
        assert_eq!(warnings("dev"), Vec::<String>::new());
        // A world-readable clouds.yaml without secrets (they live in
        // secure.yaml, as the OpenStack docs advise) is no reason to warn.
        chmod("clouds.yaml", 0o644);
        assert_eq!(warnings("rax"), Vec::<String>::new());
    }

    #[test]
    fn a_single_cloud_is_the_default_and_several_need_a_choice() {
        let single = yaml_dir(
            "clouds:\n  only:\n    auth:\n      auth_url: http://h/v2.0\n      username: u\n      password: p\n",
            None,
        );
        let config = CloudConfig::load(&Env::from_pairs([], single.path())).unwrap();
        assert!(config.source.contains("'only'"));

        let several = yaml_dir(CLOUDS, None);
        let message = usage_error(&Env::from_pairs([], several.path()));
        assert!(message.contains("rax, dev"), "{message}");
    }

    #[test]
    fn clouds_yaml_problems_are_usage_errors() {
        let dir = yaml_dir("clouds: [unclosed", None);
        let message = usage_error(&Env::from_pairs([("OS_CLOUD", "x")], dir.path()));
        assert!(message.contains("not valid YAML"), "{message}");

        let dir = yaml_dir(CLOUDS, None);
        let message = usage_error(&Env::from_pairs([("OS_CLOUD", "nope")], dir.path()));
        assert!(
            message.contains("no such cloud") && message.contains("rax"),
            "{message}"
        );

        let message = usage_error(&Env::from_pairs([("OS_CLOUD", "rax")], dir.path()));
        assert!(message.contains("auth.api_key"), "{message}");

        let empty = tempfile::tempdir().unwrap();
        let message = usage_error(&Env::from_pairs(
            [
                ("OS_CLOUD", "x"),
                ("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml"),
            ],
            empty.path(),
        ));
        assert!(message.contains("no clouds.yaml"), "{message}");
    }
}
