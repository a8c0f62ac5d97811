//! `var`, `missing` and `missing_some`: reading the data.

use std::borrow::Cow;

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

/// `v[key]` as JavaScript reads it from JSON data: an object's own field; a list's element at a
/// canonical index (`"1"`, not `"01"` or `"+1"`) or its `length`; a string's UTF-16 code unit at
/// a canonical index (a lone half of a surrogate pair becomes U+FFFD) or its `length`. Nothing
/// else has fields (names JavaScript inherits, such as `constructor`, are not data).
fn child<'a>(v: &'a Value, key: &str) -> Option<Cow<'a, Value>> {
    match v {
        Value::Object(m) => m.get(key).map(Cow::Borrowed),
        Value::Array(a) if key == "length" => Some(Cow::Owned(Value::from(a.len()))),
        Value::Array(a) => index(key).and_then(|i| a.get(i)).map(Cow::Borrowed),
        Value::String(s) if key == "length" => {
            Some(Cow::Owned(Value::from(s.encode_utf16().count())))
        }
        Value::String(s) => {
            let unit = s.encode_utf16().nth(index(key)?)?;
            Some(Cow::Owned(Value::String(String::from_utf16_lossy(&[unit]))))
        }
        _ => None,
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

/// Looks `path` up in the scope. `None` when it leads nowhere (json-logic-js's `undefined`, and
/// a path through `null`); a value that is there, `null` included, is found. The empty path is
/// handled by the caller because some scopes have no single value to hand out.
pub(crate) fn lookup<'a, S: AsRef<str>>(scope: &Scope<'a>, path: &[S]) -> Option<Cow<'a, Value>> {
    let (first, rest) = path.split_first()?;
    let first = first.as_ref();
    let start = match *scope {
        Scope::Data(v) => child(v, first)?,
        Scope::Rule { input, params } => match first {
            "input" => Cow::Borrowed(input),
            "params" => Cow::Borrowed(params),
            other => child(input, other)?,
        },
        Scope::Reduce {
            current,
            accumulator,
        } => match first {
            "current" => Cow::Borrowed(current),
            "accumulator" => Cow::Borrowed(accumulator),
            _ => return None,
        },
    };
    rest.iter().try_fold(start, |v, key| match v {
        Cow::Borrowed(v) => child(v, key.as_ref()),
        // Only a string's length or unit is made here, and neither has fields but `length`.
        Cow::Owned(v) => child(&v, key.as_ref()).map(|c| Cow::Owned(c.into_owned())),
    })
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
    match lookup(scope, path) {
        Some(v) => Ok(v.into_owned()),
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
            !matches!(lookup(scope, &segments), Some(v) if !v.is_null() && v.as_str() != Some(""))
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
