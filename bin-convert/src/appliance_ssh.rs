//! Commands on the appliance, from dom0, over SSH as the appliance's user
//! with dom0's own key, [`KEY`]; and the authorized_keys lines both sides
//! exchange.
//!
//! Why the `ssh` program and not `common::ssh`: xitc-convert runs programs
//! through PATH ([`crate::system`]); this binary is built static without
//! OpenSSL (which libssh2 needs); and every dom0 has OpenSSH (4.3 on 6.2, 7.4
//! on 7.x and 8.x). Host keys are not checked: the appliance is reached on the
//! host-internal network, which only this host's VMs can answer on, its host
//! key is new after each import, and no dom0 OpenSSH has `accept-new`. ssh
//! gets its key's path through the sandbox (it is the real program in the
//! tests too).

use anyhow::Context as _;
use xitc_common::shell::shell_quote;

use crate::system::System;

/// dom0's private key for the appliance (the public half beside it, `.pub`).
pub const KEY: &str = "/root/.ssh/xitc-dom0-key";

/// Runs commands on the appliance.
#[derive(Debug)]
pub struct Shell<'a> {
    system: &'a System,
    /// `user@address`.
    login: String,
}

impl<'a> Shell<'a> {
    pub fn new(system: &'a System, user: &str, address: &str) -> Self {
        Shell {
            system,
            login: format!("{user}@{address}"),
        }
    }

    /// Runs `argv` on the appliance (each argument quoted for its shell, so
    /// values with spaces, quotes or `;` arrive as one argument) with `input`
    /// on its stdin; its stdout.
    pub fn run(&self, argv: &[&str], input: &str) -> anyhow::Result<String> {
        let key = self.system.path(KEY);
        let key = key.to_str().context("the key path is not UTF-8")?;
        let command: Vec<String> = argv.iter().map(|arg| shell_quote(arg)).collect();
        let command = command.join(" ");
        self.system.run_with_input(
            "ssh",
            &[
                "-F",
                "/dev/null",
                "-i",
                key,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                &self.login,
                &command,
            ],
            input,
        )
    }

    /// Whether `argv` succeeds on the appliance (for `test -f` and the like).
    pub fn succeeds(&self, argv: &[&str]) -> bool {
        self.run(argv, "").is_ok()
    }
}

/// ssh-keygen's arguments for a new key without passphrase: RSA, which every
/// OpenSSH on both ends reads (XenServer 6.2's 4.3 knows no Ed25519).
pub fn keygen_args<'a>(comment: &'a str, file: &'a str) -> [&'a str; 11] {
    [
        "-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", comment, "-f", file,
    ]
}

/// The key part of an authorized_keys line (type and base64), for comparing
/// keys whatever their comments.
pub fn key_of(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let blob = fields.next()?;
    (!kind.starts_with('#')).then_some((kind, blob))
}

/// `keys` with `public` added, unless a line has that key already.
pub fn with_key_once(keys: &str, public: &str) -> String {
    let wanted = key_of(public);
    let mut text = keys.to_owned();
    if wanted.is_none() || keys.lines().any(|line| key_of(line) == wanted) {
        return text;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(public.trim());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1 domzero@appliance";

    #[test]
    fn a_key_is_added_once_whatever_its_comment() {
        let once = with_key_once("ssh-ed25519 AAAAC3Nz user@laptop", A);
        assert_eq!(once, format!("ssh-ed25519 AAAAC3Nz user@laptop\n{A}\n"));
        assert_eq!(with_key_once(&once, A), once);
        assert_eq!(
            with_key_once(
                &once,
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1 other comment"
            ),
            once
        );
        assert_eq!(with_key_once("", A), format!("{A}\n"));
        assert_eq!(with_key_once("x\n", "  \n"), "x\n", "no key, nothing added");
        assert_eq!(
            with_key_once("# ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1\n", A),
            format!("# ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1\n{A}\n"),
            "a commented-out key does not count"
        );
    }
}
