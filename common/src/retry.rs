//! The one retry policy for requests that can meet a passing fault: the cloud
//! API's calls ([`crate::cloud`]) and the node's downloads
//! ([`crate::download`]). Both ask "try; on a transient fault, wait and try
//! again, until the deadline", so both use [`retry`] with their [`Policy`];
//! only the back-off's start and cap differ (a download is retried less often:
//! each try reopens a transfer of a gigabyte).
//!
//! Rules:
//! - the first try is made at once; after a transient fault the pause is the
//!   back-off (doubling from `first` up to `max`, with jitter of ±50 % so that
//!   many clients do not retry in step), or the server's `Retry-After` when it
//!   gave one;
//! - a server's `Retry-After` that reaches past the deadline ends the wait at
//!   once: it is over;
//! - our own back-off that would leave no time for another try is shortened so
//!   that one last try still fits ([`LAST_TRY`] before the deadline); after
//!   that one, it is over;
//! - the end is a [`Kind::Timeout`](crate::exit::Kind::Timeout) error naming
//!   what was tried, how long, and the last fault;
//! - with `notes`, the first transient fault and then one every [`NOTE_EVERY`]
//!   are said on stderr, so a wait of minutes is never silent;
//! - an attempt's `Err` is permanent and returned at once, unchanged.
//!
//! Time comes from a [`Clock`], so every rule is tested on a fake one.

use std::time::Duration;

use crate::exit;
use crate::poll::{Clock, Deadline, format_duration};

/// The time a last try before the deadline gets.
pub const LAST_TRY: Duration = Duration::from_secs(1);

/// How often a retried request says so again on stderr.
pub const NOTE_EVERY: Duration = Duration::from_secs(30);

/// The back-off of one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The pause after the first transient fault.
    pub first: Duration,
    /// The longest pause of our own (a server's `Retry-After` may ask more).
    pub max: Duration,
    /// Whether pauses are jittered (±50 %); off only in tests.
    pub jitter: bool,
}

/// API calls: quick first retries (a 503 from a busy API often clears in a
/// second), never more than 10 s apart.
pub const API: Policy = Policy {
    first: Duration::from_millis(250),
    max: Duration::from_secs(10),
    jitter: true,
};

/// Downloads: each try reopens a long transfer, so they are spaced wider.
pub const DOWNLOAD: Policy = Policy {
    first: Duration::from_millis(500),
    max: Duration::from_secs(30),
    jitter: true,
};

/// What one try came to.
#[derive(Debug)]
pub enum Attempt<T> {
    Done(T),
    /// Worth another try: why, and how long the server asked us to wait.
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
}

impl<T> Attempt<T> {
    /// A transient fault the server gave no `Retry-After` for.
    pub fn transient(why: impl Into<String>) -> Self {
        Attempt::Transient {
            why: why.into(),
            retry_after: None,
        }
    }
}

