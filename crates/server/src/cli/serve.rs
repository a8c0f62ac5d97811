//! `rulebook serve`.

use clap::Args;

use super::{out, CliError, Exit};
use crate::config::Config;
use crate::server::{shutdown_signal, Server};

/// `rulebook serve`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  rulebook serve
  rulebook serve --listen 127.0.0.1:0 --database-url /tmp/rules.db
  rulebook serve --database-url postgres://rulebook@127.0.0.1/rulebook --rules-dir ./rules
  rulebook serve --database-url postgres://rulebook@db/rulebook --redis-url redis://cache:6379
  RULEBOOK_LOG_FORMAT=json RULEBOOK_READS_NEED_TOKEN=true rulebook serve --listen 0.0.0.0:8080

Several instances may share one PostgreSQL database: a change made through any of them, or in \
psql, reaches every instance within milliseconds (LISTEN/NOTIFY, and Redis when given) and \
within one --poll-interval at worst. /health shows the change feed's state.

On start one line says where the API, /metrics and the admin page are, and the admin token if \
one was just generated (it is shown once: keep it). SIGTERM or Ctrl-C stop the server after the \
requests in flight have finished.")]
pub struct ServeArgs {
    #[command(flatten)]
    config: Config,
}

impl ServeArgs {
    /// Runs the server until SIGTERM or Ctrl-C.
    pub async fn run(self) -> Result<(), CliError> {
        let config = self.config;
        crate::logging::init(config.log_format, &config.log);
        let failed = |e: crate::server::StartError| CliError::new(Exit::Server, e.to_string());
        let server = Server::start(&config).await.map_err(failed)?;
        let listener = Server::bind(config.listen).await.map_err(failed)?;
        let addr = listener.local_addr().map_err(|e| {
            CliError::new(Exit::Server, format!("cannot read the bound address: {e}"))
        })?;
        let token = match (server.generated_token(), &config.admin_token) {
            (Some(token), _) => format!("admin token {token} (shown once: keep it)"),
            (None, Some(_)) => "admin token from RULEBOOK_ADMIN_TOKEN".to_owned(),
            (None, None) => "tokens: `rulebook tokens list`".to_owned(),
        };
        out(format!(
            "rulebook serving http://{addr} ({} {}): API http://{addr}/v1, metrics http://{addr}/metrics, admin page http://{addr}/admin; {token}",
            server.state().store().backend().name(),
            server.state().store().url(),
        ));
        server
            .serve(listener, shutdown_signal())
            .await
            .map_err(|e| CliError::new(Exit::Server, format!("the server failed: {e}")))
    }
}
