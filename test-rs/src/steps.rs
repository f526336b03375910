//! Named steps, each printed with its duration, and the summary table.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use xitc_common::poll::format_duration;

use crate::say::say;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
}

#[derive(Debug, Clone)]
struct Record {
    name: String,
    duration: Duration,
    outcome: Outcome,
}

/// The steps of a run so far.
#[derive(Debug, Default)]
pub struct Steps {
    records: RefCell<Vec<Record>>,
}

impl Steps {
    /// Runs `action` as the step `name`: prints a line when it starts and one when
    /// it ends, with its duration; an error gets the step's name as context.
    pub fn run<T>(
        &self,
        name: &str,
        action: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        say(&format!("==> {name}"));
        let started = Instant::now();
        let result = action();
        let duration = started.elapsed();
        let outcome = match &result {
            Ok(_) => Outcome::Passed,
            Err(error) => Outcome::Failed(format!("{error:#}")),
        };
        let verdict = match &outcome {
            Outcome::Passed => "ok",
            Outcome::Failed(_) => "FAILED",
        };
        say(&format!(
            "<== {name}: {verdict} ({})",
            format_duration(duration)
        ));
        self.records.borrow_mut().push(Record {
            name: name.to_owned(),
            duration,
            outcome,
        });
        result.map_err(|error| error.context(format!("step '{name}'")))
    }

    /// The table printed at the end: step, duration, result.
    pub fn summary(&self) -> String {
        let records = self.records.borrow();
        let width = records
            .iter()
            .map(|record| record.name.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut table = format!("{:<width$}  {:>9}  result\n", "step", "duration");
        for record in records.iter() {
            let result = match &record.outcome {
                Outcome::Passed => "ok".to_owned(),
                Outcome::Failed(why) => {
                    format!("FAILED: {}", xitc_common::exit::escape_control(why))
                }
            };
            let _ = writeln!(
                table,
                "{:<width$}  {:>9}  {result}",
                record.name,
                format_duration(record.duration)
            );
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_the_step_name_and_land_in_the_summary() {
        let steps = Steps::default();
        steps.run("boot Jxitct1", || Ok(())).unwrap();
        let error = steps
            .run("wait for SSH", || Err::<(), _>(anyhow::anyhow!("refused")))
            .unwrap_err();
        assert_eq!(format!("{error:#}"), "step 'wait for SSH': refused");
        let summary = steps.summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert!(lines[0].starts_with("step "), "{summary}");
        assert!(
            lines[1].starts_with("boot Jxitct1 ") && lines[1].ends_with("  ok"),
            "{summary}"
        );
        assert!(lines[2].ends_with("FAILED: refused"), "{summary}");
    }
}
