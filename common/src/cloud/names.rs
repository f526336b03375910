//! The names users know the settings by, in both places they come from
//! (`OS_*` variables, clouds.yaml keys), so a message says which one is
//! missing or wrong in the user's own terms.

/// The user-facing names of the settings, to say which one is missing or wrong.
pub(super) struct Names {
    pub(super) auth_url: &'static str,
    pub(super) username: &'static str,
    pub(super) user_id: &'static str,
    pub(super) password: &'static str,
    pub(super) api_key: &'static str,
    pub(super) application_credential_id: &'static str,
    pub(super) application_credential_name: &'static str,
    pub(super) application_credential_secret: &'static str,
    pub(super) token: &'static str,
}

pub(super) const ENV_NAMES: Names = Names {
    auth_url: "OS_AUTH_URL",
    username: "OS_USERNAME",
    user_id: "OS_USER_ID",
    password: "OS_PASSWORD",
    api_key: "OS_API_KEY or OS_PASSWORD",
    application_credential_id: "OS_APPLICATION_CREDENTIAL_ID",
    application_credential_name: "OS_APPLICATION_CREDENTIAL_NAME",
    application_credential_secret: "OS_APPLICATION_CREDENTIAL_SECRET",
    token: "OS_TOKEN",
};

pub(super) const YAML_NAMES: Names = Names {
    auth_url: "auth.auth_url",
    username: "auth.username",
    user_id: "auth.user_id",
    password: "auth.password",
    api_key: "auth.api_key or auth.password",
    application_credential_id: "auth.application_credential_id",
    application_credential_name: "auth.application_credential_name",
    application_credential_secret: "auth.application_credential_secret",
    token: "auth.token",
};
