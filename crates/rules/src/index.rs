//! Which rules an evaluation needs to run: an index of an entry point's rules on their equality
//! and `in` tests, as decision tables are indexed.
//!
//! A rule whose condition is `{"==": [{"var": "country"}, "FR"]}` (or `===`, either operand
//! order, or `{"in": [{"var": "country"}, ["FR", "BE"]]}`), or an `and` that holds such a test,
//! can only match when the input's `country` is one of the test's constants. At compile time the
//! rules are filed under their test's variable and constants; an evaluation reads each indexed
//! variable once and runs only the rules filed under the value it finds, with every rule no test
//! indexes, in the usual order. Evaluation with 10,000 rules that each test another customer
//! then costs what it costs with a handful.
//!
//! ## Why skipping a rule gives the same answer
//!
//! A skipped rule must be one whose condition the evaluation would have found false, without an
//! error, so that leaving it out changes neither `matched`, the actions, `stopped_by` nor
//! `errors`. Three things make that so.
//!
//! - **The test decides false.** Values are compared as the evaluator compares them
//!   (`logic::value`): `==` is JavaScript's loose equality, so a string constant is looked up
//!   only for a string value (two strings are loosely equal exactly when they are the same text),
//!   a number for a number (compared as `f64`, so `1` and `1.0` meet), a boolean for a boolean;
//!   `null` (and a missing variable, which reads as `null`) equals no constant of those kinds; any
//!   other pairing (`"1" == 1`, `true == "1"`, a list against `"a"`) is not decided by the index:
//!   the loose tests of the other kinds run. `===` and `in` (whose list is searched with `===`)
//!   match only a value of the constant's own kind, so nothing else is a candidate. A `var` with
//!   a default, whose path is empty or reads `params.*` (the rule's own parameters), or a
//!   constant that is `null`, a list or an object, indexes nothing.
//! - **Nothing before the test can fail or match.** In an `and`, the test is the first
//!   conjunct that can be indexed, and only when every conjunct before it is a comparison of two
//!   operands that are each a `var` (without default) or a constant: such a conjunct costs a
//!   fixed budget and cannot fail, so the `and` is false whichever of its conjuncts stops it.
//! - **The rule would not have failed for its limits.** Evaluation checks a rule's depth and
//!   size against the caller's [`Limits`] before its condition runs, and spends from a budget of
//!   `max_ops`. The index records the deepest, largest and most costly (to the test) of the rules
//!   it can skip, and is used only when the caller's limits allow all three; otherwise every rule
//!   runs, as without an index. A rule that does not compile is never indexed.
//!
//! ## Why a test the index found true need not run
//!
//! A rule filed under the value the input has (an exact match: `===`, `in`, or `==` of a
//! constant of the value's own kind) has a test that holds: the index compared the value as the
//! test would. The evaluation then runs only the rest of its condition ([`Test::then`]: the
//! `and`'s other conjuncts in order, or nothing when there are none) and spends the test's
//! budget ([`Test::cost`]) first, so the rule's budget is what it would have been after the
//! whole condition; spending it first cannot fail, since the limits allow the whole prefix
//! ([`Index::select`] checks them). The conjuncts before the test are fixed comparisons, which
//! cannot fail, so running them after where the test stood changes nothing.
//!
//! A rule that is disabled or outside its window is skipped by the evaluation anyway. `explain`
//! does not use the index: it reports every rule. `tests/index.rs` checks, on generated rule sets
//! and inputs, that the indexed evaluation and the plain one give the same answer.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::logic::data::{lookup, split_path, Step};
use crate::logic::value::to_number;
use crate::logic::{Logic, Scope};
use crate::ruleset::CompiledRule;
use crate::Limits;

/// A constant a test compares with, as the index files it.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Str(String),
    /// A number as the `f64` the evaluator compares (`-0` as `0`), by its bits.
    Num(u64),
    Bool(bool),
}

/// What a value is, for the loose tests it cannot decide.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str = 0,
    Num = 1,
    Bool = 2,
}

