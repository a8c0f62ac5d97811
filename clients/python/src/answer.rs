//! An evaluation's answer as Python objects, built by hand: the HTTP answer's shape and key
//! order, `{"seq", "entry_point", "at", "matched", "actions", "stopped_by"?, "errors",
//! "explain"?}`, as `json.loads` would make it from the server's answer.
//!
//! Most of an answer is the same from call to call: a matched rule's `{"id", "version",
//! "priority"}` and a fired action's `rule_id`, `type`, field names and the fields written as
//! plain values. Building those through `serde` (as [`crate::json::to_python`] does) makes a new
//! Python string for every key and id of every answer, which cost more than the evaluation
//! itself. So each client keeps [`Prototypes`]: one dict per matched rule and per compiled
//! action, made once, and each answer holds shallow copies of them (a dict's copy is one C
//! call) with the computed values set in place. A copy shares only strings, numbers, booleans
//! and `None`, which cannot change: a field written as a list or an object is built again for
//! every answer, so mutating an answer never reaches the next one.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};
use rulebook_rules::{Evaluation, FiredAction, MatchedRule};
use serde_json::Value;

use crate::json::{to_python, value_to_python};

/// How many rules a client keeps prototypes for at most: past it they are all dropped (and made
/// again as answers need them). The bound stops prototypes of rules that no longer exist (kept
/// alive by the clones below) from piling up between changes.
const MAX_RULES: usize = 4096;

/// How many entry points' names a client keeps as Python strings at most (looked up one by one).
const MAX_ENTRY_POINTS: usize = 32;

/// The prototype dicts of one client, made for the answers of the replica's `seq` and dropped
/// when an answer of another `seq` comes (their rules may have changed).
#[derive(Default)]
pub(crate) struct Prototypes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seq: i64,
    /// Where each rule's prototypes are in `rules`, by the address of its id (`MatchedRule::id`,
    /// which its fired actions' `rule_id` shares).
    places: HashMap<usize, usize, foldhash::fast::RandomState>,
    rules: Vec<RulePrototype>,
    /// `seq` as a Python int, made once.
    seq_int: Option<Py<PyAny>>,
    /// The entry points answered, as Python strings.
    entry_points: Vec<(String, Py<PyString>)>,
    /// Room for an answer's places of its matched rules in `rules`.
    matched_places: Vec<usize>,
}

/// A matched rule's `{"id", "version", "priority"}` and the prototypes of its actions.
struct RulePrototype {
    /// Keeps the id alive, so that its address names no other rule while this is kept.
    _id: Arc<str>,
    address: usize,
    version: i64,
    priority: i32,
    dict: Py<PyDict>,
    /// By the order the rule's actions fire in.
    actions: Vec<ActionPrototype>,
}

struct ActionPrototype {
    /// Keeps the compiled action alive, so that its `template_id` names no other while this is
    /// kept.
    fired: FiredAction,
    /// `{"rule_id", "type", ...fields}` with `None` at the places computed or written as a
    /// list or an object.
    dict: Py<PyDict>,
    /// Every field's name, by place.
    names: Vec<Py<PyString>>,
    /// The places of the fields written as a list or an object, built for each answer.
    containers: Vec<usize>,
}

