//! [`Config`]: how `rulebook serve` is configured, by flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use rulebook_sync::{FeedConfig, RedisConfig};

/// The settings of `rulebook serve`. Every flag has an environment variable; a flag given on the
/// command line wins over the variable.
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// The address to listen on. Port 0 picks a free port (the start line says which).
    #[arg(long, env = "RULEBOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The database: a file path or sqlite://PATH for SQLite (created, migrated and seeded on
    /// first start), or postgres://USER@HOST/DB for PostgreSQL.
    #[arg(long, env = "RULEBOOK_DATABASE_URL", default_value = "rulebook.db")]
    pub database_url: String,

    /// An admin token for every tenant, checked besides the tokens stored in the database. When
    /// set, no token is generated on first start.
    #[arg(long, env = "RULEBOOK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A folder of rule files (JSON or YAML) loaded into tenant `default` and watched for
    /// changes; a malformed file is reported in /health and the last good version keeps serving.
    #[arg(long, env = "RULEBOOK_RULES_DIR")]
    pub rules_dir: Option<PathBuf>,

    /// How often the rules folder is scanned for changes.
    #[arg(long, env = "RULEBOOK_RULES_SCAN", default_value = "1s", value_parser = parse_duration)]
    pub rules_scan: Duration,

    /// The most tenants whose compiled rules are kept in memory at once; the least recently
    /// used tenant's entries are dropped beyond it.
    #[arg(long, env = "RULEBOOK_TENANT_CACHE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub tenant_cache: u64,

    /// How long a cached entry may live even if no change invalidates it (a backstop: changes
    /// invalidate at once). Like `300s`, `5m`, `1h`.
    #[arg(long, env = "RULEBOOK_CACHE_TTL", default_value = "5m", value_parser = parse_duration)]
    pub cache_ttl: Duration,

    /// The largest request body accepted, like `1MiB`, `512KiB` or `65536`. It also bounds one
    /// line (one rule) of a streamed import.
    #[arg(long, env = "RULEBOOK_BODY_LIMIT", default_value = "1MiB", value_parser = parse_size)]
    pub body_limit: usize,

    /// The largest streamed import (`POST /v1/rules/import` with `Content-Type:
    /// application/x-ndjson`, what `rulebook rules import` sends), like `256MiB` or `1GiB`. The
    /// import is read a line at a time and written in one transaction; the server holds the
    /// checked rules (not the body) until it commits.
    #[arg(long, env = "RULEBOOK_IMPORT_BODY_LIMIT", default_value = "256MiB", value_parser = parse_size)]
    pub import_body_limit: usize,

    /// How long a streamed import may take, from its first byte to its answer, before it is
    /// answered with 504 `request_timeout` and nothing is written. Other requests have
    /// `--request-timeout`.
    #[arg(long, env = "RULEBOOK_IMPORT_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub import_timeout: Duration,

    /// How long one request may take before it is answered with 504 `request_timeout`.
    #[arg(long, env = "RULEBOOK_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How long a read sent with `min_seq` (or `X-Rulebook-Min-Seq`) waits for this instance to
    /// apply the changes through that position before it is answered 503 `not_yet_current`.
    #[arg(long, env = "RULEBOOK_MIN_SEQ_WAIT", default_value = "1s", value_parser = parse_duration)]
    pub min_seq_wait: Duration,

    /// How often `GET /v1/changes` sends a heartbeat event (with the position reached) when
    /// there is no change to send.
    #[arg(long, env = "RULEBOOK_CHANGES_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub changes_heartbeat: Duration,

    /// Whether reads (evaluate, params, score, rules, stats) need a token with the read role.
    /// Off by default when listening on loopback, on otherwise.
    #[arg(long, env = "RULEBOOK_READS_NEED_TOKEN")]
    pub reads_need_token: Option<bool>,

    /// How often the change log is read even when no wake-up came (PostgreSQL NOTIFY, Redis).
    /// This bounds how long a lost wake-up can leave this instance stale; on SQLite it is the
    /// only way changes made elsewhere (plain SQL, another process) arrive.
    #[arg(long, env = "RULEBOOK_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Redis for cross-instance wake-ups, as redis://HOST:PORT[/DB], when several instances share
    /// one PostgreSQL. Optional: PostgreSQL LISTEN/NOTIFY and the poll keep every instance
    /// correct without it, and while it is down (/health shows `redis.up`), and it is picked up
    /// again when it comes back. A URL that does not parse stops the server from starting.
    #[arg(long, env = "RULEBOOK_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// The Redis pub/sub channel. Instances that share one Redis but not one database must each
    /// use their own.
    #[arg(long, env = "RULEBOOK_REDIS_CHANNEL", default_value = rulebook_sync::DEFAULT_REDIS_CHANNEL)]
    pub redis_channel: String,

    /// Log every evaluation answer (its decision id, entry point, the versions of the rules used,
    /// the context and the answer) to the database's decision log, read back with
    /// `GET /v1/decisions`. Stored in batches off the request path, readable within 20 ms.
    #[arg(long, env = "RULEBOOK_DECISION_LOG")]
    pub decision_log: bool,

    /// How long logged decisions are kept before they are pruned, like `30d` or `12h`.
    #[arg(long, env = "RULEBOOK_DECISION_LOG_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub decision_log_retention: Duration,

    /// What the decision log keeps of each context: `full` (the context and its SHA-256) or
    /// `sha256` (only the hash, for contexts that hold personal data).
    #[arg(long, env = "RULEBOOK_DECISION_LOG_CONTEXT", value_enum, default_value_t = LogContext::Full)]
    pub decision_log_context: LogContext,

    /// The most database connections.
    #[arg(long, env = "RULEBOOK_DB_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub db_connections: u32,

    /// Log format.
    #[arg(long, env = "RULEBOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Which logs to show, as a tracing filter such as `info` or `rulebook=debug,sqlx=warn`.
    #[arg(long, env = "RULEBOOK_LOG", default_value = "info,sqlx=warn")]
    pub log: String,
}

