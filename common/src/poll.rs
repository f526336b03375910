//! "Try, and if not yet, try again later, until a deadline": the loop behind
//! every wait in xitc (an address to appear, the stamp file to exist, xapi to
//! start, an image to become ACTIVE).
//!
//! Rules, the same for every tool:
//! - the first attempt is made at once;
//! - attempts start every `interval`, measured from the start of the previous
//!   attempt (a slow attempt does not push the schedule back; one slower than the
//!   interval is followed at once by the next);
//! - no sleep reaches past the deadline, and one last attempt is made at the
//!   deadline itself, so a timeout of 10 s with an interval of 7 s looks at 0, 7
//!   and 10 s;
//! - a timeout of `None` (the CLI's `--timeout 0`) waits forever;
//! - an attempt that returns `Err` ends the loop at once: that is a permanent
//!   fault. Transient faults are the attempt's business: it returns `Ok(None)`.
//!
//! Time comes from a [`Clock`], so the loop is tested with a fake clock rather
//! than with sleeps.

use std::time::{Duration, Instant};

use crate::exit;

/// A source of time that can also wait.
pub trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&self, duration: Duration);
}

/// The real clock: `Instant::now` and `thread::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// When a wait started and when it must end (`None`: never).
///
/// Attempts get the deadline so that their own network timeouts can be capped
/// to the time that is left ([`Deadline::cap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    start: Instant,
    end: Option<Instant>,
}

impl Deadline {
    /// A deadline `timeout` after `start`; `None` never expires.
    pub fn new(start: Instant, timeout: Option<Duration>) -> Self {
        Deadline {
            start,
            // A timeout too large to represent is as good as none.
            end: timeout.and_then(|timeout| start.checked_add(timeout)),
        }
    }

    /// Time left at `now`; `None` when there is no deadline.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.end.map(|end| end.saturating_duration_since(now))
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }

    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// `duration`, shortened so that it ends no later than the deadline.
    pub fn cap(&self, now: Instant, duration: Duration) -> Duration {
        self.remaining(now)
            .map_or(duration, |remaining| duration.min(remaining))
    }
}

/// How long to wait overall and how often to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Overall limit; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Time between the starts of two attempts.
    pub interval: Duration,
}

impl Schedule {
    /// A schedule from CLI values, where a timeout of zero means "forever".
    pub fn new(timeout: Duration, interval: Duration) -> Self {
        Schedule {
            timeout: (!timeout.is_zero()).then_some(timeout),
            interval,
        }
    }
}

/// Runs `attempt` on `schedule` until it returns `Ok(Some(value))`.
///
/// Returns the value, the attempt's first `Err` unchanged, or a
/// [`Kind::Timeout`](crate::exit::Kind::Timeout) error "timed out after …" when the
/// deadline passes; callers add context saying what they waited for.
pub fn poll_until<T>(
    clock: &impl Clock,
    schedule: Schedule,
    mut attempt: impl FnMut(&Deadline) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Deadline::new(clock.now(), schedule.timeout);
    loop {
        let attempt_started = clock.now();
        if let Some(value) = attempt(&deadline)? {
            return Ok(value);
        }
        let now = clock.now();
        if deadline.is_expired(now) {
            return Err(exit::timeout(format!(
                "timed out after {}",
                format_duration(deadline.elapsed(now))
            )));
        }
        // An interval too large to add to the clock is as good as "at the
        // deadline" (or, with none, a sleep of that length).
        let pause = match attempt_started.checked_add(schedule.interval) {
            Some(next_attempt) => next_attempt.saturating_duration_since(now),
            None => schedule.interval,
        };
        let pause = deadline.cap(now, pause);
        if !pause.is_zero() {
            clock.sleep(pause);
        }
    }
}

/// The longest duration a CLI option takes: a year. Longer ones are typos,
/// and past about 584 billion years a deadline no longer fits a clock
/// (`Instant + Duration` panics); where "no limit" is meant, the options take 0.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a CLI duration: plain seconds (`10`, `0.5`) or a number with one unit
/// suffix `ms`, `s`, `m`, `h` (`500ms`, `2m`), at most [`MAX_DURATION`]. For
/// clap's `value_parser`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split_at = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split_at);
    let seconds_per_unit = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use seconds, or ms, s, m, h)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 10, 0.5, 500ms, 2m)"))?;
    match Duration::try_from_secs_f64(value * seconds_per_unit) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        _ => Err(format!(
            "{text:?} is out of range (at most 365 days, {}s)",
            MAX_DURATION.as_secs()
        )),
    }
}

