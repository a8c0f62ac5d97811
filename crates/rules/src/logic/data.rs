//! `var`, `missing` and `missing_some`: reading the data.

use serde_json::{Map, Value};

use super::value::{to_js_string, to_number};
use super::{arg, eval, Budget, Node, Scope};
use crate::EvalError;

/// Splits a `var` path as json-logic-js does: `null` and `""` are the empty path (the whole
/// data); anything else is JavaScript's `String(path)` split at dots, so `"a.b.0"` is `["a", "b",
/// "0"]`, `1` is `["1"]`, `1.5` is `["1", "5"]` and `[]` is `[""]` (a name no data has).
pub(crate) fn split_path(path: &Value) -> Vec<String> {
    match path {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => split_text(s),
        other => split_text(&to_js_string(other)),
    }
}

fn split_text(s: &str) -> Vec<String> {
    s.split('.').map(str::to_owned).collect()
}

/// Where a path (or one step along it) leads. Small (two words), as lookups are the hot path.
pub(crate) enum Step<'a> {
    /// A value in the data.
    Found(&'a Value),
    /// A value the path made: a list's or a string's `length`, a string's code unit.
    Made(Box<Value>),
    /// Nothing there (JavaScript's `undefined`; also a path through `null`).
    Nothing,
}

impl Step<'_> {
    /// The value, if the path leads to one.
    fn into_value(self) -> Option<Value> {
        match self {
            Step::Found(v) => Some(v.clone()),
            Step::Made(v) => Some(*v),
            Step::Nothing => None,
        }
    }
}

/// `v[key]` as JavaScript reads it from JSON data: an object's own field; a list's element at a
/// canonical index (`"1"`, not `"01"` or `"+1"`) or its `length`; a string's UTF-16 code unit at
/// a canonical index (a lone half of a surrogate pair becomes U+FFFD) or its `length`. Nothing
/// else has fields (names JavaScript inherits, such as `constructor`, are not data).
#[inline]
fn step<'a>(v: &'a Value, key: &str) -> Step<'a> {
    match v {
        // The usual step, kept small enough to inline into every lookup.
        Value::Object(m) => field(m, key).map_or(Step::Nothing, Step::Found),
        other => element(other, key),
    }
}

/// Up to this many fields, an object's field is found by comparing names in order rather than by
/// hashing the name: SipHash costs more than a handful of short comparisons, and request objects
/// are mostly this small.
const SCANNED_FIELDS: usize = 8;

/// `m[key]`: the same field `Map::get` finds (names are unique), without hashing `key` when `m`
/// is small.
#[inline]
fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if m.len() <= SCANNED_FIELDS {
        m.iter().find_map(|(name, v)| (name == key).then_some(v))
    } else {
        m.get(key)
    }
}

/// [`step`] into anything but an object.
#[inline(never)]
fn element<'a>(v: &'a Value, key: &str) -> Step<'a> {
    match v {
        Value::Array(a) if key == "length" => Step::Made(Box::new(Value::from(a.len()))),
        Value::Array(a) => index(key)
            .and_then(|i| a.get(i))
            .map_or(Step::Nothing, Step::Found),
        Value::String(s) if key == "length" => {
            Step::Made(Box::new(Value::from(s.encode_utf16().count())))
        }
        Value::String(s) => match index(key).and_then(|i| s.encode_utf16().nth(i)) {
            Some(unit) => Step::Made(Box::new(Value::String(String::from_utf16_lossy(&[unit])))),
            None => Step::Nothing,
        },
        _ => Step::Nothing,
    }
}

/// JavaScript's array index: `0` or digits without a leading zero, below 2^32 - 1.
fn index(key: &str) -> Option<usize> {
    let canonical = key == "0"
        || (!key.starts_with('0') && !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return None;
    }
    key.parse::<u32>()
        .ok()
        .filter(|i| *i < u32::MAX)
        .map(|i| i as usize)
}

