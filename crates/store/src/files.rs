//! [`RuleFiles`]: rules kept in a folder of JSON or YAML files.
//!
//! **How files relate to the database.** Files are imported into the store through the normal
//! write path ([`Store::apply_batch`]), one transaction per changed file, recorded with
//! `changed_by` = `file:<path>`. So history, the change log, invalidation and other instances all
//! treat a file edit like any other write, and the registry never reads files itself. A file owns
//! the rules it defines: a rule removed from a file, or a file removed from the folder, deletes
//! those rules (only rules this source imported; rules of files deleted while Rulebook was not
//! running stay until written again).
//!
//! **Scanning.** [`RuleFiles::scan`] reads every rule file under the folder, as the rules
//! crate's one reader of rule documents defines them (`rulebook_rules::rule_files` and
//! `parse_rules`: JSON or YAML, one rule or a list, subfolders followed), and compares content hashes with the previous scan: an unchanged file costs a read and
//! a hash, and a rule whose content did not change is not written again, so a changed file
//! invalidates exactly the rules it changed. A file that does not parse, or holds an invalid rule,
//! is reported in [`RuleFiles::status`] with its path and the error; its last good rules stay in
//! the store and keep serving. [`RuleFiles::watch`] scans on an interval.
//!
//! **The first load** goes through a `rulebook_cache::Cache::get_or_load`, so however many
//! callers ask for it at once ([`RuleFiles::ensure_loaded`]), the folder is read once.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rulebook_cache::{Cache, Loaded};
use rulebook_rules::{parse_rules, rule_files};

use crate::model::Author;
use crate::{Store, StoreError};

/// A problem with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file.
    pub path: String,
    /// What is wrong, and that its last good version is still serving.
    pub error: String,
}

/// What the rule-files source knows, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesStatus {
    /// The folder.
    pub dir: String,
    /// Rule files found by the last scan.
    pub files: usize,
    /// Rules the files define (last good versions).
    pub rules: usize,
    /// Files whose current content could not be used.
    pub problems: Vec<FileProblem>,
    /// Scans run (the first load is one).
    pub scans: u64,
}

/// What one scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files whose content changed (or that are new) and were imported.
    pub files_imported: usize,
    /// Rules created, updated and deleted over all files.
    pub rules_written: usize,
    /// Files that could not be used this time.
    pub problems: usize,
}

/// A folder of rule files imported into the store (see the module docs).
#[derive(Clone)]
pub struct RuleFiles {
    inner: Arc<FilesInner>,
}

struct FilesInner {
    store: Store,
    dir: PathBuf,
    tenant: String,
    /// The first load, coalesced: a cache of one entry that is never invalidated.
    first_load: Cache<(), ScanReport>,
    /// What the last scans found. An async mutex because a scan holds it across database
    /// writes, and two scans must not interleave.
    state: tokio::sync::Mutex<BTreeMap<PathBuf, FileState>>,
    /// Read by `/health` while a scan runs, hence separate from `state`.
    status: parking_lot::Mutex<FilesStatus>,
}

/// One file as last scanned.
#[derive(Debug, Clone)]
struct FileState {
    /// The content's hash, good or not.
    hash: u64,
    /// The ids of the rules its last good content defined.
    rule_ids: BTreeSet<String>,
    /// Why its current content cannot be used, if it cannot.
    problem: Option<String>,
}

impl std::fmt::Debug for RuleFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleFiles")
            .field("dir", &self.inner.dir)
            .field("tenant", &self.inner.tenant)
            .finish_non_exhaustive()
    }
}

impl RuleFiles {
    /// A source for the files under `dir`, imported into `tenant` of `store`. Reads nothing
    /// until [`RuleFiles::ensure_loaded`] or [`RuleFiles::scan`].
    pub fn new(store: Store, dir: impl Into<PathBuf>, tenant: impl Into<String>) -> RuleFiles {
        let dir = dir.into();
        RuleFiles {
            inner: Arc::new(FilesInner {
                store,
                tenant: tenant.into(),
                first_load: Cache::builder().max_capacity(1).build(),
                state: tokio::sync::Mutex::new(BTreeMap::new()),
                status: parking_lot::Mutex::new(FilesStatus {
                    dir: dir.display().to_string(),
                    ..FilesStatus::default()
                }),
                dir,
            }),
        }
    }

    /// Loads the folder if it has not been loaded yet; concurrent callers share one load.
    /// Returns what the first load did.
    pub async fn ensure_loaded(&self) -> Result<Arc<ScanReport>, StoreError> {
        self.inner
            .first_load
            .get_or_load((), || async { self.scan().await.map(Loaded::new) })
            .await
            .map_err(StoreError::from)
    }

    /// Reads the folder and imports what changed since the last scan (see the module docs).
    /// Fails only if the folder itself cannot be read or the store fails; problems with single
    /// files are reported in [`RuleFiles::status`].
    pub async fn scan(&self) -> Result<ScanReport, StoreError> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        let paths = list_rule_files(&inner.dir)?;
        let mut report = ScanReport::default();

