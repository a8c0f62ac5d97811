//! JavaScript's coercions, as JSONLogic defines its operators in terms of them.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// JSONLogic truthiness: `false`, `null`, `0`, `""` and `[]` are false; everything else is true.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// JavaScript's `Number(v)`.
pub(crate) fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        Value::Array(_) => string_to_number(&to_js_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

fn string_to_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        0.0
    } else {
        t.parse().unwrap_or(f64::NAN)
    }
}

/// JavaScript's `String(v)`, with arrays joined by commas and objects as `[object Object]`.
pub(crate) fn to_js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            push_js_string(&mut out, other);
            out
        }
    }
}

/// Appends JavaScript's `String(v)` to `out`, without building the text of each part first
/// (`cat` builds its result this way).
pub(crate) fn push_js_string(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, n),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !item.is_null() {
                    push_js_string(out, item);
                }
            }
        }
        Value::Object(_) => out.push_str("[object Object]"),
    }
}

fn push_number(out: &mut String, n: &Number) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = if let Some(i) = n.as_i64() {
        write!(out, "{i}")
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}")
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() == 0.0 && f.abs() < 1e21 {
            write!(out, "{f:.0}")
        } else {
            write!(out, "{n}")
        }
    };
}

/// A number as JSON: whole numbers become integers (so `1 + 2` is `3`, not `3.0`), and NaN and
/// infinities become `null`, which JSON cannot otherwise say.
pub(crate) fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        // Exact: the value is whole and within f64's integer range.
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// JavaScript's `==`, except that two lists or two objects compare by content rather than by
/// identity (a JSON document has no identities).
pub(crate) fn loose_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(_), Value::Number(_)) => to_number(a) == to_number(b),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_) | Value::Object(_), Value::Array(_) | Value::Object(_)) => a == b,
        (Value::Bool(_), _) => loose_equals(&num(to_number(a)), b),
        (_, Value::Bool(_)) => loose_equals(a, &num(to_number(b))),
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            to_number(a) == to_number(b)
        }
        (Value::Array(_) | Value::Object(_), _) => loose_equals(&Value::String(to_js_string(a)), b),
        (_, Value::Array(_) | Value::Object(_)) => loose_equals(a, &Value::String(to_js_string(b))),
    }
}

/// JavaScript's `===` (numbers compare by value, so `1 === 1.0`).
pub(crate) fn strict_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => to_number(a) == to_number(b),
        _ => std::mem::discriminant(a) == std::mem::discriminant(b) && a == b,
    }
}

/// JavaScript's `<` (or `<=`): two strings compare as text, anything else as numbers; a
/// comparison with something that is not a number is false.
pub(crate) fn less(a: &Value, b: &Value, or_equal: bool) -> bool {
    let a = to_primitive(a);
    let b = to_primitive(b);
    if let (Value::String(x), Value::String(y)) = (&*a, &*b) {
        return if or_equal { x <= y } else { x < y };
    }
    let (x, y) = (to_number(&a), to_number(&b));
    if or_equal {
        x <= y
    } else {
        x < y
    }
}

/// Lists and objects as their text; anything else as it is, borrowed.
fn to_primitive(v: &Value) -> Cow<'_, Value> {
    match v {
        Value::Array(_) | Value::Object(_) => Cow::Owned(Value::String(to_js_string(v))),
        other => Cow::Borrowed(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercions_match_javascript() {
        assert_eq!(to_number(&json!(" 42 ")), 42.0);
        assert!(to_number(&json!("abc")).is_nan());
        assert_eq!(to_number(&json!([])), 0.0);
        assert_eq!(to_number(&json!(["7"])), 7.0);
        assert_eq!(to_js_string(&json!(2.0)), "2");
        assert_eq!(to_js_string(&json!([1, null, "a"])), "1,,a");
        assert!(loose_equals(&json!(1), &json!("1")));
        assert!(loose_equals(&json!(true), &json!("1")));
        assert!(!loose_equals(&json!(null), &json!(0)));
        assert!(!strict_equals(&json!(1), &json!("1")));
        assert!(strict_equals(&json!(1), &json!(1.0)));
        assert!(less(&json!("a"), &json!("b"), false));
        assert!(!less(&json!("a"), &json!(1), true));
        assert_eq!(num(f64::NAN), Value::Null);
        assert_eq!(num(3.0), json!(3));
        assert_eq!(num(0.5), json!(0.5));
    }
}