/// What the decision log keeps of each context.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogContext {
    /// The context itself, and its SHA-256.
    Full,
    /// Only the SHA-256 of the context.
    Sha256,
}

/// How logs are written (to standard error).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The defaults (and whatever `RULEBOOK_*` variables say) with the database at `url`. Fails
    /// if a `RULEBOOK_*` variable cannot be read.
    pub fn with_database(url: impl Into<String>) -> Result<Config, String> {
        let mut config = Defaults::try_parse_from(["rulebook"])
            .map_err(|e| e.to_string())?
            .config;
        config.database_url = url.into();
        Ok(config)
    }

    /// The change feed's settings: the poll interval, Redis if configured, readiness that turns
    /// false when the change log has not been read for five polls (at least five seconds).
    /// Check them with [`FeedConfig::validate`].
    pub fn feed_config(&self) -> FeedConfig {
        let defaults = FeedConfig::default();
        FeedConfig {
            poll_interval: self.poll_interval,
            redis: self
                .redis_url
                .as_ref()
                .map(|url| RedisConfig::new(url.clone()).with_channel(self.redis_channel.clone())),
            stale_after: self
                .poll_interval
                .saturating_mul(5)
                .max(defaults.stale_after),
            ..defaults
        }
    }

    /// The decision log's settings, when `--decision-log` is on.
    pub fn decision_log_config(&self) -> Option<rulebook_store::DecisionLogConfig> {
        self.decision_log
            .then(|| rulebook_store::DecisionLogConfig {
                retention: self.decision_log_retention,
                context: match self.decision_log_context {
                    LogContext::Full => rulebook_store::ContextPolicy::Full,
                    LogContext::Sha256 => rulebook_store::ContextPolicy::Sha256,
                },
                ..rulebook_store::DecisionLogConfig::default()
            })
    }

    /// Whether reads need a token: as configured, or else only off loopback.
    pub fn reads_need_token(&self) -> bool {
        self.reads_need_token
            .unwrap_or(!self.listen.ip().is_loopback())
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `30d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a number and a unit, like `250ms`, `10s`, `5m`, `1h` or `30d`")
    })?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "`{other}` is not a duration unit: use `ms`, `s`, `m`, `h` or `d`"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("`{text}` is not a duration a server can wait for"))
}

/// Parses `1GiB`, `1MiB`, `512KiB`, `64KB` or a bare number of bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number.parse().map_err(|_| {
        format!(
            "`{text}` is not a size: write a number and a unit, like `1MiB`, `512KiB` or `65536`"
        )
    })?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{other}` is not a size unit: use `B`, `KiB`, `MiB` or `GiB`"
            ))
        }
    };
    value
        .checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a usable body limit: give a positive size"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_and_sizes_read_like_people_write_them() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn the_feed_uses_redis_only_when_given_and_refuses_a_bad_url() {
        let mut config = Config::with_database("x.db").unwrap();
        config.redis_url = None;
        config.poll_interval = Duration::from_secs(2);
        let feed = config.feed_config();
        assert_eq!(feed.poll_interval, Duration::from_secs(2));
        assert_eq!(feed.stale_after, Duration::from_secs(10));
        assert!(feed.redis.is_none());
        assert!(feed.validate().is_ok());
        config.redis_url = Some("redis://127.0.0.1:6379".to_owned());
        let redis = config.feed_config().redis.unwrap();
        assert_eq!(redis.url, "redis://127.0.0.1:6379");
        assert_eq!(redis.channel, rulebook_sync::DEFAULT_REDIS_CHANNEL);
        config.redis_url = Some("localhost:6379".to_owned());
        let err = config.feed_config().validate().unwrap_err().to_string();
        assert!(err.contains("`localhost:6379`"), "{err}");
    }

    #[test]
    fn reads_need_a_token_off_loopback_unless_told() {
        let mut config = Config::with_database("x.db").unwrap();
        config.reads_need_token = None;
        assert!(!config.reads_need_token());
        config.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(config.reads_need_token());
        config.reads_need_token = Some(false);
        assert!(!config.reads_need_token());
    }
}
