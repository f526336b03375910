//! `xitc-common`: what every xitc tool shares, so that it exists exactly once.
//!
//! - [`exit`]: the one path from a tool's `run()` result to a stderr line and an
//!   exit code (DESIGN §3). Tools build classified errors with [`exit::usage`],
//!   [`exit::timeout`] or the [`exit::Classify`] extension; everything else is a
//!   plain failure (exit 1).
//! - [`stamp`]: the path of the file that marks a finished conversion.
//! - [`poll`]: the deadline/interval loop behind every "wait until …".
//!
//! Later modules (`cloud`, `ssh`) keep all HTTP and SSH of the workspace here too.

pub mod cloud;
pub mod exit;
pub mod poll;
pub mod secret;
pub mod ssh;
pub mod stamp;
