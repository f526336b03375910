//! What `xitc-convert` accepts as its first-run arguments (the appliance URL,
//! its name label, the root password). The rules live here, not in
//! xitc-convert, because `test-rs` hands these values to xitc-convert on a
//! node it booted: it checks them with the same rules before it creates
//! anything in the cloud, so a bad value costs nothing instead of a server.

use crate::exit;

/// A URL xitc-convert can download from: http, https or file, with something
/// after the scheme and no spaces or control characters (it travels in a
/// shell command line and in xe's arguments). `what` names it in the error.
/// The URL is read by the `url` crate (RFC 3986 as browsers read it), so
/// what the node later takes a host from is a URL it can parse: an http(s)
/// URL needs a host (an IPv6 literal in brackets), a file URL a path.
pub fn check_url(what: &str, url: &str) -> anyhow::Result<()> {
    let parsed_ok = url::Url::parse(url).is_ok_and(|parsed| match parsed.scheme() {
        "http" | "https" => parsed.host().is_some(),
        "file" => parsed.path().len() > 1,
        _ => false,
    });
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len());
    if !parsed_ok || !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(exit::usage(format!(
            "{what} must be an http://, https:// or file:// URL without spaces, got {}",
            exit::escape_control(&format!("{url:?}"))
        )));
    }
    Ok(())
}

/// The appliance VM's name label: non-empty, without control characters.
pub fn check_label(what: &str, label: &str) -> anyhow::Result<()> {
    if label.trim().is_empty() || label.chars().any(char::is_control) {
        return Err(exit::usage(format!(
            "{what} must be non-empty, without control characters"
        )));
    }
    Ok(())
}

/// The root password: non-empty printable ASCII (spaces allowed), because the
/// installer reads its answerfile as ASCII (Python 2 on XS 8 / XCP-ng 8.3).
/// The error never shows the password.
pub fn check_password(password: &str) -> anyhow::Result<()> {
    if password.is_empty() {
        return Err(exit::usage("the password is empty"));
    }
    if !password.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(exit::usage(
            "the password must be printable ASCII (the installer reads it with Python 2)",
        ));
    }
    Ok(())
}

/// xitc-convert's `--mode` and `--network` together: the direct mode never
/// boots Ubuntu after the install, so it has no bounce. Both names as the
/// command lines spell them (`direct`, `bounce`).
pub fn check_mode_and_network(mode: &str, network: &str) -> anyhow::Result<()> {
    if mode == "direct" && network == "bounce" {
        return Err(exit::usage(
            "--network bounce needs the appliance mode: the direct mode never boots Ubuntu \
             after the install",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Kind, kind_of};

    fn refused(result: anyhow::Result<()>) -> String {
        let error = result.unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        error.to_string()
    }

    #[test]
    fn urls() {
        for good in [
            "http://h/a.xva",
            "https://h:8443/x",
            "file:///srv/a.xva",
            "http://[2001:db8::1]/appliance.xva",
            "http://user:pw@[2001:db8::1]:8080/a.xva",
        ] {
            check_url("URL", good).unwrap();
        }
        for bad in [
            "",
            "http://",
            "ftp://h/x",
            "/srv/a.xva",
            "http://h/a b",
            "http://h/\u{1b}[2J",
            "http://[2001/appliance.xva",
            "http://[2001:db8::1/a",
            "https://:8443/x",
            "file://",
        ] {
            let message = refused(check_url("URL", bad));
            assert!(message.starts_with("URL must be an http://"), "{message}");
            assert!(!message.contains('\u{1b}'), "{message}");
        }
    }

    #[test]
    fn labels() {
        check_label("LABEL", "Devstack VM 1").unwrap();
        for bad in ["", "  ", "a\nb", "a\tb"] {
            assert_eq!(
                refused(check_label("LABEL", bad)),
                "LABEL must be non-empty, without control characters"
            );
        }
    }

    #[test]
    fn passwords_never_show_in_the_error() {
        check_password("s3cret with spaces!").unwrap();
        assert_eq!(refused(check_password("")), "the password is empty");
        for bad in ["pässword", "tab\there", "new\nline"] {
            let message = refused(check_password(bad));
            assert!(message.contains("printable ASCII"), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
    }

    #[test]
    fn the_direct_mode_has_no_bounce() {
        assert!(check_mode_and_network("direct", "bounce").is_err());
        for (mode, network) in [
            ("direct", "dhcp"),
            ("direct", "auto"),
            ("appliance", "bounce"),
        ] {
            assert!(
                check_mode_and_network(mode, network).is_ok(),
                "{mode} {network}"
            );
        }
    }
}
