//! Rule documents: the one reader of rule files, used by the store's rules folder
//! (`serve --rules-dir`), the CLI (`rulebook rules create|update|import`) and anything else that
//! turns files into rules.
//!
//! **What a file is.** A `.json`, `.yaml` or `.yml` file holds one rule (an object) or several (a
//! list of objects). `.json` is read as JSON and `.yaml`/`.yml` as YAML; any other name (standard
//! input, `-`) is tried as JSON and then as YAML.
//!
//! **What a folder is.** Every rule file under it, following subfolders, in path order (so the
//! same folder is read in the same order everywhere); other files are ignored, and a folder
//! reached twice through a link is read once.
//!
//! **Problems.** Nothing stops at the first problem: every file is read, every rule in it is
//! checked with [`Rule::from_json_value`], and each problem is reported as a [`DocumentProblem`]
//! naming its file, the rule's place in the file when the file holds a list, and the field path
//! inside the rule (`actions[0].type`).
//!
//! **Django.** [`parse_django`] reads a `manage.py dumpdata` file instead (see
//! [`crate::django`] for the format and its field mapping), and report their problems the same
//! way, the field path then being the entry's path in the dump (`[3].fields.condition`).
//!
//! This is the rules crate's only contact with the file system, and it only reads.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::django::{django_rules, DjangoMapping};
use crate::validation::describe;
use crate::Rule;

/// Where a rule was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSource {
    /// The file (`-` for standard input).
    pub file: PathBuf,
    /// The rule's place in the file, from 0.
    pub index: usize,
    /// How many rules the file holds (1 for a file holding one rule as an object).
    pub of: usize,
}

impl fmt::Display for DocumentSource {
    /// `` `a.json` `` for a file of one rule, `` rule 2 of `a.json` `` for the second of a list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.of == 1 {
            write!(f, "`{}`", self.file.display())
        } else {
            write!(f, "rule {} of `{}`", self.index + 1, self.file.display())
        }
    }
}

/// A document read from a file, not yet checked as a rule (see [`read_documents`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where it was read from.
    pub source: DocumentSource,
    /// The document as written.
    pub value: Value,
}

/// A rule read from a file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDocument {
    /// Where it was read from.
    pub source: DocumentSource,
    /// The rule.
    pub rule: Rule,
}

/// One problem with one file, or with one rule of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentProblem {
    /// The file or folder.
    pub file: PathBuf,
    /// The rule within the file (`None`: the file itself, such as its syntax).
    pub rule: Option<DocumentSource>,
    /// The rule's id, when the document names one.
    pub id: Option<String>,
    /// The field path inside the rule (`priority`, `actions[0].type`); empty for the whole rule
    /// or file.
    pub field: String,
    /// What is wrong and how to fix it, in lower case.
    pub message: String,
}

impl fmt::Display for DocumentProblem {
    /// `` rule 2 of `a.json` (`R-2`): `priority`: must be a whole number ... ``
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(source) => write!(f, "{source}")?,
            None => write!(f, "`{}`", self.file.display())?,
        }
        if let Some(id) = &self.id {
            write!(f, " (`{id}`)")?;
        }
        if !self.field.is_empty() {
            write!(f, ": `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentErrors {
    /// The problems.
    pub problems: Vec<DocumentProblem>,
}

impl fmt::Display for DocumentErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DocumentErrors {}

impl DocumentErrors {
    fn file(file: &Path, message: String) -> DocumentErrors {
        DocumentErrors {
            problems: vec![DocumentProblem {
                file: file.to_path_buf(),
                rule: None,
                id: None,
                field: String::new(),
                message,
            }],
        }
    }
}

/// Whether `path` names a rule file by its extension (`.json`, `.yaml`, `.yml`).
pub fn is_rule_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "yaml" | "yml")
    )
}