/// Looks `path` up in the scope: [`Step::Nothing`] when it leads nowhere (json-logic-js's
/// `undefined`, and a path through `null`); a value that is there, `null` included, is found. The
/// empty path is handled by the caller because some scopes have no single value to hand out.
pub(crate) fn lookup<'a, S: AsRef<str>>(scope: &Scope<'a>, path: &[S]) -> Step<'a> {
    let Some((first, rest)) = path.split_first() else {
        return Step::Nothing;
    };
    let first = first.as_ref();
    let start = match *scope {
        Scope::Data(v) => step(v, first),
        Scope::Rule { input, params } => match first {
            "input" => Step::Found(input),
            "params" => Step::Found(params),
            other => step(input, other),
        },
        Scope::Reduce {
            current,
            accumulator,
        } => match first {
            "current" => Step::Found(current),
            "accumulator" => Step::Found(accumulator),
            _ => Step::Nothing,
        },
    };
    let mut at = match start {
        Step::Found(v) => v,
        Step::Made(v) => return made(v, rest),
        Step::Nothing => return Step::Nothing,
    };
    for (i, key) in rest.iter().enumerate() {
        at = match step(at, key.as_ref()) {
            Step::Found(v) => v,
            Step::Made(v) => return made(v, &rest[i + 1..]),
            Step::Nothing => return Step::Nothing,
        };
    }
    Step::Found(at)
}

/// The rest of a path from a value a step made (a length or a code unit; only a string has
/// anything further, its own `length` or unit).
fn made<'a, S: AsRef<str>>(mut v: Box<Value>, rest: &[S]) -> Step<'a> {
    for key in rest {
        v = match step(&v, key.as_ref()) {
            Step::Found(found) => Box::new(found.clone()),
            Step::Made(made) => made,
            Step::Nothing => return Step::Nothing,
        };
    }
    Step::Made(v)
}

/// Whether the whole data of a scope is `null` or `""`, as `missing` asks of the empty key.
fn whole_is_blank(scope: &Scope<'_>) -> bool {
    match *scope {
        Scope::Data(v) => v.is_null() || v.as_str() == Some(""),
        Scope::Rule { .. } | Scope::Reduce { .. } => false,
    }
}

/// The whole data of a scope, as `{"var": ""}` returns it.
fn whole(scope: &Scope<'_>) -> Value {
    match *scope {
        Scope::Data(v) => v.clone(),
        Scope::Rule { input, params } => {
            let mut m = Map::new();
            m.insert("input".into(), input.clone());
            m.insert("params".into(), params.clone());
            Value::Object(m)
        }
        Scope::Reduce {
            current,
            accumulator,
        } => {
            let mut m = Map::new();
            m.insert("current".into(), current.clone());
            m.insert("accumulator".into(), accumulator.clone());
            Value::Object(m)
        }
    }
}

fn resolve<S: AsRef<str>>(
    path: &[S],
    default: Option<&Node>,
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    if path.is_empty() {
        return Ok(whole(scope));
    }
    match lookup(scope, path).into_value() {
        Some(v) => Ok(v),
        None => match default {
            Some(node) => eval(node, scope, budget),
            None => Ok(Value::Null),
        },
    }
}

pub(crate) fn var_static(
    path: &[String],
    default: Option<&Node>,
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    resolve(path, default, scope, budget)
}

pub(crate) fn var(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let path = arg(args, 0, scope, budget)?;
    let segments = split_path(&path);
    resolve(&segments, args.get(1), scope, budget)
}

/// The keys (of `keys`) whose value is absent, `null` or `""`, each read as `var` reads it (so
/// the empty key is the whole data).
fn missing_keys(
    keys: &[Value],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Vec<Value>, EvalError> {
    budget.spend(keys.len() as u64)?;
    Ok(keys
        .iter()
        .filter(|key| {
            let segments = split_path(key);
            if segments.is_empty() {
                return whole_is_blank(scope);
            }
            let blank = |v: &Value| v.is_null() || v.as_str() == Some("");
            match lookup(scope, &segments) {
                Step::Found(v) => blank(v),
                Step::Made(v) => blank(&v),
                Step::Nothing => true,
            }
        })
        .cloned()
        .collect())
}

pub(crate) fn missing(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let mut values = Vec::with_capacity(args.len());
    for node in args {
        values.push(eval(node, scope, budget)?);
    }
    let keys = match values.first() {
        Some(Value::Array(keys)) => keys.clone(),
        _ => values,
    };
    missing_keys(&keys, scope, budget).map(Value::Array)
}

pub(crate) fn missing_some(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let need = to_number(&arg(args, 0, scope, budget)?);
    let keys = match arg(args, 1, scope, budget)? {
        Value::Array(keys) => keys,
        Value::Null => Vec::new(),
        single => vec![single],
    };
    let missing = missing_keys(&keys, scope, budget)?;
    let found = (keys.len() - missing.len()) as f64;
    Ok(Value::Array(if found >= need {
        Vec::new()
    } else {
        missing
    }))
}