impl Key {
    fn of(value: &Value) -> Option<Key> {
        match value {
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Number(_) => Some(Key::Num(number_key(value))),
            Value::Bool(b) => Some(Key::Bool(*b)),
            _ => None,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Key::Str(_) => Kind::Str,
            Key::Num(_) => Kind::Num,
            Key::Bool(_) => Kind::Bool,
        }
    }
}

fn number_key(value: &Value) -> u64 {
    let x = to_number(value);
    // `-0 == 0`: one key for both.
    if x == 0.0 {
        0.0f64.to_bits()
    } else {
        x.to_bits()
    }
}

/// A rule's indexed test: the rule can only match when the variable at `path` takes one of
/// `keys` (or, for a loose test, a value of another kind than its constant).
#[derive(Debug, Clone)]
pub(crate) struct Test {
    path: Vec<String>,
    /// `==` (JavaScript's loose equality), else `===` or `in`.
    loose: bool,
    keys: Vec<Key>,
    /// The budget the condition spends up to and including the test, at most.
    ops: u64,
    /// The budget an evaluation spends for the test when the index found it true: the test's
    /// own, plus the `and`'s unit when nothing else is left of it (which [`Test::then`] would
    /// otherwise spend).
    pub(crate) cost: u64,
    /// What is left of the condition once the test is known to hold: `{"and": [...]}` of the
    /// other conjuncts in order, or none when there are none (the condition then holds).
    pub(crate) then: Option<Logic>,
}

/// Budget units of one comparison of two operands that are each a `var` or a constant: the
/// operator and each operand.
const COMPARISON_OPS: u64 = 3;

impl Test {
    /// The test a condition can be indexed on, if any (see the module's comment).
    pub(crate) fn of(condition: &Value) -> Option<Test> {
        let (op, args) = operation(condition)?;
        if op != "and" {
            return Test::single(op, args);
        }
        // `and` spends one unit, then each conjunct in turn until one is false.
        let mut ops = 1;
        for (at, conjunct) in args.iter().enumerate() {
            let (op, operands) = operation(conjunct)?;
            if let Some(mut test) = Test::single(op, operands) {
                test.ops += ops;
                let others: Vec<Value> = args
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != at)
                    .map(|(_, c)| c.clone())
                    .collect();
                if others.is_empty() {
                    test.cost = test.ops;
                } else {
                    // A part of a condition that compiled compiles; if it did not, the rule is
                    // simply not indexed.
                    let rest =
                        Value::Object(Map::from_iter([("and".to_owned(), Value::Array(others))]));
                    test.then = Some(Logic::compile(&rest).ok()?);
                }
                return Some(test);
            }
            if !is_fixed_comparison(op, operands) {
                return None;
            }
            ops += COMPARISON_OPS;
        }
        None
    }

    /// `{"==": [var, constant]}` (either order; also `===`) or `{"in": [var, [constants]]}`.
    fn single(op: &str, args: &[Value]) -> Option<Test> {
        let [a, b] = args else { return None };
        match op {
            "==" | "===" => {
                let (path, constant) = match (var_path(a), var_path(b)) {
                    (Some(path), None) => (path, b),
                    (None, Some(path)) => (path, a),
                    _ => return None,
                };
                Some(Test {
                    path,
                    loose: op == "==",
                    keys: vec![Key::of(constant)?],
                    ops: COMPARISON_OPS,
                    cost: COMPARISON_OPS,
                    then: None,
                })
            }
            "in" => {
                let path = var_path(a)?;
                let Value::Array(items) = b else { return None };
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let key = Key::of(item)?;
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                // `in` also spends one unit per element of the list it searches.
                let ops = COMPARISON_OPS + items.len() as u64;
                Some(Test {
                    path,
                    loose: false,
                    keys,
                    ops,
                    cost: ops,
                    then: None,
                })
            }
            _ => None,
        }
    }
}

