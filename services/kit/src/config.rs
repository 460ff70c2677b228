//! Typed configuration from environment variables, validated at start.
//!
//! Each service reads its own struct with an [`Env`]; a missing or malformed variable
//! is an error naming the variable, and the binary exits non-zero with that message.
//! Secrets are read as [`SecretString`], whose `Debug` never prints the value.
//!
//! Variables every service reads:
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `PALAVER_LISTEN` | the service's own address | per service |
//! | `PALAVER_ADMIN_LISTEN` | `/healthz`, `/readyz`, `/metrics` | `0.0.0.0:9090` |
//! | `PALAVER_DRAIN_SECONDS` | how long a SIGTERM waits for work in flight | `20` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | OTLP trace export | unset |
//! | `RUST_LOG` | log filter | `info` |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

pub use secrecy::{ExposeSecret, SecretString};

/// A variable that is missing or cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

/// Where variables come from: the process environment, or a map (tests, `palaver up`).
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: HashMap<String, String>,
    process: bool,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            overrides: HashMap::new(),
            process: true,
        }
    }

    /// Only the given variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            overrides: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            process: false,
        }
    }

    /// The raw value, if set and not empty.
    pub fn raw(&self, var: &str) -> Option<String> {
        let value = match self.overrides.get(var) {
            Some(v) => Some(v.clone()),
            None if self.process => std::env::var(var).ok(),
            None => None,
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// A parsed value, or `default` when unset.
    pub fn parse_or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.parse(var).map(|v| v.unwrap_or(default))
    }

    /// A parsed value, or `None` when unset.
    pub fn parse<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.raw(var) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse()
                .map(Some)
                .map_err(|e: T::Err| ConfigError {
                    var: var.to_owned(),
                    message: format!("cannot parse {raw:?}: {e}"),
                }),
        }
    }

    /// A value that must be set.
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.raw(var).ok_or_else(|| ConfigError {
            var: var.to_owned(),
            message: "must be set".to_owned(),
        })
    }

    /// A secret that must be set.
    pub fn required_secret(&self, var: &str) -> Result<SecretString, ConfigError> {
        self.required(var).map(SecretString::from)
    }

    /// A URL that must be set and use one of `schemes`.
    pub fn required_url(&self, var: &str, schemes: &[&str]) -> Result<String, ConfigError> {
        let value = self.required(var)?;
        let scheme = value.split("://").next().unwrap_or_default();
        if value.contains("://") && schemes.contains(&scheme) {
            Ok(value)
        } else {
            Err(ConfigError {
                var: var.to_owned(),
                message: format!(
                    "must be a URL starting with {}",
                    schemes.join("://, ") + "://"
                ),
            })
        }
    }

    /// A duration in whole seconds.
    pub fn seconds_or(&self, var: &str, default: u64) -> Result<Duration, ConfigError> {
        self.parse_or::<u64>(var, default).map(Duration::from_secs)
    }

    /// A whole number that must be at least 1 (a count, a limit), or `default` when
    /// unset.
    pub fn positive_or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + From<u8>,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(var, default)?;
        if value < T::from(1) {
            return Err(ConfigError {
                var: var.to_owned(),
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(value)
    }

    /// A duration in whole seconds, at least one.
    pub fn positive_seconds_or(&self, var: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive_or::<u64>(var, default)
            .map(Duration::from_secs)
    }
}

/// What every service reads: its own address, the admin address and the drain timeout.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub drain: Duration,
}

impl CommonConfig {
    /// Reads `PALAVER_LISTEN` (defaulting to `0.0.0.0:<default_port>`),
    /// `PALAVER_ADMIN_LISTEN` and `PALAVER_DRAIN_SECONDS`.
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        Ok(CommonConfig {
            listen: env.parse_or(
                "PALAVER_LISTEN",
                SocketAddr::from(([0, 0, 0, 0], default_port)),
            )?,
            admin_listen: env.parse_or(
                "PALAVER_ADMIN_LISTEN",
                SocketAddr::from(([0, 0, 0, 0], 9090)),
            )?,
            drain: env.seconds_or("PALAVER_DRAIN_SECONDS", 20)?,
        })
    }

    /// Loopback addresses on ports the system picks: for tests and `palaver up`.
    pub fn ephemeral() -> Self {
        CommonConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            drain: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("PALAVER_LISTEN", "not an address")]);
        let err = CommonConfig::from_env(&env, 50051).unwrap_err();
        assert_eq!(err.var, "PALAVER_LISTEN");
        assert!(err.to_string().contains("PALAVER_LISTEN"), "{err}");
    }

    #[test]
    fn defaults_apply_when_unset() {
        let config = CommonConfig::from_env(&Env::from_pairs::<&str, &str>([]), 50052).unwrap();
        assert_eq!(config.listen, "0.0.0.0:50052".parse().unwrap());
        assert_eq!(config.admin_listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(config.drain, Duration::from_secs(20));
    }

    #[test]
    fn secrets_do_not_print() {
        let env = Env::from_pairs([("PALAVER_ADMIN_TOKEN", "hunter2")]);
        let secret = env.required_secret("PALAVER_ADMIN_TOKEN").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2");
    }

    #[test]
    fn positive_values_are_at_least_one() {
        let env = Env::from_pairs([("LIMIT", "0"), ("EVERY", "0"), ("BAD", "-1"), ("OK", "2")]);
        for var in ["LIMIT", "BAD"] {
            let err = env.positive_or::<u32>(var, 3).unwrap_err();
            assert_eq!(err.var, var);
        }
        let err = env.positive_seconds_or("EVERY", 5).unwrap_err();
        assert_eq!(err.to_string(), "configuration: EVERY: must be at least 1");
        assert_eq!(env.positive_or::<usize>("OK", 3).unwrap(), 2);
        assert_eq!(env.positive_or::<usize>("UNSET", 3).unwrap(), 3);
        assert_eq!(
            env.positive_seconds_or("OK", 5).unwrap(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn urls_must_have_an_allowed_scheme() {
        let env = Env::from_pairs([("PALAVER_DATABASE_URL", "mysql://x")]);
        let err = env
            .required_url("PALAVER_DATABASE_URL", &["postgres", "sqlite"])
            .unwrap_err();
        assert_eq!(err.var, "PALAVER_DATABASE_URL");
        assert!(env.required_url("MISSING", &["nats"]).is_err());
    }
}