impl Prototypes {
    /// `evaluation`, read at `seq`, as the server's answer (without `decision_id`).
    ///
    /// Errors: a Python error making an object (out of memory).
    pub(crate) fn answer<'py>(
        &self,
        py: Python<'py>,
        seq: i64,
        evaluation: &Evaluation,
    ) -> PyResult<Bound<'py, PyDict>> {
        // Never waited for with the GIL held: the holder needs the GIL to finish. It is busy
        // only when a conversion re-enters (the garbage collector running a finalizer that
        // evaluates) or another thread got the GIL while a finalizer released it; that
        // answer is built without the prototypes, from fresh ones.
        let mut fresh = State::default();
        let mut held = self.state.try_lock();
        let state = match held.as_deref_mut() {
            Some(state) => {
                if state.seq != seq || state.rules.len() > MAX_RULES {
                    *state = State {
                        seq,
                        ..State::default()
                    };
                }
                state
            }
            None => &mut fresh,
        };
        let dict = top(py, evaluation.stopped_by.is_some())?.copy()?;
        let seq_int = match &state.seq_int {
            Some(int) => int.clone_ref(py),
            None => state
                .seq_int
                .insert(seq.into_pyobject(py)?.into_any().unbind())
                .clone_ref(py),
        };
        dict.set_item(intern!(py, "seq"), seq_int)?;
        dict.set_item(
            intern!(py, "entry_point"),
            state.entry_point(py, evaluation.entry_point.as_str()),
        )?;
        dict.set_item(intern!(py, "at"), rfc3339(evaluation.at))?;
        let mut matched = Vec::with_capacity(evaluation.matched.len());
        // Where each matched rule's prototypes are in `state.rules`, in a vector kept between
        // answers (put back below).
        let mut places = std::mem::take(&mut state.matched_places);
        places.clear();
        for rule in &evaluation.matched {
            let place = state.rule(py, rule)?;
            matched.push(state.rules[place].dict.bind(py).copy()?);
            places.push(place);
        }
        dict.set_item(intern!(py, "matched"), PyList::new(py, matched)?)?;
        // The actions come rule by rule, in the order the rules matched: each is its rule's
        // `nth`. An action is first looked for where the last one was found (the same rule's
        // next action, or the next rule's first), by its compiled action's identity alone;
        // only when that fails is its rule looked for by id, which reads the compiled action
        // (memory the evaluation may not have touched).
        let mut actions = Vec::with_capacity(evaluation.actions.len());
        let (mut next, mut nth) = (0, 0);
        for fired in &evaluation.actions {
            let id = fired.template_id();
            let kept = |rule: usize, nth: usize| {
                places
                    .get(rule)
                    .and_then(|&place| state.rules[place].actions.get(nth))
            };
            let found = match kept(next, nth) {
                Some(prototype) if prototype.fired.template_id() == id => Some(prototype),
                _ => match kept(next + 1, 0) {
                    Some(prototype) if prototype.fired.template_id() == id => {
                        (next, nth) = (next + 1, 0);
                        Some(prototype)
                    }
                    _ => None,
                },
            };
            actions.push(match found {
                Some(prototype) => prototype.fill(py, fired)?,
                None => {
                    let address = fired.rule_id().as_ptr() as usize;
                    if places.get(next).map(|&place| state.rules[place].address) != Some(address) {
                        nth = 0;
                        next = (next..places.len())
                            .find(|&rule| state.rules[places[rule]].address == address)
                            .unwrap_or(places.len());
                    }
                    match places.get(next) {
                        Some(&place) => state.rules[place].action(py, nth, fired)?,
                        // Not an action of a matched rule, which the rules crate does not
                        // make: built without keeping anything.
                        None => ActionPrototype::new(py, fired)?.fill(py, fired)?,
                    }
                }
            });
            nth += 1;
        }
        dict.set_item(intern!(py, "actions"), PyList::new(py, actions)?)?;
        state.matched_places = places;
        if let Some(stopper) = &evaluation.stopped_by {
            dict.set_item(intern!(py, "stopped_by"), stopper)?;
        }
        let errors = match evaluation.errors.is_empty() {
            true => PyList::empty(py).into_any(),
            false => to_python(py, &evaluation.errors)?,
        };
        dict.set_item(intern!(py, "errors"), errors)?;
        if let Some(explain) = &evaluation.explain {
            dict.set_item(intern!(py, "explain"), to_python(py, explain)?)?;
        }
        Ok(dict)
    }
}

/// The answer's keys in order, each holding `None`, with `stopped_by` or without: a copy has
/// room for every value, so setting them allocates nothing more.
fn top(py: Python<'_>, stopped: bool) -> PyResult<&Bound<'_, PyDict>> {
    static PLAIN: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    static STOPPED: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let (cell, keys): (_, &[&str]) = if stopped {
        (
            &STOPPED,
            &[
                "seq",
                "entry_point",
                "at",
                "matched",
                "actions",
                "stopped_by",
                "errors",
            ],
        )
    } else {
        (
            &PLAIN,
            &["seq", "entry_point", "at", "matched", "actions", "errors"],
        )
    };
    let dict = cell.get_or_try_init(py, || {
        let dict = PyDict::new(py);
        for key in keys {
            dict.set_item(PyString::intern(py, key), py.None())?;
        }
        PyResult::Ok(dict.unbind())
    })?;
    Ok(dict.bind(py))
}

/// `at` as the server's answer writes it ([`rulebook_rules::write_rfc3339`]).
fn rfc3339(at: DateTime<Utc>) -> String {
    let mut text = Vec::with_capacity(30);
    rulebook_rules::write_rfc3339(&mut text, &at);
    // The writer writes ASCII digits and separators only.
    String::from_utf8(text).unwrap_or_default()
}

impl State {
    /// `name` as a Python string, kept for the next answers (strings cannot change).
    fn entry_point<'py>(&mut self, py: Python<'py>, name: &str) -> Bound<'py, PyString> {
        if let Some((_, kept)) = self.entry_points.iter().find(|(kept, _)| kept == name) {
            return kept.bind(py).clone();
        }
        if self.entry_points.len() >= MAX_ENTRY_POINTS {
            self.entry_points.clear();
        }
        let text = PyString::new(py, name);
        self.entry_points
            .push((name.to_owned(), text.clone().unbind()));
        text
    }

    /// The place in `rules` of `rule`'s prototypes, made if need be.
    fn rule(&mut self, py: Python<'_>, rule: &MatchedRule) -> PyResult<usize> {
        let address = Arc::as_ptr(&rule.id).cast::<u8>() as usize;
        if let Some(&place) = self.places.get(&address) {
            let kept = &self.rules[place];
            if kept.version == rule.version && kept.priority == rule.priority {
                return Ok(place);
            }
        }
        let dict = PyDict::new(py);
        dict.set_item(intern!(py, "id"), &*rule.id)?;
        dict.set_item(intern!(py, "version"), rule.version)?;
        dict.set_item(intern!(py, "priority"), rule.priority)?;
        let prototype = RulePrototype {
            _id: Arc::clone(&rule.id),
            address,
            version: rule.version,
            priority: rule.priority,
            dict: dict.unbind(),
            actions: Vec::new(),
        };
        Ok(match self.places.get(&address) {
            Some(&place) => {
                self.rules[place] = prototype;
                place
            }
            None => {
                self.places.insert(address, self.rules.len());
                self.rules.push(prototype);
                self.rules.len() - 1
            }
        })
    }
}

