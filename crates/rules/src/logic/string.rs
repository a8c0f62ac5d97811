//! `cat`, `substr` and `log` (which returns its argument: this crate does no I/O).

use serde_json::Value;

use super::value::{push_js_string, to_js_string, to_number};
use super::{arg, with_value, Budget, Node, Scope};
use crate::EvalError;

pub(crate) fn cat(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    // Room for typical short parts, so that the text rarely has to grow.
    let mut out = String::with_capacity(16 * args.len());
    for node in args {
        with_value(Some(node), scope, budget, |v, _| {
            if !v.is_null() {
                push_js_string(&mut out, v);
            }
            Ok(())
        })?;
    }
    Ok(Value::String(out))
}

/// `substr(text, start, length)` with JavaScript's meaning of negative `start` (from the end)
/// and negative `length` (stop that many characters before the end).
pub(crate) fn substr(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let chars: Vec<char> = to_js_string(&arg(args, 0, scope, budget)?)
        .chars()
        .collect();
    budget.spend(chars.len() as u64)?;
    let len = chars.len() as i64;
    let start = whole(to_number(&arg(args, 1, scope, budget)?));
    let start = if start < 0 {
        len.saturating_add(start).max(0)
    } else {
        start.min(len)
    };
    let end = if args.len() > 2 {
        let length = whole(to_number(&arg(args, 2, scope, budget)?));
        if length < 0 {
            len.saturating_add(length).max(start)
        } else {
            start.saturating_add(length).min(len)
        }
    } else {
        len
    };
    // Both bounds are within 0..=len here.
    let (start, end) = (start as usize, end as usize);
    Ok(Value::String(chars[start..end].iter().collect()))
}

fn whole(f: f64) -> i64 {
    if f.is_nan() {
        0
    } else {
        // Saturating conversion: out-of-range starts and lengths clamp to the text's ends.
        f.trunc() as i64
    }
}

pub(crate) fn log(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    arg(args, 0, scope, budget)
}