/// The operator and arguments of `{"op": [args...]}`.
fn operation(expr: &Value) -> Option<(&str, &[Value])> {
    let Value::Object(map) = expr else {
        return None;
    };
    let (op, args) = single_entry(map)?;
    match args {
        Value::Array(args) => Some((op, args)),
        _ => None,
    }
}

fn single_entry(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// The path of `{"var": "a.b"}` or `{"var": ["a.b"]}` (a number path too), as the evaluator
/// splits it; none for a default, an empty path or a path into the rule's params.
fn var_path(expr: &Value) -> Option<Vec<String>> {
    let path = plain_var(expr)?;
    let path = split_path(path);
    match path.first().map(String::as_str) {
        None | Some("params") => None,
        Some(_) => Some(path),
    }
}

/// The path argument of a `var` without a default, when it is a non-empty string or a number.
fn plain_var(expr: &Value) -> Option<&Value> {
    let Value::Object(map) = expr else {
        return None;
    };
    let (op, arg) = single_entry(map)?;
    if op != "var" {
        return None;
    }
    let path = match arg {
        Value::Array(args) => match args.as_slice() {
            [path] => path,
            _ => return None,
        },
        path => path,
    };
    match path {
        Value::String(s) if !s.is_empty() => Some(path),
        Value::Number(_) => Some(path),
        _ => None,
    }
}

/// A comparison whose cost is fixed and that cannot fail: `==`, `<`, ... of two operands that
/// are each a `var` without a default or a scalar constant.
fn is_fixed_comparison(op: &str, args: &[Value]) -> bool {
    let simple = |v: &Value| {
        plain_var(v).is_some()
            || matches!(
                v,
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
            )
    };
    matches!(op, "==" | "===" | "!=" | "!==" | "<" | "<=" | ">" | ">=")
        && args.len() == 2
        && args.iter().all(simple)
}

/// A rule an evaluation must run: its position among the ruleset's rules, and whether the index
/// found its test true (so that only [`Test::then`] is left to run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Selected {
    pub(crate) position: u32,
    pub(crate) test_holds: bool,
}

impl Selected {
    fn untested(position: u32) -> Selected {
        Selected {
            position,
            test_holds: false,
        }
    }
}

/// The rules of one ruleset filed under their tests. Positions are indices into the ruleset's
/// rules (in evaluation order), each list sorted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Rules no test indexes: they run on every evaluation.
    always: Vec<Selected>,
    variables: Vec<Variable>,
    /// The most any indexed rule needs of the limits for its skip to be exact.
    needs: Limits,
}

/// The rules whose test reads one variable.
#[derive(Debug, Clone, Default)]
struct Variable {
    path: Vec<String>,
    strings: HashMap<String, Vec<u32>>,
    numbers: HashMap<u64, Vec<u32>>,
    bools: [Vec<u32>; 2],
    /// The loose (`==`) tests by the kind of their constant ([`Kind`] as index): candidates
    /// whenever the value is of another kind, and not `null`.
    loose: [Vec<u32>; 3],
}

impl Variable {
    /// Appends to `out` the rules that may match when the variable has `value`: those filed
    /// under the value itself, whose test holds, and the loose tests of other kinds, whose test
    /// must run.
    fn candidates(&self, value: &Value, out: &mut Vec<Selected>) {
        let (exact, kind) = match value {
            Value::Null => return,
            Value::String(s) => (self.strings.get(s.as_str()), Kind::Str),
            Value::Number(_) => (self.numbers.get(&number_key(value)), Kind::Num),
            Value::Bool(b) => (Some(&self.bools[usize::from(*b)]), Kind::Bool),
            Value::Array(_) | Value::Object(_) => {
                for rules in &self.loose {
                    out.extend(untested(rules));
                }
                return;
            }
        };
        out.extend(exact.into_iter().flatten().map(|&position| Selected {
            position,
            test_holds: true,
        }));
        for (other, rules) in self.loose.iter().enumerate() {
            if other != kind as usize {
                out.extend(untested(rules));
            }
        }
    }
}

