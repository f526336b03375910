//! `[USER@]HOST[:PORT]`, the way users write an SSH destination.

use std::fmt;

use crate::exit;

/// Where to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    /// A name or an address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

/// The user when the target names none (as in 2014).
pub const DEFAULT_USER: &str = "root";
pub const DEFAULT_PORT: u16 = 22;

impl Target {
    /// Parses `[USER@]HOST[:PORT]`; IPv6 addresses go in brackets when a port
    /// follows (`[::1]:2222`), and may stand bare without one (`::1`).
    /// `port_option` is `--port`: used when the target has no port, and an error
    /// when it has a different one.
    pub fn parse(text: &str, port_option: Option<u16>) -> anyhow::Result<Self> {
        let bad = |why: &str| exit::usage(format!("bad target {text:?}: {why}"));
        let (user, rest) = match text.split_once('@') {
            Some((user, rest)) => (user, rest),
            None => (DEFAULT_USER, text),
        };
        if user.is_empty() {
            return Err(bad("the user before '@' is empty"));
        }
        if user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            return Err(bad("the user name has a space, ':' or a control character"));
        }
        let (host, port_text) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("'[' without ']'"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("junk after ']'"))?,
                    ),
                ),
            }
        } else if rest.matches(':').count() > 1 {
            (rest, None) // a bare IPv6 address
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/@[]".contains(c))
        {
            return Err(bad(
                "the host has a space, '/', '@', a bracket or a control character",
            ));
        }
        let target_port = match port_text {
            None => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
            ),
        };
        let port = match (target_port, port_option) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad(&format!("it says port {a} but --port says {b}")));
            }
            (Some(port), _) | (None, Some(port)) => port,
            (None, None) => DEFAULT_PORT,
        };
        Ok(Target {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    /// The host as known_hosts and socket addresses want it: `host`, or
    /// `[host]:port` for a port other than 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == DEFAULT_PORT {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Kind, kind_of};

    fn parse(text: &str) -> Target {
        Target::parse(text, None).unwrap()
    }

    fn target(user: &str, host: &str, port: u16) -> Target {
        Target {
            user: user.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn user_host_and_port_forms() {
        assert_eq!(parse("10.0.0.1"), target("root", "10.0.0.1", 22));
        assert_eq!(parse("ubuntu@node"), target("ubuntu", "node", 22));
        assert_eq!(parse("node:2222"), target("root", "node", 2222));
        assert_eq!(parse("u@[::1]:2222"), target("u", "::1", 2222));
        assert_eq!(parse("[::1]"), target("root", "::1", 22));
        assert_eq!(parse("fe80::1"), target("root", "fe80::1", 22));
        assert_eq!(Target::parse("node", Some(8022)).unwrap().port, 8022);
        assert_eq!(Target::parse("node:8022", Some(8022)).unwrap().port, 8022);
    }

    #[test]
    fn known_hosts_names() {
        assert_eq!(parse("h").known_hosts_name(), "h");
        assert_eq!(parse("h:2222").known_hosts_name(), "[h]:2222");
        assert_eq!(parse("[::1]:2222").to_string(), "root@[::1]:2222");
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for (text, port, why) in [
            ("", None, "host is empty"),
            ("@host", None, "user before '@' is empty"),
            ("user@", None, "host is empty"),
            ("host:", None, "port is not a number"),
            ("host:0", None, "port is not a number"),
            ("host:99999", None, "port is not a number"),
            ("[::1", None, "without ']'"),
            ("[::1]x", None, "junk after"),
            ("ho st", None, "has a space"),
            ("host:22", Some(2222), "--port says 2222"),
        ] {
            let error = Target::parse(text, port).unwrap_err();
            assert_eq!(kind_of(&error), Kind::Usage);
            assert!(error.to_string().contains(why), "{text:?}: {error}");
        }
    }
}