        // Files that disappeared: their rules go.
        let gone: Vec<PathBuf> = state
            .keys()
            .filter(|p| !paths.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(old) = state.remove(&path) {
                let ids: Vec<String> = old.rule_ids.into_iter().collect();
                if !ids.is_empty() {
                    let done = inner
                        .store
                        .apply_batch(&inner.tenant, Vec::new(), &ids, &author(&path))
                        .await?;
                    report.rules_written += done.deleted;
                }
            }
        }

        for path in &paths {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    record_problem(&mut state, path, 0, format!("cannot be read ({e})"));
                    continue;
                }
            };
            let hash = content_hash(&bytes);
            if state.get(path).is_some_and(|s| s.hash == hash) {
                continue;
            }
            let owned_elsewhere: BTreeSet<&String> = state
                .iter()
                .filter(|(p, _)| *p != path)
                .flat_map(|(_, s)| s.rule_ids.iter())
                .collect();
            let rules: Vec<_> = match parse_rules(path, &bytes) {
                Ok(documents) => documents.into_iter().map(|d| d.rule).collect(),
                Err(errors) => {
                    let problems: Vec<String> =
                        errors.problems.iter().map(|p| p.to_string()).collect();
                    record_problem(&mut state, path, hash, problems.join("; "));
                    continue;
                }
            };
            if let Some(taken) = rules.iter().find(|r| owned_elsewhere.contains(&r.id)) {
                let problem = format!(
                    "rule `{}` is also defined in another rule file: keep it in one file",
                    taken.id
                );
                record_problem(&mut state, path, hash, problem);
                continue;
            }
            let ids: BTreeSet<String> = rules.iter().map(|r| r.id.clone()).collect();
            let removed: Vec<String> = state
                .get(path)
                .map(|s| s.rule_ids.difference(&ids).cloned().collect())
                .unwrap_or_default();
            match inner
                .store
                .apply_batch(&inner.tenant, rules, &removed, &author(path))
                .await
            {
                Ok(done) => {
                    report.files_imported += 1;
                    report.rules_written += done.created + done.updated + done.deleted;
                    state.insert(
                        path.clone(),
                        FileState {
                            hash,
                            rule_ids: ids,
                            problem: None,
                        },
                    );
                }
                // The rules are not valid (or clash with the store): a problem of this file.
                Err(
                    e @ (StoreError::Validation { .. }
                    | StoreError::Invalid(_)
                    | StoreError::AlreadyExists { .. }),
                ) => record_problem(&mut state, path, hash, e.to_string()),
                Err(e) => return Err(e),
            }
        }

        let mut status = inner.status.lock();
        status.scans += 1;
        status.files = state.len();
        status.rules = state.values().map(|s| s.rule_ids.len()).sum();
        status.problems = state
            .iter()
            .filter_map(|(path, s)| {
                s.problem.as_ref().map(|problem| FileProblem {
                    path: path.display().to_string(),
                    error: format!("{problem}; its last good version keeps serving"),
                })
            })
            .collect();
        report.problems = status.problems.len();
        for problem in &status.problems {
            tracing::warn!(path = %problem.path, error = %problem.error, "rule file not loaded");
        }
        Ok(report)
    }

    /// Scans every `interval` until the returned task is aborted. Errors are logged and kept in
    /// the status; the next scan tries again.
    pub fn watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let files = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = files.scan().await {
                    tracing::warn!(error = %e, "scanning rule files failed");
                }
                tokio::time::sleep(interval).await;
            }
        })
    }

    /// What the source knows now.
    pub fn status(&self) -> FilesStatus {
        self.inner.status.lock().clone()
    }
}

fn author(path: &Path) -> Author {
    Author::new(format!("file:{}", path.display()))
}

fn record_problem(
    state: &mut BTreeMap<PathBuf, FileState>,
    path: &Path,
    hash: u64,
    problem: String,
) {
    let entry = state.entry(path.to_path_buf()).or_insert(FileState {
        hash,
        rule_ids: BTreeSet::new(),
        problem: None,
    });
    entry.hash = hash;
    entry.problem = Some(problem);
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Every rule file under `dir` (see `rulebook_rules::rule_files`).
fn list_rule_files(dir: &Path) -> Result<BTreeSet<PathBuf>, StoreError> {
    let not_a_folder = |reason: String| StoreError::File {
        path: dir.display().to_string(),
        reason,
    };
    if !dir.is_dir() {
        return Err(not_a_folder(
            "the rules folder cannot be read (it is not a folder); check that it exists".into(),
        ));
    }
    match rule_files(dir) {
        Ok(files) => Ok(files.into_iter().collect()),
        Err(errors) => Err(not_a_folder(format!(
            "the rules folder cannot be read ({errors})"
        ))),
    }
}