fn untested(rules: &[u32]) -> impl Iterator<Item = Selected> + '_ {
    rules.iter().copied().map(Selected::untested)
}

impl Index {
    /// Files `rules` (in evaluation order) under their tests.
    pub(crate) fn build(rules: &[CompiledRule]) -> Index {
        let mut index = Index {
            needs: Limits {
                max_depth: 0,
                max_nodes: 0,
                max_ops: 0,
            },
            ..Index::default()
        };
        for (position, rule) in rules.iter().enumerate() {
            let position = position as u32;
            let (Some(test), Ok(body)) = (&rule.test, &rule.body) else {
                index.always.push(Selected::untested(position));
                continue;
            };
            index.needs.max_depth = index.needs.max_depth.max(body.deepest);
            index.needs.max_nodes = index.needs.max_nodes.max(body.largest);
            index.needs.max_ops = index.needs.max_ops.max(test.ops);
            let variable = match index.variables.iter().position(|v| v.path == test.path) {
                Some(i) => &mut index.variables[i],
                None => {
                    index.variables.push(Variable {
                        path: test.path.clone(),
                        ..Variable::default()
                    });
                    let last = index.variables.len() - 1;
                    &mut index.variables[last]
                }
            };
            for key in &test.keys {
                let rules = match key {
                    Key::Str(s) => variable.strings.entry(s.clone()).or_default(),
                    Key::Num(n) => variable.numbers.entry(*n).or_default(),
                    Key::Bool(b) => &mut variable.bools[usize::from(*b)],
                };
                rules.push(position);
            }
            if test.loose {
                if let Some(key) = test.keys.first() {
                    variable.loose[key.kind() as usize].push(position);
                }
            }
        }
        index
    }

    /// The rules an evaluation of `input` within `limits` must run, in order; none when every
    /// rule must, each with its whole condition (nothing is indexed, or the limits are too
    /// tight for a skip to be exact).
    pub(crate) fn select(&self, input: &Value, limits: &Limits) -> Option<Cow<'_, [Selected]>> {
        if self.variables.is_empty()
            || limits.max_depth < self.needs.max_depth
            || limits.max_nodes < self.needs.max_nodes
            || limits.max_ops < self.needs.max_ops
        {
            return None;
        }
        let scope = Scope::Rule {
            input,
            params: &Value::Null,
        };
        let mut candidates = Vec::new();
        for variable in &self.variables {
            match lookup(&scope, &variable.path) {
                Step::Found(value) => variable.candidates(value, &mut candidates),
                Step::Made(value) => variable.candidates(&value, &mut candidates),
                // Missing reads as `null`, which equals no indexed constant.
                Step::Nothing => {}
            }
        }
        if candidates.is_empty() {
            return Some(Cow::Borrowed(&self.always));
        }
        // A rule is filed under one variable, and a value matches it either exactly or as a
        // loose test of another kind, so a position comes up once; were it twice, the first
        // (the test not known to hold) is kept, which is always exact.
        candidates.sort_unstable();
        candidates.dedup_by_key(|selected| selected.position);
        Some(Cow::Owned(merge(&self.always, &candidates)))
    }
}

