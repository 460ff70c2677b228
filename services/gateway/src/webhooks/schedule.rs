//! When a webhook event is tried again after a failed attempt: the Standard Webhooks
//! schedule by default (at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
//! 10 h: eight attempts over more than a day).

use std::str::FromStr;
use std::time::Duration;

/// The waits before the second, third, … attempt; after the last, the event is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::new([5, 300, 1800, 7200, 18000, 36000, 36000].map(Duration::from_secs))
            .expect("the default schedule is valid")
    }
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("name at least one wait")]
    Empty,
    #[error("every wait must be at least 1 second")]
    TooShort,
    #[error("{0:?} is not a whole number of seconds")]
    NotSeconds(String),
}

impl RetrySchedule {
    /// The schedule with these waits between attempts (each at least a second, so a
    /// failing receiver is never hammered).
    pub fn new(delays: impl IntoIterator<Item = Duration>) -> Result<Self, ScheduleError> {
        let delays: Vec<Duration> = delays.into_iter().collect();
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if delays.iter().any(|delay| *delay < Duration::from_secs(1)) {
            return Err(ScheduleError::TooShort);
        }
        Ok(RetrySchedule { delays })
    }

    /// How many attempts an event gets.
    pub fn attempts(&self) -> u64 {
        self.delays.len() as u64 + 1
    }

    /// How long to wait after attempt `attempt` (1 is the first) failed; `None` when it
    /// was the last.
    pub fn after_failure(&self, attempt: u64) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }

    /// From the first attempt to the last.
    pub fn span(&self) -> Duration {
        self.delays.iter().sum()
    }
}

/// Comma-separated seconds: `5,300,1800`.
impl FromStr for RetrySchedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ScheduleError::NotSeconds(part.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        RetrySchedule::new(delays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_standard_webhooks_over_more_than_a_day() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.after_failure(1), Some(Duration::from_secs(5)));
        assert_eq!(schedule.after_failure(2), Some(Duration::from_secs(300)));
        assert_eq!(schedule.after_failure(7), Some(Duration::from_secs(36000)));
        assert_eq!(
            schedule.after_failure(8),
            None,
            "the eighth attempt is the last"
        );
        assert!(schedule.span() >= Duration::from_secs(24 * 3600));
        assert_eq!(schedule.span(), Duration::from_secs(99_305));
    }

    #[test]
    fn attempts_beyond_the_schedule_are_not_retried() {
        let schedule: RetrySchedule = "1, 2".parse().unwrap();
        assert_eq!(schedule.attempts(), 3);
        assert_eq!(schedule.after_failure(0), None);
        assert_eq!(schedule.after_failure(2), Some(Duration::from_secs(2)));
        assert_eq!(schedule.after_failure(3), None);
        assert_eq!(schedule.after_failure(u64::MAX), None);
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert_eq!("".parse::<RetrySchedule>(), Err(ScheduleError::Empty));
        assert_eq!("5,0".parse::<RetrySchedule>(), Err(ScheduleError::TooShort));
        assert_eq!(
            "5,soon".parse::<RetrySchedule>(),
            Err(ScheduleError::NotSeconds("soon".to_owned()))
        );
        assert_eq!(
            RetrySchedule::new([Duration::from_millis(500)]),
            Err(ScheduleError::TooShort)
        );
    }
}
