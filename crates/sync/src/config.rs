//! [`FeedConfig`]: how a [`crate::Feed`] runs, and the checks that turn bad settings into clear
//! errors before anything starts.

use rulebook_store::redact_url;
use std::time::Duration;

/// The Redis channel instances publish and subscribe on unless told otherwise. Deployments that
/// share one Redis but not one database must each use a channel of their own.
pub const DEFAULT_REDIS_CHANNEL: &str = "rulebook:changes";

/// How a [`crate::Feed`] runs. `FeedConfig::default()` is the production setting for one
/// PostgreSQL without Redis: LISTEN plus a poll every second, pruning once every ten minutes and
/// keeping a day of changes.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// How often the change log is read even without a wake-up. This bounds how long a missed
    /// wake-up can leave the instance stale.
    pub poll_interval: Duration,
    /// On PostgreSQL, LISTEN for the change log's NOTIFY wake-ups. Ignored on SQLite.
    pub listen: bool,
    /// Redis pub/sub as a wake-up carrying what to invalidate, next to LISTEN and the poll.
    pub redis: Option<RedisConfig>,
    /// Pruning of the change log; `None` leaves it to someone else.
    pub prune: Option<PruneConfig>,
    /// Readiness: the feed reports not ready when its last successful read of the change log
    /// is older than this (it cannot tell whether it is current).
    pub stale_after: Duration,
    /// The longest wait between two attempts to reconnect LISTEN or Redis.
    pub max_backoff: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            poll_interval: Duration::from_secs(1),
            listen: true,
            redis: None,
            prune: Some(PruneConfig::default()),
            stale_after: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Where Redis is and which channel to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]` (or `rediss://` with TLS support compiled in).
    pub url: String,
    /// The pub/sub channel.
    pub channel: String,
}

impl RedisConfig {
    /// Redis at `url` on the [`DEFAULT_REDIS_CHANNEL`].
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            channel: DEFAULT_REDIS_CHANNEL.to_owned(),
        }
    }

    /// The same with another channel.
    pub fn with_channel(mut self, channel: impl Into<String>) -> RedisConfig {
        self.channel = channel.into();
        self
    }
}

/// When the change log is pruned and what is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneConfig {
    /// How often to prune (the first time shortly after start).
    pub every: Duration,
    /// How much to keep. An instance cut off from the database for longer than this cannot
    /// replay what it missed and invalidates everything instead.
    pub keep: Duration,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            every: Duration::from_secs(600),
            keep: Duration::from_secs(24 * 3600),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The Redis URL does not parse.
    #[error("redis url `{url}` cannot be used: {reason}; give redis://HOST:PORT")]
    RedisUrl {
        /// The URL with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Redis channel is empty.
    #[error("the redis channel is empty: give a name such as `{DEFAULT_REDIS_CHANNEL}`")]
    EmptyChannel,
    /// A duration that must be positive is zero.
    #[error("`{0}` must be longer than zero")]
    Zero(&'static str),
}

impl FeedConfig {
    /// Checks the settings: a Redis URL that parses, a channel, positive intervals.
    /// [`crate::Feed::spawn`] runs with whatever it is given (a bad Redis URL shows as Redis
    /// down in the status), so a server should call this first and refuse to start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("poll_interval", self.poll_interval),
            ("stale_after", self.stale_after),
            ("max_backoff", self.max_backoff),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if let Some(prune) = &self.prune {
            if prune.every.is_zero() {
                return Err(ConfigError::Zero("prune.every"));
            }
        }
        if let Some(redis) = &self.redis {
            redis_client(&redis.url)?;
            if redis.channel.is_empty() {
                return Err(ConfigError::EmptyChannel);
            }
        }
        Ok(())
    }

    /// How the feed learns of changes, for the status: `poll`, `listen+poll`, `redis+poll` or
    /// `redis+listen+poll`.
    pub(crate) fn transport(&self, postgres: bool) -> String {
        let mut parts = Vec::new();
        if self.redis.is_some() {
            parts.push("redis");
        }
        if self.listen && postgres {
            parts.push("listen");
        }
        parts.push("poll");
        parts.join("+")
    }
}

/// Opens a Redis client (no connection yet) for `url`.
pub(crate) fn redis_client(url: &str) -> Result<redis::Client, ConfigError> {
    redis::Client::open(url).map_err(|e| ConfigError::RedisUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_with_what_to_do() {
        assert_eq!(FeedConfig::default().validate(), Ok(()));
        let config = FeedConfig {
            redis: Some(RedisConfig::new("http://:secret@example")),
            ..FeedConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("redis url"), "{err}");
        assert!(!err.contains("secret"), "the password is hidden: {err}");
        let config = FeedConfig {
            poll_interval: Duration::ZERO,
            ..FeedConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::Zero("poll_interval")));
        let config = FeedConfig {
            redis: Some(RedisConfig::new("redis://127.0.0.1:6379").with_channel("")),
            ..FeedConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::EmptyChannel));
    }

    #[test]
    fn transport_names_what_runs() {
        let mut config = FeedConfig::default();
        assert_eq!(config.transport(true), "listen+poll");
        assert_eq!(config.transport(false), "poll");
        config.redis = Some(RedisConfig::new("redis://127.0.0.1"));
        assert_eq!(config.transport(true), "redis+listen+poll");
        config.listen = false;
        assert_eq!(config.transport(true), "redis+poll");
    }
}