/// The union of two sorted lists with no common position, sorted.
fn merge(a: &[Selected], b: &[Selected]) -> Vec<Selected> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] < b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn tests_are_found_in_either_order_and_after_fixed_comparisons() {
        let test = Test::of(&json!({"==": ["FR", {"var": "country"}]})).unwrap();
        assert_eq!(test.path, ["country"]);
        assert_eq!(test.keys, [Key::Str("FR".into())]);
        let test = Test::of(&json!({"and": [
            {">": [{"var": "total"}, {"var": "params.min"}]},
            {"in": [{"var": "a.b"}, ["x", 1, true, "x"]]},
        ]}))
        .unwrap();
        assert_eq!(test.path, ["a", "b"]);
        assert_eq!(test.keys.len(), 3);
        assert_eq!(test.ops, 1 + 3 + 3 + 4);
        // Found true, the test spends its own budget and the comparison before it still runs.
        assert_eq!(test.cost, 3 + 4);
        assert!(test.then.is_some());
        // An `and` of the test alone: nothing is left, and its unit is spent with the test.
        let test = Test::of(&json!({"and": [{"==": [{"var": "c"}, 1]}]})).unwrap();
        assert_eq!((test.ops, test.cost), (1 + 3, 1 + 3));
        assert!(test.then.is_none());
    }

    #[test]
    fn an_evaluation_selects_the_rules_filed_under_the_value_and_the_unindexed() {
        let conditions = [
            json!({"==": [{"var": "c"}, "a"]}),
            json!({"<": [{"var": "n"}, 3]}),
            json!({"in": [{"var": "c"}, ["b", "a"]]}),
            json!({"===": [{"var": "c"}, "b"]}),
            json!({"==": [{"var": "c"}, 1]}),
        ];
        let rules: Vec<CompiledRule> = conditions
            .iter()
            .map(|condition| {
                let mut rule = crate::Rule::new("r");
                rule.condition = condition.clone();
                CompiledRule::compile(rule)
            })
            .collect();
        let index = Index::build(&rules);
        let select = |input: Value| -> Vec<u32> {
            let selected = index.select(&input, &Limits::default()).unwrap();
            selected.iter().map(|s| s.position).collect()
        };
        assert_eq!(select(json!({"c": "a"})), [0, 1, 2, 4]);
        // Only the tests matched by the value itself are known to hold.
        let held = |input: Value| -> Vec<u32> {
            let selected = index.select(&input, &Limits::default()).unwrap();
            selected
                .iter()
                .filter(|s| s.test_holds)
                .map(|s| s.position)
                .collect()
        };
        assert_eq!(held(json!({"c": "a"})), [0, 2]);
        assert_eq!(held(json!({"c": 1})), [4]);
        assert_eq!(held(json!({"c": ["a"]})), [0u32; 0]);
        assert_eq!(select(json!({"c": "b"})), [1, 2, 3, 4]);
        assert_eq!(select(json!({"c": "z"})), [1, 4]);
        // `1 == "1"` and `true == 1`: the loose tests of other kinds run.
        assert_eq!(select(json!({"c": 1})), [0, 1, 4]);
        assert_eq!(select(json!({"c": 2})), [0, 1]);
        assert_eq!(select(json!({"c": true})), [0, 1, 4]);
        assert_eq!(select(json!({"c": ["a"]})), [0, 1, 4]);
        assert_eq!(select(json!({"c": null})), [1]);
        assert_eq!(select(json!({})), [1]);
        // Limits too tight for a skip to be exact: every rule runs.
        let tight = Limits {
            max_ops: 4,
            ..Limits::default()
        };
        assert!(index.select(&json!({"c": "a"}), &tight).is_none());
    }

    #[test]
    fn what_the_index_cannot_decide_is_not_indexed() {
        for condition in [
            json!({"==": [{"var": ["country", "FR"]}, "FR"]}),
            json!({"==": [{"var": "params.country"}, "FR"]}),
            json!({"==": [{"var": ""}, "FR"]}),
            json!({"==": [{"var": "country"}, null]}),
            json!({"==": [{"var": "country"}, ["FR"]]}),
            json!({"==": [{"var": "country"}, "FR", "extra"]}),
            json!({"in": [{"var": "country"}, ["FR", null]]}),
            json!({"in": [{"var": "country"}, "FRANCE"]}),
            json!({"or": [{"==": [{"var": "country"}, "FR"]}]}),
            // A conjunct before the test whose cost depends on the data.
            json!({"and": [{"some": [{"var": "xs"}, true]}, {"==": [{"var": "c"}, "FR"]}]}),
        ] {
            assert!(Test::of(&condition).is_none(), "{condition}");
        }
    }
}
