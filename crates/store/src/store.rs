//! [`Store`]: opening a database, tenants, and the reads the registry loads from.

use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use rulebook_rules::{EntryPoint, Rule, DEFAULT_TENANT};

use crate::change_log::{Change, ChangeListener};
use crate::db::{args, redact_url, Backend, Pool, StoreOptions};
use crate::error::{db_error, StoreError};
use crate::model::{
    fetch_rule, Author, HistoryEntry, HistoryRow, RuleRow, HISTORY_COLUMNS, RULE_COLUMNS,
};

/// The rule store: one behaviour over SQLite or PostgreSQL. Cheap to clone (an `Arc` inside).
///
/// Every write is one transaction committing the rule row, its history row and (through the
/// database's triggers) its change-log row. After the commit, and only then, the committed changes
/// go to every registered [`ChangeListener`] (the [`crate::Registry`] among them) before the write
/// returns, so the writer reads its own write.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    pool: Pool,
    /// The URL with any password hidden, for status pages.
    url: String,
    /// A random id for this store, so that its own messages to other instances (notification
    /// payloads, Redis messages) can be told apart when they come back.
    instance_id: String,
    /// Told of each commit. Weak, so that a registry dropped by its owner stops being told
    /// (and the store does not keep it alive). A read-write lock because commits only read it.
    listeners: RwLock<Vec<Weak<dyn ChangeListener>>>,
    /// The test-only switches of the write path (see `hooks.rs`).
    #[cfg(feature = "test-hooks")]
    pub(crate) hooks: crate::hooks::WriteHooks,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating it if it is an SQLite file that does not exist) and migrates the database
    /// at `url`: a file path or `sqlite://PATH` for SQLite, `postgres://USER@HOST/DB` for
    /// PostgreSQL. Then makes sure the tenant `default` exists.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with options.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let pool = Pool::open(url, &options).await?;
        let store = Store {
            inner: Arc::new(StoreInner {
                pool,
                url: redact_url(url),
                instance_id: format!("{:016x}", rand::random::<u64>()),
                listeners: RwLock::new(Vec::new()),
                #[cfg(feature = "test-hooks")]
                hooks: crate::hooks::WriteHooks::default(),
            }),
        };
        if options.migrate {
            store.create_tenant(DEFAULT_TENANT).await?;
        }
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.inner.pool.backend()
    }

    /// The database URL with any password hidden.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// This store's random id, which signs the changes it sends to other instances (see
    /// [`crate::ChangeNotifications`]), so that it can skip its own when they come back.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn hooks(&self) -> &crate::hooks::WriteHooks {
        &self.inner.hooks
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Checks that the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut held = self.pool().acquire().await?;
        let _: (i64,) = held
            .conn()
            .fetch_one("SELECT CAST(1 AS BIGINT)", args![])
            .await
            .map_err(|e| db_error("checking the database", e))?;
        Ok(())
    }

    /// Registers `listener` to be told of every change committed through this store, until the
    /// listener is dropped.
    pub fn subscribe(&self, listener: &Arc<dyn ChangeListener>) {
        self.inner.listeners.write().push(Arc::downgrade(listener));
    }

    /// Hands committed changes to every live listener.
    pub(crate) fn publish(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let live: Vec<Arc<dyn ChangeListener>> = {
            let mut listeners = self.inner.listeners.write();
            listeners.retain(|l| l.strong_count() > 0);
            listeners.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in live {
            listener.committed(changes);
        }
    }

    // --- tenants ---------------------------------------------------------------------------

    /// Creates tenant `id` if it does not exist; returns whether it was created. A tenant id is
    /// 1 to 64 characters of `a-z`, `0-9`, `_`, `-` and `.`, starting with a letter or digit.
    pub async fn create_tenant(&self, id: &str) -> Result<bool, StoreError> {
        validate_tenant_id(id)?;
        let mut held = self.pool().acquire().await?;
        let created = held
            .conn()
            .execute(
                "INSERT INTO tenants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                args![id],
            )
            .await
            .map_err(|e| db_error("creating a tenant", e))?;
        Ok(created > 0)
    }

    /// Whether tenant `id` exists.
    pub async fn tenant_exists(&self, id: &str) -> Result<bool, StoreError> {
        let mut held = self.pool().acquire().await?;
        tenant_exists(&mut held.conn(), id).await
    }

    /// Every tenant, sorted.
    pub async fn list_tenants(&self) -> Result<Vec<String>, StoreError> {
        let mut held = self.pool().acquire().await?;
        let rows: Vec<(String,)> = held
            .conn()
            .fetch_all("SELECT id FROM tenants ORDER BY id", args![])
            .await
            .map_err(|e| db_error("listing tenants", e))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    // --- reads -----------------------------------------------------------------------------

    /// One rule.
    pub async fn get_rule(&self, tenant: &str, id: &str) -> Result<Rule, StoreError> {
        let mut held = self.pool().acquire().await?;
        let mut conn = held.conn();
        match fetch_rule(&mut conn, tenant, id).await? {
            Some(rule) => Ok(rule),
            None if !tenant_exists(&mut conn, tenant).await? => {
                Err(StoreError::UnknownTenant(tenant.to_owned()))
            }
            None => Err(StoreError::NotFound {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            }),
        }
    }

    /// A tenant's rules, all of them or those of one entry point, by priority then id.
    pub async fn list_rules(
        &self,
        tenant: &str,
        entry_point: Option<&EntryPoint>,
    ) -> Result<Vec<Rule>, StoreError> {
        let mut held = self.pool().acquire().await?;
        let mut conn = held.conn();
        if !tenant_exists(&mut conn, tenant).await? {
            return Err(StoreError::UnknownTenant(tenant.to_owned()));
        }
        let rows: Vec<RuleRow> = match entry_point {
            Some(ep) => {
                conn.fetch_all(
                    &format!(
                        "SELECT {RULE_COLUMNS} FROM rules WHERE tenant = $1 AND entry_point = $2 \
                         ORDER BY priority, id"
                    ),
                    args![tenant, ep.as_str()],
                )
                .await
            }
            None => {
                conn.fetch_all(
                    &format!(
                        "SELECT {RULE_COLUMNS} FROM rules WHERE tenant = $1 ORDER BY priority, id"
                    ),
                    args![tenant],
                )
                .await
            }
        }
        .map_err(|e| db_error("reading rules", e))?;
        rows.into_iter().map(RuleRow::into_rule).collect()
    }

    /// The rules of one entry point (what a ruleset compiles from).
    pub async fn entry_point_rules(
        &self,
        tenant: &str,
        entry_point: &EntryPoint,
    ) -> Result<Vec<Rule>, StoreError> {
        self.list_rules(tenant, Some(entry_point)).await
    }

    /// The rules a tenant's parameter snapshot is built from: every rule of the tenant, since
    /// any rule may carry params and `is_enabled` answers for every rule.
    pub async fn parameter_rules(&self, tenant: &str) -> Result<Vec<Rule>, StoreError> {
        self.list_rules(tenant, None).await
    }

    /// The rules of scorecard `name`: those tagged `scorecard:<name>`.
    pub async fn scorecard_rules(&self, tenant: &str, name: &str) -> Result<Vec<Rule>, StoreError> {
        let tag = format!("scorecard:{name}");
        let mut rules = self.list_rules(tenant, None).await?;
        rules.retain(|r| r.has_tag(&tag));
        Ok(rules)
    }

    /// A rule's audit trail, oldest first. Also answers for a deleted rule.
    pub async fn history(&self, tenant: &str, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut held = self.pool().acquire().await?;
        let mut conn = held.conn();
        let rows: Vec<HistoryRow> = conn
            .fetch_all(
                &format!(
                    "SELECT {HISTORY_COLUMNS} FROM rule_history \
                     WHERE tenant = $1 AND rule_id = $2 ORDER BY version, id"
                ),
                args![tenant, id],
            )
            .await
            .map_err(|e| db_error("reading a rule's history", e))?;
        if rows.is_empty() {
            if !tenant_exists(&mut conn, tenant).await? {
                return Err(StoreError::UnknownTenant(tenant.to_owned()));
            }
            return Err(StoreError::NotFound {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            });
        }
        rows.into_iter().map(|r| r.into_entry(tenant, id)).collect()
    }

    // --- seeding ---------------------------------------------------------------------------

    /// Creates tenant `default` and, if it has no rules yet, imports the example rules into it.
    /// Idempotent, also when two instances start at once. Returns how many rules were written.
    pub async fn seed_defaults(&self) -> Result<usize, StoreError> {
        self.create_tenant(DEFAULT_TENANT).await?;
        if !self.list_rules(DEFAULT_TENANT, None).await?.is_empty() {
            return Ok(0);
        }
        let rules = rulebook_rules::examples::seed_rules(DEFAULT_TENANT);
        let seeded = self
            .import_rules(
                DEFAULT_TENANT,
                rules,
                &Author::new("rulebook:seed").with_reason("example rules seeded on first start"),
            )
            .await;
        match seeded {
            Ok(report) => Ok(report.created),
            // Another instance seeded at the same moment and committed first.
            Err(StoreError::AlreadyExists { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }
}

pub(crate) async fn tenant_exists(
    conn: &mut crate::db::Conn<'_>,
    id: &str,
) -> Result<bool, StoreError> {
    let row: Option<(String,)> = conn
        .fetch_optional("SELECT id FROM tenants WHERE id = $1", args![id])
        .await
        .map_err(|e| db_error("reading tenants", e))?;
    Ok(row.is_some())
}

/// Tenant ids appear in cache tags (`<tenant>/...`) and URLs, so they are kept plain.
pub(crate) fn validate_tenant_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "tenant `{id}` is not a valid tenant id: use 1 to 64 characters of a-z, 0-9, `_`, `-` and `.`, starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_tenant_id;

    #[test]
    fn tenant_ids_are_plain() {
        assert!(validate_tenant_id("default").is_ok());
        assert!(validate_tenant_id("acme-eu.2").is_ok());
        for bad in ["", "Acme", "a/b", "-x", &"x".repeat(65)] {
            assert!(validate_tenant_id(bad).is_err(), "{bad}");
        }
    }
}