/// A duration for messages: `0.5s`, `12s`, `2m05s`, `1h02m03s`.
pub fn format_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(10) {
        let tenths = duration.as_millis() / 100;
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let seconds = duration.as_secs();
    match (seconds / 3600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Kind, kind_of};
    use crate::testing::FakeClock;

    fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    fn schedule(timeout: Option<f64>, interval: f64) -> Schedule {
        Schedule {
            timeout: timeout.map(secs),
            interval: secs(interval),
        }
    }

    #[test]
    fn first_attempt_is_immediate() {
        let clock = FakeClock::new();
        let value = poll_until(&clock, schedule(Some(10.0), 1.0), |_| Ok(Some(7))).unwrap();
        assert_eq!(value, 7);
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn attempts_are_one_interval_apart() {
        let clock = FakeClock::new();
        let mut starts = Vec::new();
        let value = poll_until(&clock, schedule(Some(60.0), 2.0), |_| {
            starts.push(clock.since_origin());
            Ok((starts.len() == 4).then_some("ready"))
        })
        .unwrap();
        assert_eq!(value, "ready");
        assert_eq!(starts, [secs(0.0), secs(2.0), secs(4.0), secs(6.0)]);
    }

    #[test]
    fn a_slow_attempt_shortens_the_pause() {
        let clock = FakeClock::new();
        let mut count = 0;
        poll_until(&clock, schedule(None, 1.0), |_| {
            count += 1;
            clock.advance(secs(0.25));
            Ok((count == 3).then_some(()))
        })
        .unwrap();
        assert_eq!(clock.sleeps(), [secs(0.75), secs(0.75)]);
    }

    #[test]
    fn an_attempt_slower_than_the_interval_is_followed_at_once() {
        let clock = FakeClock::new();
        let mut count = 0;
        poll_until(&clock, schedule(None, 1.0), |_| {
            count += 1;
            clock.advance(secs(3.0));
            Ok((count == 2).then_some(()))
        })
        .unwrap();
        assert!(clock.sleeps().is_empty());
        assert_eq!(clock.since_origin(), secs(6.0));
    }

    #[test]
    fn timeout_checks_at_the_deadline_and_never_sleeps_past_it() {
        let clock = FakeClock::new();
        let mut starts = Vec::new();
        let error = poll_until(&clock, schedule(Some(10.0), 7.0), |_| {
            starts.push(clock.since_origin());
            Ok(None::<()>)
        })
        .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Timeout);
        assert_eq!(error.to_string(), "timed out after 10s");
        assert_eq!(starts, [secs(0.0), secs(7.0), secs(10.0)]);
        assert_eq!(clock.sleeps(), [secs(7.0), secs(3.0)]);
        assert_eq!(clock.since_origin(), secs(10.0));
    }

    #[test]
    fn an_attempt_that_overruns_the_deadline_ends_the_wait() {
        let clock = FakeClock::new();
        let mut count = 0;
        let error = poll_until(&clock, schedule(Some(5.0), 1.0), |_| {
            count += 1;
            clock.advance(secs(8.0));
            Ok(None::<()>)
        })
        .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Timeout);
        assert_eq!(count, 1);
    }

    #[test]
    fn no_timeout_waits_as_long_as_it_takes() {
        let clock = FakeClock::new();
        let mut count = 0;
        poll_until(&clock, Schedule::new(Duration::ZERO, secs(10.0)), |_| {
            count += 1;
            Ok((count == 10_000).then_some(()))
        })
        .unwrap();
        assert_eq!(clock.since_origin(), secs(99_990.0));
    }

    #[test]
    fn a_permanent_error_ends_the_wait_at_once_and_keeps_its_kind() {
        let clock = FakeClock::new();
        let error = poll_until(&clock, schedule(Some(60.0), 1.0), |_| {
            Err::<Option<()>, _>(exit::usage("bad key"))
        })
        .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn attempts_see_the_time_left() {
        let clock = FakeClock::new();
        let mut seen = Vec::new();
        let _ = poll_until(&clock, schedule(Some(3.0), 2.0), |deadline| {
            seen.push(deadline.remaining(clock.now()));
            Ok(None::<()>)
        });
        assert_eq!(seen, [Some(secs(3.0)), Some(secs(1.0)), Some(secs(0.0))]);
        let deadline = Deadline::new(clock.now(), Some(secs(2.0)));
        assert_eq!(deadline.cap(clock.now(), secs(5.0)), secs(2.0));
        assert_eq!(deadline.cap(clock.now(), secs(1.0)), secs(1.0));
        let forever = Deadline::new(clock.now(), None);
        assert_eq!(forever.remaining(clock.now()), None);
        assert!(!forever.is_expired(clock.now() + secs(1e9)));
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("10"), Ok(secs(10.0)));
        assert_eq!(parse_duration("0.5"), Ok(secs(0.5)));
        assert_eq!(parse_duration("500ms"), Ok(secs(0.5)));
        assert_eq!(parse_duration("2m"), Ok(secs(120.0)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600.0)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "x", "-1", "1d", "1.2.3", "s", "1e999", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn durations_longer_than_a_year_are_refused_before_any_clock_sees_them() {
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        for huge in [
            "8761h",
            "31536001",
            "99999999999999999999",
            "18446744073709551615",
            "1000000000000000000000000000000h",
        ] {
            let error = parse_duration(huge).unwrap_err();
            assert!(
                error.contains("out of range (at most 365 days"),
                "{huge}: {error}"
            );
        }
    }

    #[test]
    fn an_interval_too_large_for_the_clock_ends_at_the_deadline_without_panicking() {
        let clock = FakeClock::new();
        let schedule = Schedule {
            timeout: Some(secs(5.0)),
            interval: Duration::MAX,
        };
        let error = poll_until(&clock, schedule, |_| Ok(None::<()>)).unwrap_err();
        assert_eq!(kind_of(&error), Kind::Timeout);
        assert_eq!(clock.sleeps(), [secs(5.0)]);
    }

    #[test]
    fn durations_format_for_humans() {
        assert_eq!(format_duration(secs(0.54)), "0.5s");
        assert_eq!(format_duration(secs(9.99)), "9.9s");
        assert_eq!(format_duration(secs(12.0)), "12s");
        assert_eq!(format_duration(secs(125.0)), "2m05s");
        assert_eq!(format_duration(secs(3723.0)), "1h02m03s");
    }
}
