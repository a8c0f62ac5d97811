//! `+`, `-`, `*`, `/`, `%`, `min` and `max`, as json-logic-js computes them: `+` and `*` read
//! their arguments with JavaScript's `parseFloat` (so `"12abc"` is 12 and `null` is NaN), the
//! others with `Number` (so `"12abc"` is NaN and `null` is 0). A result that is not a finite
//! number (such as `1 / 0`) is `null`.

use serde_json::Value;

use super::value::{num, parse_float, to_number};
use super::{eval, with_value, Budget, Node, Scope};
use crate::EvalError;

/// Folds the arguments, coerced to numbers, in order, without collecting them.
fn fold_numbers(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    init: f64,
    read: impl Fn(&Value) -> f64,
    step: impl Fn(f64, f64) -> f64,
) -> Result<f64, EvalError> {
    let mut acc = init;
    for node in args {
        acc = step(
            acc,
            with_value(Some(node), scope, budget, |v, _| Ok(read(v)))?,
        );
    }
    Ok(acc)
}

/// `Number(v)` of an argument; a missing one is JavaScript's `undefined`, NaN.
fn number(node: Option<&Node>, scope: &Scope<'_>, budget: &mut Budget) -> Result<f64, EvalError> {
    match node {
        Some(node) => with_value(Some(node), scope, budget, |v, _| Ok(to_number(v))),
        None => Ok(f64::NAN),
    }
}

pub(crate) fn add(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    fold_numbers(args, scope, budget, 0.0, parse_float, |a, b| a + b).map(num)
}

/// json-logic-js folds `*` without a starting value, so one argument is returned as it is
/// (`{"*": ["3"]}` is `"3"`). With none json-logic-js throws; Rulebook gives the empty product, 1
/// (a difference the README lists).
pub(crate) fn mul(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    if let [only] = args {
        return eval(only, scope, budget);
    }
    fold_numbers(args, scope, budget, 1.0, parse_float, |a, b| a * b).map(num)
}

pub(crate) fn sub(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let a = number(args.first(), scope, budget)?;
    if args.len() < 2 {
        // Unary minus; with no argument, `-undefined` is NaN.
        return Ok(num(-a));
    }
    let b = number(args.get(1), scope, budget)?;
    Ok(num(a - b))
}

pub(crate) fn div(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let a = number(args.first(), scope, budget)?;
    let b = number(args.get(1), scope, budget)?;
    Ok(num(a / b))
}

pub(crate) fn rem(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let a = number(args.first(), scope, budget)?;
    let b = number(args.get(1), scope, budget)?;
    Ok(num(a % b))
}

pub(crate) fn min_max(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    max: bool,
) -> Result<Value, EvalError> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Value::Null);
    };
    let pick = if max { f64::max } else { f64::min };
    let first = number(Some(first), scope, budget)?;
    // NaN is sticky: any argument that is not a number makes the answer null.
    let picked = fold_numbers(rest, scope, budget, first, to_number, |a, b| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            pick(a, b)
        }
    })?;
    Ok(if picked.is_nan() {
        Value::Null
    } else {
        num(picked)
    })
}
