//! `map`, `filter`, `reduce`, `all`, `some`, `none`, `merge` and `in`. The first argument of the
//! iterating operators is a list (anything else counts as empty); the second is evaluated once per
//! element, with the element as its data. Every element visited spends one unit of the budget.

use serde_json::Value;

use super::value::{strict_equals, to_js_string, truthy};
use super::{arg, eval, Budget, Node, Scope};
use crate::EvalError;

fn items(args: &[Node], scope: &Scope<'_>, budget: &mut Budget) -> Result<Vec<Value>, EvalError> {
    match arg(args, 0, scope, budget)? {
        Value::Array(items) => {
            budget.spend(items.len() as u64)?;
            Ok(items)
        }
        _ => Ok(Vec::new()),
    }
}

fn each(node: Option<&Node>, item: &Value, budget: &mut Budget) -> Result<Value, EvalError> {
    match node {
        Some(node) => eval(node, &Scope::Data(item), budget),
        None => Ok(Value::Null),
    }
}

pub(crate) fn map(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let items = items(args, scope, budget)?;
    items
        .iter()
        .map(|item| each(args.get(1), item, budget))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

pub(crate) fn filter(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let mut kept = Vec::new();
    for item in items(args, scope, budget)? {
        if truthy(&each(args.get(1), &item, budget)?) {
            kept.push(item);
        }
    }
    Ok(Value::Array(kept))
}

pub(crate) fn reduce(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let items = items(args, scope, budget)?;
    let mut accumulator = arg(args, 2, scope, budget)?;
    let Some(step) = args.get(1) else {
        return Ok(accumulator);
    };
    for current in &items {
        let scope = Scope::Reduce {
            current,
            accumulator: &accumulator,
        };
        accumulator = eval(step, &scope, budget)?;
    }
    Ok(accumulator)
}

pub(crate) fn all(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let items = items(args, scope, budget)?;
    if items.is_empty() {
        return Ok(Value::Bool(false));
    }
    for item in &items {
        if !truthy(&each(args.get(1), item, budget)?) {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

pub(crate) fn some(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    for item in &items(args, scope, budget)? {
        if truthy(&each(args.get(1), item, budget)?) {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub(crate) fn none(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    some(args, scope, budget).map(|v| Value::Bool(!truthy(&v)))
}

/// Flattens one level: lists are spliced in, anything else is appended.
pub(crate) fn merge(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let mut out = Vec::new();
    for node in args {
        match eval(node, scope, budget)? {
            Value::Array(items) => {
                budget.spend(items.len() as u64)?;
                out.extend(items);
            }
            other => out.push(other),
        }
    }
    Ok(Value::Array(out))
}

/// Membership in a list (strict equality) or a substring of a string.
pub(crate) fn in_(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let needle = arg(args, 0, scope, budget)?;
    let found = match arg(args, 1, scope, budget)? {
        Value::String(hay) => hay.contains(to_js_string(&needle).as_str()),
        Value::Array(items) => {
            budget.spend(items.len() as u64)?;
            items.iter().any(|item| strict_equals(item, &needle))
        }
        _ => false,
    };
    Ok(Value::Bool(found))
}
