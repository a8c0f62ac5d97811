//! `var`, `missing` and `missing_some`: reading the data.

use serde_json::{Map, Value};

use super::value::{to_js_string, to_number};
use super::{arg, eval, Budget, Node, Scope};
use crate::EvalError;

/// Splits a constant `var` path: `"a.b.0"` into `["a", "b", "0"]`; `""`, `null` and `[]` into
/// the empty path (the whole data). Anything else is not a constant path.
pub(crate) fn split_path(path: &Value) -> Option<Vec<String>> {
    match path {
        Value::Null => Some(Vec::new()),
        Value::String(s) if s.is_empty() => Some(Vec::new()),
        Value::String(s) => Some(s.split('.').map(str::to_owned).collect()),
        Value::Number(_) => Some(split_text(&to_js_string(path))),
        Value::Array(a) if a.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

fn split_text(s: &str) -> Vec<String> {
    s.split('.').map(str::to_owned).collect()
}

fn child<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }
}

/// Looks `path` up in the scope. `None` when it leads nowhere; the empty path is handled by the
/// caller because some scopes have no single value to hand out.
pub(crate) fn lookup<'a, S: AsRef<str>>(scope: &Scope<'a>, path: &[S]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let first = first.as_ref();
    let start = match *scope {
        Scope::Data(v) => child(v, first)?,
        Scope::Rule { input, params } => match first {
            "input" => input,
            "params" => params,
            other => child(input, other)?,
        },
        Scope::Reduce {
            current,
            accumulator,
        } => match first {
            "current" => current,
            "accumulator" => accumulator,
            _ => return None,
        },
    };
    rest.iter().try_fold(start, |v, key| child(v, key.as_ref()))
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
        Some(v) if !v.is_null() => Ok(v.clone()),
        _ => match default {
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
    let segments = split_path(&path).unwrap_or_else(|| split_text(&to_js_string(&path)));
    resolve(&segments, args.get(1), scope, budget)
}

/// The keys (of `keys`) whose value is absent, `null` or `""`.
fn missing_keys(
    keys: &[Value],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Vec<Value>, EvalError> {
    budget.spend(keys.len() as u64)?;
    Ok(keys
        .iter()
        .filter(|key| {
            let segments = split_path(key).unwrap_or_else(|| split_text(&to_js_string(key)));
            let found = if segments.is_empty() {
                None
            } else {
                lookup(scope, &segments)
            };
            !matches!(found, Some(v) if !v.is_null() && v.as_str() != Some(""))
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
