//! `cat`, `substr` and `log` (which returns its argument: this crate does no I/O).

use serde_json::Value;

use super::value::{push_js_string, to_js_string, to_number};
use super::{arg, eval, with_value, Budget, Node, Scope};
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

/// `substr(text, start, length)` as json-logic-js computes it, on UTF-16 code units (a pair
/// cut in half leaves U+FFFD, where JavaScript leaves a lone surrogate): JavaScript's
/// `String(text).substr(start, length)`, where a negative `start` counts from the end, plus
/// json-logic-js's own rule for a negative `length` (stop that many units before the end). A
/// missing `text` is `undefined`, whose text is `"undefined"`.
pub(crate) fn substr(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let text = match args.first() {
        Some(node) => to_js_string(&eval(node, scope, budget)?),
        None => "undefined".to_owned(),
    };
    let ascii = text.is_ascii();
    let units: Vec<u16> = if ascii {
        Vec::new()
    } else {
        text.encode_utf16().collect()
    };
    let len = if ascii { text.len() } else { units.len() };
    budget.spend(len as u64)?;
    let size = len as f64;
    let start = integer(to_number(&arg(args, 1, scope, budget)?));
    let start = if start < 0.0 {
        (size + start).max(0.0)
    } else {
        start.min(size)
    };
    let end = match args.get(2) {
        None => size,
        Some(node) => {
            let length = eval(node, scope, budget)?;
            let n = to_number(&length);
            if n < 0.0 {
                // json-logic-js: `temp = substr(start); temp.substr(0, temp.length + length)`.
                // When `length` is not a number, `+` joins texts ("3-1"), which is NaN, so 0.
                if length.is_number() {
                    start + integer((size - start) + n).clamp(0.0, size - start)
                } else {
                    start
                }
            } else {
                (start + integer(n)).min(size)
            }
        }
    };
    // Both bounds are whole numbers within 0..=len here.
    let (start, end) = (start as usize, (end as usize).max(start as usize));
    let part = if ascii {
        text[start..end].to_owned()
    } else {
        String::from_utf16_lossy(&units[start..end])
    };
    Ok(Value::String(part))
}

/// JavaScript's ToIntegerOrInfinity: NaN is 0, anything else drops its fraction.
fn integer(f: f64) -> f64 {
    if f.is_nan() {
        0.0
    } else {
        f.trunc()
    }
}

pub(crate) fn log(
    args: &[Node],
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    arg(args, 0, scope, budget)
}
