//! `if` (and its alias `?:`), `and`, `or`, `!` and `!!`. `if`, `and` and `or` are lazy.

use serde_json::Value;

use super::value::truthy as is_truthy;
use super::{eval, with_value, Budget, Node, Scope};
use crate::EvalError;

pub(crate) fn if_(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let mut pairs = args.chunks_exact(2);
    for pair in pairs.by_ref() {
        if with_value(Some(&pair[0]), scope, budget, |v, _| Ok(is_truthy(v)))? {
            return eval(&pair[1], scope, budget);
        }
    }
    match pairs.remainder().first() {
        Some(otherwise) => eval(otherwise, scope, budget),
        None => Ok(Value::Null),
    }
}

/// The first falsy argument, or the last one.
pub(crate) fn and(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let mut last = Value::Null;
    for node in args {
        last = eval(node, scope, budget)?;
        if !is_truthy(&last) {
            break;
        }
    }
    Ok(last)
}

/// The first truthy argument, or the last one.
pub(crate) fn or(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let mut last = Value::Null;
    for node in args {
        last = eval(node, scope, budget)?;
        if is_truthy(&last) {
            break;
        }
    }
    Ok(last)
}

pub(crate) fn not(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    with_value(args.first(), scope, budget, |v, _| {
        Ok(Value::Bool(!is_truthy(v)))
    })
}

pub(crate) fn truthy(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    with_value(args.first(), scope, budget, |v, _| {
        Ok(Value::Bool(is_truthy(v)))
    })
}
