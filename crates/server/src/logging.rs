//! Structured logs with `tracing`, as text or JSON, on standard error.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `filter` is a tracing filter such as `info,sqlx=warn`; an
/// invalid one falls back to `info` and says so. Installing twice keeps the first.
pub fn init(format: LogFormat, filter: &str) {
    let (filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if installed.is_ok() {
        if let Some(error) = bad {
            tracing::warn!(
                error,
                "the log filter (RULEBOOK_LOG) is not valid; using `info`"
            );
        }
    }
}
