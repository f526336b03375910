//! The waits of the states that depend on something outside xitc: xapi
//! finishing its start in dom0, and the cloud's network in Ubuntu (a default
//! route, then name resolution). Each looks every `interval` until `limit`
//! and then fails with what it last saw; nothing is pinged. The clock is a
//! parameter so unit tests run them on a fake one.

use std::time::Duration;

use anyhow::Context as _;
use xitc_common::poll::{Clock, Schedule, poll_until};

use crate::network;
use crate::system::System;

/// xapi writes this when it has finished starting.
pub const XAPI_READY: &str = "/var/run/xapi_init_complete.cookie";

/// How long a wait may take and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub limit: Duration,
    pub interval: Duration,
}

impl Wait {
    fn schedule(self) -> Schedule {
        Schedule::new(self.limit, self.interval)
    }
}

/// Waits until xapi says it is ready.
pub fn xapi_ready(system: &System, clock: &impl Clock, wait: Wait) -> anyhow::Result<()> {
    poll_until(clock, wait.schedule(), |_| {
        Ok(system.exists(XAPI_READY).then_some(()))
    })
    .with_context(|| {
        format!(
            "xapi did not finish starting within {}s ({XAPI_READY} never appeared); \
             see /var/log/xensource.log",
            wait.limit.as_secs()
        )
    })
}

/// Waits until there is a default route.
pub fn default_route(system: &System, clock: &impl Clock, wait: Wait) -> anyhow::Result<()> {
    poll_until(clock, wait.schedule(), |_| {
        Ok(has_default_route(system).then_some(()))
    })
    .with_context(|| format!("no default route appeared within {}s", wait.limit.as_secs()))
}

fn has_default_route(system: &System) -> bool {
    system
        .read_to_string("/proc/net/route")
        .ok()
        .and_then(|routes| network::default_route(&routes))
        .is_some()
}

/// Waits until there is a default route and the host of `url` resolves (the
/// cloud's network is up).
pub fn network_up(
    system: &System,
    clock: &impl Clock,
    wait: Wait,
    url: &str,
) -> anyhow::Result<()> {
    let host = url_host(url);
    let mut last = (false, false);
    poll_until(clock, wait.schedule(), |_| {
        let routed = has_default_route(system);
        let resolved = host
            .as_deref()
            .is_none_or(|host| system.run("getent", &["hosts", host]).is_ok());
        last = (routed, resolved);
        Ok((routed && resolved).then_some(()))
    })
    .with_context(|| {
        format!(
            "the network did not come up within {}s (default route: {}, name resolution: {})",
            wait.limit.as_secs(),
            last.0,
            last.1
        )
    })
}

/// The host name in `url` (by the `url` crate, so user info, ports and IPv6
/// literals are read as RFC 3986 says); none for an address or a `file://`
/// URL, which need no name resolution, and none for what is not a URL (the
/// first run refused that already).
fn url_host(url: &str) -> Option<String> {
    match url::Url::parse(url).ok()?.host()? {
        url::Host::Domain(name) if !name.is_empty() => Some(name.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::path::Path;
    use std::time::Instant;

    struct FakeClock(Cell<Instant>);

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.0.get()
        }
        fn sleep(&self, duration: Duration) {
            self.0.set(self.0.get() + duration);
        }
    }

    const HALF_A_MINUTE: Wait = Wait {
        limit: Duration::from_secs(30),
        interval: Duration::from_secs(2),
    };

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://mirrors.xcp-ng.org/isos/x.iso?https=1"),
            Some("mirrors.xcp-ng.org".to_owned())
        );
        assert_eq!(
            url_host("http://user@host.example:8080/a"),
            Some("host.example".to_owned())
        );
        assert_eq!(
            url_host("http://127.0.0.1:9/a"),
            None,
            "an address needs no name resolution"
        );
        assert_eq!(url_host("file:///srv/a.xva"), None);
        for literal in [
            "http://[2001:db8::1]/appliance.xva",
            "http://[2001:db8::1]:8080/appliance.xva",
            "http://user:pw@[::1]:80/a",
        ] {
            assert_eq!(url_host(literal), None, "{literal}: an address");
        }
        assert_eq!(
            url_host("https://user:p%40ss@Mirror.Example:8443/x.iso"),
            Some("mirror.example".to_owned())
        );
    }

    /// A /proc/net/route with a default route via 192.168.0.1.
    fn write_default_route(root: &Path) {
        std::fs::create_dir_all(root.join("proc/net")).unwrap();
        std::fs::write(
            root.join("proc/net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n",
        )
        .unwrap();
    }

    #[test]
    fn the_network_is_waited_for_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let clock = FakeClock(Cell::new(Instant::now()));
        let url = "http://127.0.0.1:9/a.xva";
        let error = network_up(&system, &clock, HALF_A_MINUTE, url).unwrap_err();
        assert!(
            error.to_string().contains("default route: false"),
            "{error}"
        );
        write_default_route(dir.path());
        // The appliance URL is an address: a route is all it takes.
        network_up(&system, &clock, HALF_A_MINUTE, url).unwrap();
    }

    #[test]
    fn a_default_route_is_waited_for_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let clock = FakeClock(Cell::new(Instant::now()));
        let error = default_route(&system, &clock, HALF_A_MINUTE).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no default route appeared within 30s"),
            "{error}"
        );
        write_default_route(dir.path());
        default_route(&system, &clock, HALF_A_MINUTE).unwrap();
    }

    #[test]
    fn xapi_is_waited_for_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let clock = FakeClock(Cell::new(Instant::now()));
        let start = clock.now();
        let minute = Wait {
            limit: Duration::from_secs(60),
            interval: Duration::from_secs(2),
        };
        let error = xapi_ready(&system, &clock, minute).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("xapi did not finish starting within 60s"),
            "{error}"
        );
        assert_eq!(clock.now() - start, Duration::from_secs(60));
        std::fs::create_dir_all(dir.path().join("var/run")).unwrap();
        std::fs::write(dir.path().join("var/run/xapi_init_complete.cookie"), "").unwrap();
        xapi_ready(&system, &clock, minute).unwrap();
    }
}
