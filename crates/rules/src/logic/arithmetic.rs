//! `+`, `-`, `*`, `/`, `%`, `min` and `max`. Arguments are coerced to numbers; a result that is
//! not a number (such as `1 / 0`) is `null`.

use serde_json::Value;

use super::value::{num, to_number};
use super::{with_value, Budget, Node, Scope};
use crate::EvalError;

fn numbers(args: &[Node], scope: &Scope<'_>, budget: &mut Budget) -> Result<Vec<f64>, EvalError> {
    args.iter()
        .map(|node| with_value(Some(node), scope, budget, |v, _| Ok(to_number(v))))
        .collect()
}

fn number(node: Option<&Node>, scope: &Scope<'_>, budget: &mut Budget) -> Result<f64, EvalError> {
    with_value(node, scope, budget, |v, _| Ok(to_number(v)))
}

pub(crate) fn add(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    Ok(num(numbers(args, scope, budget)?.into_iter().sum()))
}

pub(crate) fn mul(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    Ok(num(numbers(args, scope, budget)?.into_iter().product()))
}

pub(crate) fn sub(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let a = number(args.first(), scope, budget)?;
    if args.len() < 2 {
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
    let values = numbers(args, scope, budget)?;
    if values.is_empty() || values.iter().any(|f| f.is_nan()) {
        return Ok(Value::Null);
    }
    let pick = if max { f64::max } else { f64::min };
    let first = values[0];
    Ok(num(values.into_iter().fold(first, pick)))
}
