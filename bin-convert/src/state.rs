//! The conversion's states, with their 2014 names (a state file written by the
//! 2014 script means the same thing), and the state file.

use std::fmt;
use std::path::Path;

use crate::system::System;

/// Where the node is in its conversion (ARCHITECTURE.md has the cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Start,
    SetupInstaller,
    XenserverFirstboot,
    Ubuntu,
    Xenserver,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Start,
        State::SetupInstaller,
        State::XenserverFirstboot,
        State::Ubuntu,
        State::Xenserver,
    ];

    /// The name in the state file.
    pub fn name(self) -> &'static str {
        match self {
            State::Start => "START",
            State::SetupInstaller => "SETUP_INSTALLER",
            State::XenserverFirstboot => "XENSERVER_FIRSTBOOT",
            State::Ubuntu => "UBUNTU",
            State::Xenserver => "XENSERVER",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL
            .into_iter()
            .find(|state| state.name() == text.trim())
    }

    /// The OS this state's work runs in.
    pub fn runs_on(self) -> &'static str {
        match self {
            State::Start | State::SetupInstaller | State::Ubuntu => "Ubuntu",
            State::XenserverFirstboot | State::Xenserver => "dom0",
        }
    }

    /// The state after this one's steps in the appliance mode (the 2014
    /// cycle), and whether the node reboots then; [`crate::plan::next`] has
    /// the direct mode's.
    pub fn next(self) -> (State, bool) {
        match self {
            State::Start => (State::SetupInstaller, true),
            State::SetupInstaller => (State::XenserverFirstboot, true),
            State::XenserverFirstboot | State::Xenserver => (State::Ubuntu, false),
            State::Ubuntu => (State::Xenserver, true),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state recorded in `file`; START when there is none yet.
pub fn read(system: &System, file: &Path) -> anyhow::Result<(State, bool)> {
    match system.read_if_exists(file)? {
        None => Ok((State::Start, false)),
        Some(text) => State::parse(&text)
            .map(|state| (state, true))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "state file {} holds {:?}, which is not a state ({})",
                    file.display(),
                    text.trim(),
                    State::ALL.map(State::name).join(", ")
                )
            }),
    }
}

/// Records `state` atomically (as the 2014 script did: the name and a newline).
pub fn write(system: &System, file: &Path, state: State) -> anyhow::Result<()> {
    system.write_atomic(file, format!("{state}\n").as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_2014_files_parse() {
        for state in State::ALL {
            assert_eq!(State::parse(state.name()), Some(state));
        }
        assert_eq!(
            State::parse("XENSERVER_FIRSTBOOT\n"),
            Some(State::XenserverFirstboot)
        );
        assert_eq!(State::parse("start"), None);
    }

    #[test]
    fn the_cycle_of_design_section_5() {
        assert_eq!(State::Start.next(), (State::SetupInstaller, true));
        assert_eq!(
            State::SetupInstaller.next(),
            (State::XenserverFirstboot, true)
        );
        assert_eq!(State::XenserverFirstboot.next(), (State::Ubuntu, false));
        assert_eq!(State::Ubuntu.next(), (State::Xenserver, true));
        assert_eq!(State::Xenserver.next(), (State::Ubuntu, false));
    }

    #[test]
    fn the_state_file_is_read_and_written() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let file = Path::new("/xitc-convert.state");
        assert_eq!(read(&system, file).unwrap(), (State::Start, false));
        write(&system, file, State::Ubuntu).unwrap();
        assert_eq!(system.read_to_string(file).unwrap(), "UBUNTU\n");
        assert_eq!(read(&system, file).unwrap(), (State::Ubuntu, true));
        system.write_atomic(file, b"BANANA\n", 0o644).unwrap();
        assert!(
            read(&system, file)
                .unwrap_err()
                .to_string()
                .contains("\"BANANA\"")
        );
    }
}
