//! `==`, `===`, `!=`, `!==`, `<`, `<=`, `>` and `>=`. `<` and `<=` with three arguments test
//! "between": `{"<": [1, x, 10]}` is `1 < x < 10`.

use serde_json::Value;

use super::value::{less as js_less, loose_equals, strict_equals};
use super::{arg, Budget, Node, Scope};
use crate::EvalError;

pub(crate) fn loose_eq(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    negate: bool,
) -> Result<Value, EvalError> {
    let a = arg(args, 0, scope, budget)?;
    let b = arg(args, 1, scope, budget)?;
    Ok(Value::Bool(loose_equals(&a, &b) != negate))
}

pub(crate) fn strict_eq(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    negate: bool,
) -> Result<Value, EvalError> {
    let a = arg(args, 0, scope, budget)?;
    let b = arg(args, 1, scope, budget)?;
    Ok(Value::Bool(strict_equals(&a, &b) != negate))
}

pub(crate) fn less(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    or_equal: bool,
) -> Result<Value, EvalError> {
    let a = arg(args, 0, scope, budget)?;
    let b = arg(args, 1, scope, budget)?;
    if args.len() >= 3 {
        let c = arg(args, 2, scope, budget)?;
        return Ok(Value::Bool(
            js_less(&a, &b, or_equal) && js_less(&b, &c, or_equal),
        ));
    }
    Ok(Value::Bool(js_less(&a, &b, or_equal)))
}

pub(crate) fn greater(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
    or_equal: bool,
) -> Result<Value, EvalError> {
    let a = arg(args, 0, scope, budget)?;
    let b = arg(args, 1, scope, budget)?;
    Ok(Value::Bool(js_less(&b, &a, or_equal)))
}