/// Tries `attempt` until it is done, fails for good, or `deadline` ends the
/// wait (the module's rules). `what` names the request in the notes and the
/// timeout error; `notes` is the tool that says on stderr what is retried.
pub fn retry<T>(
    clock: &impl Clock,
    deadline: &Deadline,
    policy: Policy,
    what: &str,
    notes: Option<&str>,
    mut attempt: impl FnMut(&Deadline) -> anyhow::Result<Attempt<T>>,
) -> anyhow::Result<T> {
    let mut backoff = policy.first;
    let mut last_note = None;
    let mut last_try = false;
    loop {
        let (why, retry_after) = match attempt(deadline)? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Transient { why, retry_after } => (why, retry_after),
        };
        let now = clock.now();
        let timed_out = || {
            exit::timeout(format!(
                "{what}: timed out after {} ({why})",
                format_duration(deadline.elapsed(now))
            ))
        };
        if deadline.is_expired(now) {
            return Err(timed_out());
        }
        if let Some(tool) = notes
            && last_note.is_none_or(|at| now.duration_since(at) >= NOTE_EVERY)
        {
            last_note = Some(now);
            let left = deadline
                .remaining(now)
                .map_or("no time limit".to_owned(), |left| {
                    format!("{} left", format_duration(left))
                });
            exit::note(tool, &format!("{what}: {why}; retrying ({left})"));
        }
        let ours = if policy.jitter {
            backoff.mul_f64(0.5 + fastrand::f64())
        } else {
            backoff
        };
        let wanted = retry_after.unwrap_or(ours);
        let pause = match deadline.remaining(now) {
            Some(left) if wanted + LAST_TRY > left => {
                if last_try || retry_after.is_some_and(|asked| asked > left) {
                    return Err(timed_out());
                }
                last_try = true;
                left.saturating_sub(LAST_TRY)
            }
            _ => wanted,
        };
        clock.sleep(pause);
        backoff = (backoff * 2).min(policy.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Kind, kind_of};
    use crate::testing::FakeClock;

    const STEADY: Policy = Policy {
        first: Duration::from_millis(250),
        max: Duration::from_secs(2),
        jitter: false,
    };

    fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    /// Retries a request whose every try is a transient fault (each taking
    /// `took` on the clock), `retry_after` asked each time.
    fn always_failing(
        clock: &FakeClock,
        timeout: Option<f64>,
        retry_after: Option<f64>,
        tries_before_success: Option<usize>,
    ) -> (anyhow::Result<usize>, Vec<Duration>) {
        let deadline = Deadline::new(clock.now(), timeout.map(secs));
        let mut tries = Vec::new();
        let result = retry(clock, &deadline, STEADY, "GET /v3", None, |_| {
            tries.push(clock.since_origin());
            if tries_before_success.is_some_and(|count| tries.len() > count) {
                return Ok(Attempt::Done(tries.len()));
            }
            Ok(Attempt::Transient {
                why: "HTTP 503".into(),
                retry_after: retry_after.map(secs),
            })
        });
        (result, tries)
    }

    #[test]
    fn the_back_off_doubles_up_to_its_cap() {
        let clock = FakeClock::new();
        let (result, _) = always_failing(&clock, None, None, Some(6));
        assert_eq!(result.unwrap(), 7);
        assert_eq!(
            clock.sleeps(),
            [0.25, 0.5, 1.0, 2.0, 2.0, 2.0].map(secs),
            "first try at once, then 0.25 s doubling to the 2 s cap"
        );
    }

    #[test]
    fn a_last_try_is_made_just_before_the_deadline_then_it_is_over() {
        let clock = FakeClock::new();
        let (result, tries) = always_failing(&clock, Some(4.0), None, None);
        let error = result.unwrap_err();
        assert_eq!(kind_of(&error), Kind::Timeout);
        assert_eq!(
            error.to_string(),
            "GET /v3: timed out after 3.0s (HTTP 503)"
        );
        // 0, 0.25, 0.75, 1.75; the next pause (2 s) would leave less than a
        // last try's second, so it is shortened to end 1 s before the
        // deadline; after that last try no other fits.
        assert_eq!(tries, [0.0, 0.25, 0.75, 1.75, 3.0].map(secs));
        assert_eq!(clock.since_origin(), secs(3.0));
    }

    #[test]
    fn retry_after_is_honoured_and_one_past_the_deadline_ends_the_wait() {
        let clock = FakeClock::new();
        let (result, _) = always_failing(&clock, Some(60.0), Some(7.0), Some(2));
        assert_eq!(result.unwrap(), 3);
        assert_eq!(clock.sleeps(), [7.0, 7.0].map(secs));

        let clock = FakeClock::new();
        let (result, tries) = always_failing(&clock, Some(5.0), Some(30.0), None);
        assert_eq!(kind_of(&result.unwrap_err()), Kind::Timeout);
        assert_eq!(
            tries.len(),
            1,
            "no wait for a Retry-After past the deadline"
        );
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn a_permanent_fault_ends_at_once_unchanged() {
        let clock = FakeClock::new();
        let deadline = Deadline::new(clock.now(), Some(secs(60.0)));
        let error = retry::<()>(&clock, &deadline, STEADY, "GET /", None, |_| {
            Err(exit::usage("bad URL"))
        })
        .unwrap_err();
        assert_eq!(kind_of(&error), Kind::Usage);
        assert_eq!(error.to_string(), "bad URL");
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn without_a_deadline_it_waits_for_ever() {
        let clock = FakeClock::new();
        let (result, tries) = always_failing(&clock, None, None, Some(1000));
        assert_eq!(result.unwrap(), 1001);
        assert_eq!(tries.len(), 1001);
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half_of_the_back_off() {
        let clock = FakeClock::new();
        let deadline = Deadline::new(clock.now(), None);
        let mut count = 0;
        retry(
            &clock,
            &deadline,
            Policy {
                jitter: true,
                ..STEADY
            },
            "GET /",
            None,
            |_| {
                count += 1;
                Ok(if count > 200 {
                    Attempt::Done(())
                } else {
                    Attempt::transient("reset")
                })
            },
        )
        .unwrap();
        let sleeps = clock.sleeps();
        let expected = |index: usize| {
            STEADY
                .first
                .saturating_mul(1 << index.min(3))
                .min(STEADY.max)
        };
        for (index, pause) in sleeps.iter().enumerate() {
            let base = expected(index);
            assert!(
                *pause >= base / 2 && *pause <= base.mul_f64(1.5),
                "pause {index}: {pause:?} for {base:?}"
            );
        }
        // Jittered: not all the same where the back-off is.
        let capped: Vec<_> = sleeps[4..].to_vec();
        assert!(capped.iter().any(|pause| *pause != capped[0]), "{capped:?}");
    }
}
