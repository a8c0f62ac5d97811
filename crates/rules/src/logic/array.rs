//! `map`, `filter`, `reduce`, `all`, `some`, `none`, `merge` and `in`. The first argument of the
//! iterating operators is a list (anything else counts as empty); the second is evaluated once per
//! element, with the element as its data. Every element visited spends one unit of the budget.

use serde_json::Value;

use super::value::{strict_equals, to_js_string, truthy};
use super::{arg, eval, with_value, Budget, Node, Scope};
use crate::EvalError;

/// Hands `f` the elements of the first argument (borrowed when possible), after charging the
/// budget for visiting them.
fn with_items<R>(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    f: impl FnOnce(&[Value], &mut Budget) -> Result<R, EvalError>,
) -> Result<R, EvalError> {
    with_value(args.first(), scope, budget, |v, budget| match v {
        Value::Array(items) => {
            budget.spend(items.len() as u64)?;
            f(items, budget)
        }
        _ => f(&[], budget),
    })
}

/// Whether the second argument holds for `item`.
fn test(node: Option<&Node>, item: &Value, budget: &mut Budget) -> Result<bool, EvalError> {
    with_value(node, &Scope::Data(item), budget, |v, _| Ok(truthy(v)))
}

pub(crate) fn map(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    with_items(args, scope, budget, |items, budget| {
        items
            .iter()
            .map(|item| match args.get(1) {
                Some(node) => eval(node, &Scope::Data(item), budget),
                None => Ok(Value::Null),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    })
}

pub(crate) fn filter(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    with_items(args, scope, budget, |items, budget| {
        let mut kept = Vec::new();
        for item in items {
            if test(args.get(1), item, budget)? {
                kept.push(item.clone());
            }
        }
        Ok(Value::Array(kept))
    })
}

pub(crate) fn reduce(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let initial = arg(args, 2, scope, budget)?;
    with_items(args, scope, budget, |items, budget| {
        let Some(step) = args.get(1) else {
            // Each step of a missing expression gives `undefined`, which Rulebook says as null.
            return Ok(if items.is_empty() {
                initial
            } else {
                Value::Null
            });
        };
        let mut accumulator = initial;
        for current in items {
            let scope = Scope::Reduce {
                current,
                accumulator: &accumulator,
            };
            accumulator = eval(step, &scope, budget)?;
        }
        Ok(accumulator)
    })
}

pub(crate) fn all(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    with_items(args, scope, budget, |items, budget| {
        if items.is_empty() {
            return Ok(Value::Bool(false));
        }
        for item in items {
            if !test(args.get(1), item, budget)? {
                return Ok(Value::Bool(false));
            }
        }
        Ok(Value::Bool(true))
    })
}

fn any(args: &[Node], scope: &Scope<'_>, budget: &mut Budget) -> Result<bool, EvalError> {
    with_items(args, scope, budget, |items, budget| {
        for item in items {
            if test(args.get(1), item, budget)? {
                return Ok(true);
            }
        }
        Ok(false)
    })
}

pub(crate) fn some(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    any(args, scope, budget).map(Value::Bool)
}

pub(crate) fn none(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    any(args, scope, budget).map(|found| Value::Bool(!found))
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

/// Membership in a list (strict equality) or a substring of a non-empty string.
pub(crate) fn in_(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    contains(args, scope, budget).map(Value::Bool)
}

/// Whether the second argument contains the first, as `in` decides it.
pub(crate) fn contains(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<bool, EvalError> {
    with_value(args.first(), scope, budget, |needle, budget| {
        with_value(args.get(1), scope, budget, |hay, budget| {
            let found = match hay {
                // json-logic-js refuses an empty text (`!b`) before it searches.
                Value::String(hay) => {
                    !hay.is_empty() && hay.contains(to_js_string(needle).as_str())
                }
                Value::Array(items) => {
                    budget.spend(items.len() as u64)?;
                    items.iter().any(|item| strict_equals(item, needle))
                }
                _ => false,
            };
            Ok(found)
        })
    })
}
