//! `xitc-common`: what every xitc tool shares, so that it exists exactly once.
//!
//! - [`exit`]: the one path from a tool's `run()` result to a stderr line and an
//!   exit code (README "Exit status"). Tools build classified errors with [`exit::usage`],
//!   [`exit::timeout`] or the [`exit::Classify`] extension; everything else is a
//!   plain failure (exit 1).
//! - [`stamp`]: the path of the file that marks a finished conversion.
//! - [`poll`]: the deadline/interval loop behind every "wait until …", and the
//!   one duration parser.
//! - [`files`]: the one bounded reader of files named by the user.
//! - `hex` (with `download` or `xva`): digests as lower-case hex.
//! - [`retry`]: the one retry policy (back-off, deadline, `Retry-After`, notes)
//!   of the API calls and the downloads.
//! - [`output`]: the one path to stdout: never panics, never ends the work.
//! - [`phase`]: the phase lines xitc-convert writes on the node's consoles and
//!   the tools read back (README "Phase lines").
//!
//! - [`console`]: a node's console log as the cloud hands it out: the lines
//!   not seen before, and what they mean (progress, or a failure).
//! - [`convert_rules`]: what xitc-convert accepts as its first-run arguments,
//!   shared with test-rs, which checks them before it creates anything.
//! - [`secret`]: passwords, keys and tokens that never print themselves.
//! - [`shell`]: quoting for POSIX shell command lines.
//! - `cloud` (feature `cloud`): all HTTP of the workspace, Keystone and Nova.
//! - `ssh` (feature `ssh`): all SSH of the workspace, through libssh2.
//! - `download` (feature `download`): resumable, checked file downloads.
//! - `xva` (feature `xva`): xapi's VM export format, read as xapi's import
//!   reads it and written as its export writes it.
//!
//! `cloud`, `ssh` and `download` are on by default. `xitc-convert` takes only
//! `download` and `xva`: it runs on the node as a static binary (README
//! "Install"), so it links no OpenSSL and no libssh2.

#[cfg(feature = "cloud")]
pub mod cloud;
pub mod console;
pub mod convert_rules;
#[cfg(feature = "download")]
pub mod download;
pub mod exit;
pub mod files;
#[cfg(any(feature = "download", feature = "xva"))]
pub mod hex;
pub mod output;
pub mod phase;
pub mod poll;
#[cfg(any(feature = "cloud", feature = "download"))]
pub mod resolve;
pub mod retry;
pub mod secret;
pub mod shell;
#[cfg(feature = "ssh")]
pub mod ssh;
pub mod stamp;
#[cfg(test)]
mod testing;
#[cfg(feature = "xva")]
pub mod xva;
