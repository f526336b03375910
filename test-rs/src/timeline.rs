//! The run's timeline, as the cloud's console showed it: the console lines
//! `xitc-wait-until-done --console` printed during the waits, each stamped
//! when it reached test-rs, and the phases read from them (README "Phase
//! lines"), each with its start and how long it took. The stamps are arrival
//! times, not the node's own: a line arrives within one `--interval` of being
//! written, so a duration is good to about two intervals.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use xitc_common::phase::{self, Phase};

/// What wait-done prints before each console line.
pub const CONSOLE_PREFIX: &str = "xitc-wait-until-done: console: ";

/// One console line, as it arrived during the wait for `server`.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub server: String,
    pub at: SystemTime,
    /// The console's line (escaped by wait-done).
    pub line: String,
}

/// `{"phases": [...], "lines": [...]}`: each phase (a state, or one of its
/// steps) with `server`, `state`, `step` (`-` for the state), `start`
/// (RFC 3339, UTC), `seconds` and `outcome` (`ok`, `done`, `FAILED`; both
/// `null` when it did not end while watched) and `detail`; then every line
/// with `server`, `at` and `line`.
pub fn timeline(arrivals: &[Arrival]) -> Value {
    let mut servers: Vec<&str> = Vec::new();
    for arrival in arrivals {
        if !servers.contains(&arrival.server.as_str()) {
            servers.push(&arrival.server);
        }
    }
    let mut phases = Vec::new();
    for server in servers {
        let read: Vec<(SystemTime, Phase)> = arrivals
            .iter()
            .filter(|arrival| arrival.server == server)
            .filter_map(|arrival| Phase::find(&arrival.line).map(|phase| (arrival.at, phase)))
            .collect();
        for span in phase::spans(&read) {
            let (seconds, outcome, detail) = match &span.end {
                Some((end, event, detail)) => (
                    Some(
                        end.duration_since(span.start)
                            .unwrap_or_default()
                            .as_secs_f64(),
                    ),
                    Some(event.word()),
                    detail.clone(),
                ),
                None => (None, None, None),
            };
            phases.push(json!({
                "server": server,
                "state": span.state,
                "step": span.step.as_deref().unwrap_or(phase::NO_STEP),
                "start": rfc3339(span.start),
                "seconds": seconds.map(|seconds| (seconds * 1000.0).round() / 1000.0),
                "outcome": outcome,
                "detail": detail,
            }));
        }
    }
    let lines: Vec<Value> = arrivals
        .iter()
        .map(|arrival| {
            json!({"server": arrival.server, "at": rfc3339(arrival.at), "line": arrival.line})
        })
        .collect();
    json!({ "phases": phases, "lines": lines })
}

fn rfc3339(at: SystemTime) -> String {
    // Before 1970 only on a broken clock: said as the epoch.
    let at = at.max(UNIX_EPOCH);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_665_000 + seconds)
    }

    fn arrival(server: &str, seconds: u64, line: &str) -> Arrival {
        Arrival {
            server: server.to_owned(),
            at: at(seconds),
            line: line.to_owned(),
        }
    }

    #[test]
    fn phases_with_their_start_and_duration_per_server() {
        let arrivals = [
            arrival("Jxitct1", 0, "xitc-phase: START - begin"),
            arrival("Jxitct1", 10, "xitc-phase: START download begin"),
            arrival("Jxitct1", 70, "xitc-phase: START download ok"),
            arrival(
                "Jxitct1",
                80,
                "xitc-phase: START - done: next state SETUP_INSTALLER, reboot",
            ),
            arrival(
                "Jxitct1",
                300,
                "INFO     [2026-12-07 21:00:00] Starting actual installation",
            ),
            // The snapshot's server, watched from the middle of a state.
            arrival("Jxitcs1", 900, "xitc-phase: XENSERVER wait-xapi ok"),
            arrival("Jxitcs1", 910, "xitc-phase: XENSERVER stamp begin"),
        ];
        let timeline = timeline(&arrivals);
        let phases: Vec<String> = timeline["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|phase| {
                format!(
                    "{} {} {} {} {} {}",
                    phase["server"].as_str().unwrap(),
                    phase["state"].as_str().unwrap(),
                    phase["step"].as_str().unwrap(),
                    phase["start"].as_str().unwrap(),
                    phase["seconds"],
                    phase["outcome"],
                )
            })
            .collect();
        assert_eq!(
            phases,
            [
                "Jxitct1 START - 2026-12-07T17:36:40.000Z 80.0 \"done\"",
                "Jxitct1 START download 2026-12-07T17:36:50.000Z 60.0 \"ok\"",
                "Jxitcs1 XENSERVER stamp 2026-12-07T17:51:50.000Z null null",
            ]
        );
        assert_eq!(
            timeline["phases"][0]["detail"],
            "next state SETUP_INSTALLER, reboot"
        );
        // Every line, the installer's too, with its arrival.
        assert_eq!(timeline["lines"].as_array().unwrap().len(), arrivals.len());
        assert_eq!(
            timeline["lines"][4]["line"],
            "INFO     [2026-12-07 21:00:00] Starting actual installation"
        );
        assert_eq!(timeline["lines"][4]["at"], "2026-12-07T17:41:40.000Z");
    }

    #[test]
    fn no_lines_no_phases() {
        assert_eq!(timeline(&[]), json!({"phases": [], "lines": []}));
    }
}
