//! Secrets (passwords, API keys, tokens, passphrases) in a type that will not
//! print itself: `Debug` shows `Secret(***)`, there is no `Display`, and the value
//! is reached only through [`Secret::expose`] at the one place that sends it.

use std::fmt;

/// A secret string (password, API key, token): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