impl RulePrototype {
    /// `fired`, the rule's `nth` action, from its prototype (made if need be: a prototype is
    /// used only for the compiled action it was made from).
    fn action<'py>(
        &mut self,
        py: Python<'py>,
        nth: usize,
        fired: &FiredAction,
    ) -> PyResult<Bound<'py, PyDict>> {
        let id = fired.template_id();
        match self.actions.get(nth) {
            Some(kept) if kept.fired.template_id() == id => return kept.fill(py, fired),
            Some(_) => self.actions[nth] = ActionPrototype::new(py, fired)?,
            None if nth == self.actions.len() => {
                self.actions.push(ActionPrototype::new(py, fired)?)
            }
            None => return ActionPrototype::new(py, fired)?.fill(py, fired),
        }
        self.actions[nth].fill(py, fired)
    }
}

impl ActionPrototype {
    fn new(py: Python<'_>, fired: &FiredAction) -> PyResult<ActionPrototype> {
        let dict = PyDict::new(py);
        dict.set_item(intern!(py, "rule_id"), fired.rule_id())?;
        dict.set_item(intern!(py, "type"), fired.kind())?;
        let mut names = Vec::with_capacity(fired.fields().len());
        let mut containers = Vec::new();
        for (place, (name, value)) in fired.fields().enumerate() {
            let name = PyString::new(py, name);
            let computed = fired.computed().any(|(at, _)| at == place);
            if computed || value.is_array() || value.is_object() {
                // A placeholder keeping the field's place: each answer sets the value.
                dict.set_item(&name, py.None())?;
                if !computed {
                    containers.push(place);
                }
            } else {
                dict.set_item(&name, value_to_python(py, value)?)?;
            }
            names.push(name.unbind());
        }
        Ok(ActionPrototype {
            fired: fired.clone(),
            dict: dict.unbind(),
            names,
            containers,
        })
    }

    /// `{"rule_id", "type", ...fields}` of `fired`: a copy of this prototype with `fired`'s
    /// values set.
    fn fill<'py>(&self, py: Python<'py>, fired: &FiredAction) -> PyResult<Bound<'py, PyDict>> {
        let dict = self.dict.bind(py).copy()?;
        for (place, value) in fired.computed() {
            self.set(&dict, fired, place, value)?;
        }
        for &place in &self.containers {
            if let Some((_, value)) = fired.fields().nth(place) {
                self.set(&dict, fired, place, value)?;
            }
        }
        Ok(dict)
    }

    /// Sets the field at `place` of `dict`, a copy of the prototype of `fired`, to `value`.
    fn set(
        &self,
        dict: &Bound<'_, PyDict>,
        fired: &FiredAction,
        place: usize,
        value: &Value,
    ) -> PyResult<()> {
        let py = dict.py();
        let value = value_to_python(py, value)?;
        match self.names.get(place) {
            Some(name) => dict.set_item(name.bind(py), value),
            // The prototype names every field of the compiled action; this is for a place past
            // them, which the rules crate does not make.
            None => match fired.fields().nth(place) {
                Some((name, _)) => dict.set_item(name, value),
                None => Ok(()),
            },
        }
    }
}