/// The rule files `path` names: itself when it is not a folder, else every rule file under it,
/// following subfolders, sorted by path (see the module docs).
///
/// # Errors
///
/// A folder (the given one or one under it) that cannot be listed.
pub fn rule_files(path: &Path) -> Result<Vec<PathBuf>, DocumentErrors> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(folder) = pending.pop() {
        // A link back to a folder already read is skipped, so a loop ends.
        let real = std::fs::canonicalize(&folder).unwrap_or_else(|_| folder.clone());
        if !visited.insert(real) {
            continue;
        }
        let entries = std::fs::read_dir(&folder).map_err(|e| {
            DocumentErrors::file(
                &folder,
                format!("the folder cannot be read ({e}); check that it exists and is readable"),
            )
        })?;
        for entry in entries.flatten() {
            let entry = entry.path();
            if entry.is_dir() {
                pending.push(entry);
            } else if is_rule_file(&entry) {
                found.insert(entry);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Reads every document of the file or folder `path` without checking them as rules, for a
/// caller that sends them on to be checked elsewhere (the CLI's `create` and `update`).
///
/// # Errors
///
/// Every problem of every file: a file or folder that cannot be read, a file that is not JSON or
/// YAML or holds neither a rule nor a list.
pub fn read_documents(path: &Path) -> Result<Vec<Document>, DocumentErrors> {
    let (documents, problems) = read_each(path, &mut |_| {})?;
    if problems.is_empty() {
        Ok(documents)
    } else {
        Err(DocumentErrors { problems })
    }
}

/// Reads every rule of the file or folder `path` (see the module docs).
///
/// # Errors
///
/// Every problem of every file: a file or folder that cannot be read, a file that is not JSON or
/// YAML or holds neither a rule nor a list, and every problem of every rule.
pub fn read_rules(path: &Path) -> Result<Vec<RuleDocument>, DocumentErrors> {
    read_rules_with(path, |_| {})
}

/// How far [`read_rules_with`] has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadProgress {
    /// `done` of `total` files read (told after each file).
    Read {
        /// Files read so far.
        done: usize,
        /// Files in all.
        total: usize,
    },
    /// `done` of `total` documents checked as rules (told every few hundred, and at the end).
    Checked {
        /// Documents checked so far.
        done: usize,
        /// Documents in all.
        total: usize,
    },
}

/// [`read_rules`], telling `progress` how far it has come: first files read, then documents
/// checked.
///
/// # Errors
///
/// As [`read_rules`].
pub fn read_rules_with(
    path: &Path,
    mut progress: impl FnMut(ReadProgress),
) -> Result<Vec<RuleDocument>, DocumentErrors> {
    let (documents, mut problems) = read_each(path, &mut progress)?;
    match check_rules(documents, &mut progress) {
        Ok(rules) if problems.is_empty() => Ok(rules),
        Ok(_) => Err(DocumentErrors { problems }),
        Err(more) => {
            problems.extend(more.problems);
            Err(DocumentErrors { problems })
        }
    }
}

/// Reads the rules in the content `bytes` of the Django `dumpdata` file `file` (whose name picks
/// JSON or YAML, as for rule files).
///
/// # Errors
///
/// A syntax error, a document that is not a list of entries, or every problem of every entry.
pub fn parse_django(
    file: &Path,
    bytes: &[u8],
    mapping: &DjangoMapping,
) -> Result<Vec<RuleDocument>, DocumentErrors> {
    let entries = parse_values(file, bytes)?;
    let of = entries.len();
    let source = |index: usize| DocumentSource {
        file: file.to_path_buf(),
        index,
        of,
    };
    match django_rules(&entries, mapping) {
        Ok(rules) => Ok(rules
            .into_iter()
            .map(|r| RuleDocument {
                source: source(r.index),
                rule: r.rule,
            })
            .collect()),
        Err(errors) => Err(DocumentErrors {
            problems: errors
                .problems
                .into_iter()
                .map(|e| {
                    let index = entry_index(&e.path);
                    DocumentProblem {
                        file: file.to_path_buf(),
                        rule: index.map(source),
                        id: index
                            .and_then(|i| entries.get(i))
                            .and_then(|entry| django_id(entry, mapping)),
                        field: e.path,
                        message: e.message,
                    }
                })
                .collect(),
        }),
    }
}

/// The index a dump path starts with (`[3].fields.condition` is 3).
fn entry_index(path: &str) -> Option<usize> {
    let (index, _) = path.strip_prefix('[')?.split_once(']')?;
    index.parse().ok()
}

/// The id an entry names, for naming it in a problem.
fn django_id(entry: &Value, mapping: &DjangoMapping) -> Option<String> {
    let fields = entry.get("fields")?.as_object()?;
    fields
        .iter()
        .find(|(name, _)| mapping.maps_to(name, "id"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
}

/// The documents of every file `path` names that could be read, and the problems of the others.
fn read_each(
    path: &Path,
    progress: &mut impl FnMut(ReadProgress),
) -> Result<(Vec<Document>, Vec<DocumentProblem>), DocumentErrors> {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    let files = rule_files(path)?;
    let total = files.len();
    for (done, file) in files.into_iter().enumerate() {
        let read = std::fs::read(&file)
            .map_err(|e| {
                DocumentErrors::file(
                    &file,
                    format!("cannot be read ({e}); check that it exists and is readable"),
                )
            })
            .and_then(|bytes| parse_documents(&file, &bytes));
        match read {
            Ok(found) => documents.extend(found),
            Err(errors) => problems.extend(errors.problems),
        }
        progress(ReadProgress::Read {
            done: done + 1,
            total,
        });
    }
    Ok((documents, problems))
}

/// Reads the rules in the content `bytes` of `file` (whose name picks the syntax).
///
/// # Errors
///
/// A syntax error, a document that is neither a rule nor a list of rules, or every problem of
/// every rule in it.
pub fn parse_rules(file: &Path, bytes: &[u8]) -> Result<Vec<RuleDocument>, DocumentErrors> {
    check_rules(parse_documents(file, bytes)?, &mut |_| {})
}

/// Checks each document as a rule, collecting every problem of every one.
fn check_rules(
    documents: Vec<Document>,
    progress: &mut impl FnMut(ReadProgress),
) -> Result<Vec<RuleDocument>, DocumentErrors> {
    let total = documents.len();
    let mut rules = Vec::with_capacity(total);
    let mut problems = Vec::new();
    for (done, Document { source, value }) in documents.into_iter().enumerate() {
        if done % 256 == 0 {
            progress(ReadProgress::Checked { done, total });
        }
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        match Rule::from_json_value(value) {
            Ok(rule) => rules.push(RuleDocument { source, rule }),
            Err(errors) => problems.extend(errors.errors.into_iter().map(|e| DocumentProblem {
                file: source.file.clone(),
                rule: Some(source.clone()),
                id: id.clone(),
                field: e.path,
                message: e.message,
            })),
        }
    }
    progress(ReadProgress::Checked { done: total, total });
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(DocumentErrors { problems })
    }
}

/// The documents in `bytes` of `file`, one object or each item of a list, with their places.
pub fn parse_documents(file: &Path, bytes: &[u8]) -> Result<Vec<Document>, DocumentErrors> {
    let values = parse_values(file, bytes)?;
    let of = values.len();
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(index, value)| Document {
            source: DocumentSource {
                file: file.to_path_buf(),
                index,
                of,
            },
            value,
        })
        .collect())
}

/// The values in `bytes`: one object, or each item of a list.
fn parse_values(file: &Path, bytes: &[u8]) -> Result<Vec<Value>, DocumentErrors> {
    let syntax = |message: String| DocumentErrors::file(file, message);
    let value: Value = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_slice(bytes)
            .map_err(|e| syntax(format!("is not valid JSON ({e}); fix its syntax")))?,
        Some("yaml" | "yml") => serde_yaml::from_slice(bytes)
            .map_err(|e| syntax(format!("is not valid YAML ({e}); fix its syntax")))?,
        _ => match serde_json::from_slice(bytes) {
            Ok(value) => value,
            Err(json) => serde_yaml::from_slice(bytes).map_err(|yaml| {
                syntax(format!(
                    "is neither JSON ({json}) nor YAML ({yaml}); fix its syntax"
                ))
            })?,
        },
    };
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(_) => Ok(vec![value]),
        other => Err(syntax(format!(
            "holds {}, neither a rule (an object) nor a list of rules",
            describe(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_file_holds_one_rule_or_a_list() {
        let one = parse_rules(Path::new("a.json"), br#"{"id": "R1"}"#).map(|r| r.len());
        assert_eq!(one, Ok(1));
        let list = parse_rules(Path::new("a.yaml"), b"- id: R1\n- id: R2\n").map(|r| r.len());
        assert_eq!(list, Ok(2));
        // Standard input and other names: JSON, else YAML.
        let yaml =
            parse_rules(Path::new("-"), b"id: R1\npriority: 3\n").map(|r| r[0].rule.priority);
        assert_eq!(yaml, Ok(3));
    }

    #[test]
    fn every_problem_of_every_rule_names_its_place() {
        let errors = parse_rules(
            Path::new("a.yml"),
            b"- id: R1\n- id: R2\n  priority: high\n  colour: red\n- id: ''\n",
        )
        .unwrap_err();
        let places: Vec<(Option<usize>, &str)> = errors
            .problems
            .iter()
            .map(|p| (p.rule.as_ref().map(|s| s.index), p.field.as_str()))
            .collect();
        // In document order.
        assert_eq!(
            places,
            [(Some(1), "priority"), (Some(1), "colour"), (Some(2), "id")]
        );
        let text = errors.to_string();
        assert!(
            text.lines()
                .any(|l| l.starts_with("rule 2 of `a.yml` (`R2`): `priority`: must be a whole")),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_file_says_what_is_wrong() {
        let syntax = parse_rules(Path::new("a.json"), b"{\"id\": ").unwrap_err();
        assert!(syntax
            .to_string()
            .starts_with("`a.json`: is not valid JSON"));
        let scalar = parse_rules(Path::new("a.json"), b"42").unwrap_err();
        assert!(scalar.to_string().contains("neither a rule"), "{scalar}");
        assert_eq!(scalar.problems[0].rule, None);
    }

    #[test]
    fn a_django_dump_in_yaml_reads_as_rules_and_its_problems_name_the_entry() {
        let dump = b"- model: rules_engine.actedrule\n  pk: 1\n  fields:\n    rule_code: banner\n    entry_point: home_page_mount\n    active: true\n    condition: {always: true}\n    actions: [{type: display_message, content: Test}]\n    active_from: 2025-01-15 10:30:00.123000+00:00\n- model: rules_engine.actedrule\n  pk: 2\n  fields: {rule_code: other, priority: high}\n";
        let mapping = DjangoMapping::default();
        let errors = parse_django(Path::new("dump.yaml"), dump, &mapping).unwrap_err();
        let text = errors.to_string();
        assert_eq!(
            text.lines().collect::<Vec<_>>().len(),
            1,
            "one problem: {text}"
        );
        assert!(
            text.starts_with("rule 2 of `dump.yaml` (`other`): `[1].fields.priority`: "),
            "{text}"
        );
        let fixed = String::from_utf8_lossy(dump).replace("priority: high", "priority: 3");
        let rules = parse_django(Path::new("dump.yaml"), fixed.as_bytes(), &mapping).unwrap();
        let read: Vec<(&str, bool, usize)> = rules
            .iter()
            .map(|d| {
                (
                    d.rule.id.as_str(),
                    d.rule.condition == Value::Bool(true),
                    d.source.index,
                )
            })
            .collect();
        assert_eq!(read, [("banner", true, 0), ("other", true, 1)]);
        // YAML dumps write times as `2025-01-15 10:30:00.123000+00:00`.
        assert_eq!(
            rules[0].rule.active_from.map(|t| t.to_rfc3339()),
            Some("2025-01-15T10:30:00.123+00:00".to_owned())
        );
    }

    #[test]
    fn a_folder_is_read_with_its_subfolders_in_path_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sub = dir.join("b_sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.join("c.json"), br#"{"id": "C"}"#).unwrap();
        std::fs::write(dir.join("a.yaml"), b"- id: A1\n- id: A2\n").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a rule").unwrap();
        std::fs::write(sub.join("b.yml"), b"id: B\n").unwrap();
        std::fs::write(sub.join("bad.json"), br#"{"id": "X", "priority": "high"}"#).unwrap();
        let errors = read_rules(dir).unwrap_err();
        assert_eq!(errors.problems.len(), 1);
        assert_eq!(errors.problems[0].file, sub.join("bad.json"));
        std::fs::remove_file(sub.join("bad.json")).unwrap();
        let ids: Vec<String> = read_rules(dir)
            .unwrap()
            .into_iter()
            .map(|d| d.rule.id)
            .collect();
        assert_eq!(ids, ["A1", "A2", "B", "C"]);
    }
}
