//! Scheduled pruning of the change log (see [`rulebook_store::Store::prune_changes`]). Every
//! instance may prune; the deletes are idempotent and the pruning mark only moves forward.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::PruneConfig;
use crate::feed::Shared;

pub(crate) async fn prune_loop(
    shared: Arc<Shared>,
    config: PruneConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let store = shared.registry.store().clone();
    // The first run shortly after start, so a restarted instance cleans up without waiting a
    // whole period, but not in the middle of start-up.
    let mut wait = config.every.min(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
        wait = config.every;
        let result = store.prune_changes(config.keep).await;
        let mut state = shared.state.lock();
        let Some(pruning) = state.pruning.as_mut() else {
            return;
        };
        pruning.runs += 1;
        match result {
            Ok(rows) => {
                pruning.rows_pruned += rows;
                pruning.last_error = None;
                if rows > 0 {
                    tracing::info!(rows, "pruned the change log");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning the change log failed; trying again later");
                pruning.last_error = Some(e.to_string());
            }
        }
    }
}
