//! `xitc-convert PASSWORD APPLIANCE_URL APPLIANCE_NAME_LABEL`: runs on the cloud
//! node, as root, and turns it into a XenServer host across several reboots.
//! It re-runs itself on every boot and does the work of the state it finds in
//! `<install dir>/xitc-convert.state`.
//!
//! The modules form layers, each importing only layers below it
//! (ARCHITECTURE.md has the table, and `tests/layers.rs` holds the code to
//! it): the CLI and commands; the runner; the plan (the states and their
//! steps, as data); one file of steps per state; the steps more than one state
//! runs; the step context; the base (what the node looks like, the files
//! xitc renders, the records it keeps); and the sandbox layer, [`system`], at
//! the bottom.

// The layers, top to bottom (ARCHITECTURE.md; tests/layers.rs keeps them).
// 1-2: the command line; the commands
pub mod cli;
pub mod commands;
// 3: running a state
pub mod runner;
// 4: the states and their steps, as data
pub mod plan;
// 5: each state's own steps
pub mod steps;
// 6: steps more than one state runs
pub mod shared;
// 7: a step and its context
pub mod work;
// 8: operations on the node
pub mod appliance_ssh;
pub mod bootloader;
pub mod cloud_network;
pub mod handover;
pub mod preflight;
pub mod render;
pub mod waits;
pub mod xe;
// 9: records and facts
pub mod config;
pub mod installer;
pub mod log;
pub mod paths;
pub mod settings;
pub mod state;
// 10: the config drive; the node's disk layout, and the plan for it
pub mod config_drive;
pub mod layout;
// 11: the live node, read, and the ISO 9660 reader
pub mod console;
pub mod disk;
pub mod iso;
pub mod network;
pub mod platform;
// 12: the sandbox
pub mod system;

pub use cli::{DEFAULT_ISO_URL, run};
pub use log::TOOL;
