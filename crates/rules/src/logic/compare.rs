//! `==`, `===`, `!=`, `!==`, `<`, `<=`, `>` and `>=`. `<` and `<=` with three arguments test
//! "between": `{"<": [1, x, 10]}` is `1 < x < 10`.
//!
//! A missing operand is JavaScript's `undefined`, as json-logic-js passes it: loosely equal to
//! `null` only (as `null` is, so `==` needs no care), strictly equal to nothing but another
//! missing operand, and never less or greater than anything.

use serde_json::Value;

use super::value::{less as js_less, loose_equals, strict_equals};
use super::{with_value, Budget, Node, Scope};
use crate::EvalError;

/// Applies `test` to the first two arguments, borrowing them where possible.
pub(crate) fn pair(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    test: impl FnOnce(&Value, &Value) -> bool,
) -> Result<bool, EvalError> {
    with_value(args.first(), scope, budget, |a, budget| {
        with_value(args.get(1), scope, budget, |b, _| Ok(test(a, b)))
    })
}

pub(crate) fn loose_eq(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    negate: bool,
) -> Result<Value, EvalError> {
    pair(args, scope, budget, loose_equals).map(|eq| Value::Bool(eq != negate))
}

pub(crate) fn strict_eq(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    negate: bool,
) -> Result<Value, EvalError> {
    strict(args, scope, budget).map(|eq| Value::Bool(eq != negate))
}

/// `===` of the first two arguments, a missing one being `undefined`.
pub(crate) fn strict(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<bool, EvalError> {
    let eq = pair(args, scope, budget, strict_equals)?;
    Ok(match args.len() {
        0 => true,
        1 => false,
        _ => eq,
    })
}

pub(crate) fn less(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    or_equal: bool,
) -> Result<Value, EvalError> {
    is_less(args, scope, budget, or_equal).map(Value::Bool)
}

/// `<` or `<=`, with two arguments or three ("between").
pub(crate) fn is_less(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    or_equal: bool,
) -> Result<bool, EvalError> {
    if args.len() >= 3 {
        let first = pair(args, scope, budget, |a, b| js_less(a, b, or_equal))?;
        let second = pair(&args[1..], scope, budget, |b, c| js_less(b, c, or_equal))?;
        return Ok(first && second);
    }
    let less = pair(args, scope, budget, |a, b| js_less(a, b, or_equal))?;
    Ok(less && args.len() == 2)
}

/// `>` or `>=` of the first two arguments.
pub(crate) fn is_greater(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    or_equal: bool,
) -> Result<bool, EvalError> {
    let greater = pair(args, scope, budget, |a, b| js_less(b, a, or_equal))?;
    Ok(greater && args.len() >= 2)
}

pub(crate) fn greater(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    or_equal: bool,
) -> Result<Value, EvalError> {
    is_greater(args, scope, budget, or_equal).map(Value::Bool)
}
