//! Name resolution for the workspace's HTTP (ureq, in [`crate::cloud`] and
//! [`crate::download`]) that tells a name that does not exist from a lookup
//! that may work later.
//!
//! ureq's own resolver asks `std`, which reports every failed lookup as an
//! `Io` error without saying which one it was: "no such name" (`EAI_NONAME`,
//! `EAI_NODATA`: a typo in an auth URL) looked the same as "try again"
//! (`EAI_AGAIN`: the DNS server is not there yet), and a typo was retried
//! until `--timeout`. [`Resolver`] lets ureq's resolver do the lookup; when it
//! fails, it asks getaddrinfo once more through `dns-lookup`, which keeps the
//! error's kind, and answers `HostNotFound` (final, README "Exit status") for
//! a name that does not exist, the `Io` error (transient) otherwise.

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs};
use ureq::unversioned::transport::NextTimeout;

/// ureq's resolver with the failed lookups classified (the module's doc).
#[derive(Debug, Default)]
pub struct Resolver;

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match DefaultResolver::default().resolve(uri, config, timeout) {
            Err(ureq::Error::Io(error)) => Err(match uri.host() {
                Some(host) if name_does_not_exist(host) => ureq::Error::HostNotFound,
                _ => ureq::Error::Io(error),
            }),
            other => other,
        }
    }
}

/// Whether getaddrinfo says `host` has no address at all (as opposed to a
/// lookup that failed for now).
pub fn name_does_not_exist(host: &str) -> bool {
    use dns_lookup::LookupErrorKind::{NoData, NoName};
    dns_lookup::getaddrinfo(Some(host), None, None)
        .err()
        .is_some_and(|error| matches!(error.kind(), NoName | NoData))
}

/// An agent with [`Resolver`] and ureq's own connector (TCP, then rustls).
pub fn agent(config: ureq::config::Config) -> ureq::Agent {
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        Resolver,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_exist_here_are_not_said_to_be_missing() {
        // /etc/hosts answers for localhost: no network is asked.
        assert!(!name_does_not_exist("localhost"));
    }
}
