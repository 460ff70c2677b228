//! Abuse limits: the deployment's defaults (from the environment) and an app's own
//! overrides (set with the admin API), merged field by field.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::domain::rate_limit::Rate;

/// The limits in force for an app. DESIGN.md "Security" gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub sessions_per_ip_per_minute: NonZeroU32,
    pub messages_per_second: NonZeroU32,
    pub message_burst: NonZeroU32,
    pub offline_messages_per_ip_per_hour: NonZeroU32,
    pub open_conversations_per_visitor: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Limits {
            sessions_per_ip_per_minute: n(30),
            messages_per_second: n(10),
            message_burst: n(20),
            offline_messages_per_ip_per_hour: n(5),
            open_conversations_per_visitor: n(3),
        }
    }
}

/// An app's own limits as stored: zero means "the deployment's default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub sessions_per_ip_per_minute: u32,
    pub messages_per_second: u32,
    pub message_burst: u32,
    pub offline_messages_per_ip_per_hour: u32,
    pub open_conversations_per_visitor: u32,
}

impl Limits {
    /// These limits with each non-zero override of an app in place of the default.
    pub fn with_overrides(&self, overrides: &LimitOverrides) -> Limits {
        let pick = |own: u32, default: NonZeroU32| NonZeroU32::new(own).unwrap_or(default);
        Limits {
            sessions_per_ip_per_minute: pick(
                overrides.sessions_per_ip_per_minute,
                self.sessions_per_ip_per_minute,
            ),
            messages_per_second: pick(overrides.messages_per_second, self.messages_per_second),
            message_burst: pick(overrides.message_burst, self.message_burst),
            offline_messages_per_ip_per_hour: pick(
                overrides.offline_messages_per_ip_per_hour,
                self.offline_messages_per_ip_per_hour,
            ),
            open_conversations_per_visitor: pick(
                overrides.open_conversations_per_visitor,
                self.open_conversations_per_visitor,
            ),
        }
    }

    /// New visitor sessions per client IP: the whole minute's allowance at once, then
    /// refilled evenly over the minute.
    pub fn visitor_session_rate(&self) -> Rate {
        Rate::new(self.sessions_per_ip_per_minute, Duration::from_secs(60))
    }

    /// Messages per session: a burst of `message_burst`, refilled at
    /// `messages_per_second`.
    pub fn message_rate(&self) -> Rate {
        let burst = self.message_burst.get();
        let period =
            Duration::from_secs_f64(f64::from(burst) / f64::from(self.messages_per_second.get()));
        Rate::new(self.message_burst, period)
    }

    /// Offline messages per client IP: the hour's allowance at once, then refilled
    /// evenly over the hour.
    pub fn offline_message_rate(&self) -> Rate {
        Rate::new(
            self.offline_messages_per_ip_per_hour,
            Duration::from_secs(3600),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_their_own_fields() {
        let defaults = Limits::default();
        let merged = defaults.with_overrides(&LimitOverrides {
            sessions_per_ip_per_minute: 2,
            ..LimitOverrides::default()
        });
        assert_eq!(merged.sessions_per_ip_per_minute.get(), 2);
        assert_eq!(merged.messages_per_second, defaults.messages_per_second);
        assert_eq!(
            defaults.with_overrides(&LimitOverrides::default()),
            defaults
        );
    }

    #[test]
    fn the_defaults_are_the_designs() {
        let d = Limits::default();
        let values = [
            d.sessions_per_ip_per_minute,
            d.messages_per_second,
            d.message_burst,
            d.offline_messages_per_ip_per_hour,
            d.open_conversations_per_visitor,
        ]
        .map(NonZeroU32::get);
        assert_eq!(values, [30, 10, 20, 5, 3]);
    }
}
