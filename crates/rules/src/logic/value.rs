//! JavaScript's coercions, as JSONLogic defines its operators in terms of them.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// JSONLogic truthiness: `false`, `null`, `0`, `""` and `[]` are false; everything else (`"0"`,
/// `[0]`, `{}`) is true.
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

/// JavaScript's `Number(v)` (the abstract operation ToNumber): `null` is 0, booleans 0 or 1,
/// lists go through their text (`[]` is 0, `["7"]` is 7), objects are NaN, and strings are read
/// by [`string_to_number`].
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

/// JavaScript's `parseFloat(v)`, which `+` and `*` use: the text of `v` (so `null` is `"null"`
/// and NaN), leading white space skipped, then the longest prefix that is a decimal number or
/// `Infinity` (`"12abc"` is 12, `"0x10"` is 0, `"1e3"` is 1000); NaN when there is none.
pub(crate) fn parse_float(v: &Value) -> f64 {
    match v {
        // parseFloat(String(n)) is n, except that -0 is written "0".
        Value::Number(n) => n
            .as_f64()
            .map_or(f64::NAN, |f| if f == 0.0 { 0.0 } else { f }),
        Value::String(s) => parse_float_str(s),
        other => parse_float_str(&to_js_string(other)),
    }
}

/// JavaScript's white space and line terminators, which `Number` trims and `parseFloat` skips:
/// more than Rust's `char::is_whitespace` (the byte-order mark U+FEFF) and less (U+0085).
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// JavaScript's `Number(s)` for a string: JavaScript white space around it is ignored; the empty
/// text is 0; `0x`, `0o` and `0b` introduce hexadecimal, octal and binary digits (no sign);
/// otherwise a decimal literal (`12`, `-1.5`, `.5`, `5.`, `1e3`) or `Infinity` with an optional
/// sign. Anything else (`"inf"`, `"NaN"`, `"12abc"`, `"1_000"`) is NaN.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = match t.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        return radix_digits(&t[2..], radix);
    }
    if decimal_prefix(t) == t.len() {
        parse_decimal(t)
    } else {
        f64::NAN
    }
}

fn parse_float_str(s: &str) -> f64 {
    let t = s.trim_start_matches(is_js_space);
    match decimal_prefix(t) {
        0 => f64::NAN,
        end => parse_decimal(&t[..end]),
    }
}

/// A text [`decimal_prefix`] accepted as a whole. Rust's parser reads every such text
/// (including `5.`, `.5` and `Infinity`) to the nearest double, as JavaScript does.
fn parse_decimal(t: &str) -> f64 {
    t.parse().unwrap_or(f64::NAN)
}

/// The length of the longest prefix of `t` that is JavaScript's StrDecimalLiteral: an optional
/// sign, then `Infinity` or digits with an optional fraction (at least one digit in all) and an
/// optional exponent. 0 when there is none.
fn decimal_prefix(t: &str) -> usize {
    let b = t.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    if t[i..].starts_with("Infinity") {
        return i + "Infinity".len();
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let whole = digits(i);
    i += whole;
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        fraction = digits(i + 1);
        if whole + fraction > 0 {
            i += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exponent = digits(i + 1 + sign);
        if exponent > 0 {
            i += 1 + sign + exponent;
        }
    }
    i
}

/// The value of `0x`/`0o`/`0b` digits, exactly while it fits in 128 bits and rounded once to
/// the nearest double (as JavaScript reads them); NaN for no digits or a wrong one.
fn radix_digits(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    let mut exact: Option<u128> = Some(0);
    let mut approx = 0.0_f64;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return f64::NAN;
        };
        exact = exact
            .and_then(|e| e.checked_mul(u128::from(radix)))
            .and_then(|e| e.checked_add(u128::from(d)));
        approx = approx * f64::from(radix) + f64::from(d);
    }
    // Beyond 128 bits (over 32 hexadecimal digits) the running double may be off by a unit in
    // the last place; no JSON input has a reason to say such a number.
    exact.map_or(approx, |e| e as f64)
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
    // Integers are written exactly, as Rulebook keeps them (JavaScript would round one above
    // 2^53 first; the README lists this difference).
    if let Some(i) = n.as_i64() {
        out.push_str(itoa::Buffer::new().format(i));
    } else if let Some(u) = n.as_u64() {
        out.push_str(itoa::Buffer::new().format(u));
    } else {
        push_js_number(out, n.as_f64().unwrap_or(f64::NAN));
    }
}

/// JavaScript's `String(f)` (Number::toString): the shortest digits that read back as `f`,
/// without an exponent from 1e-7 up to 1e21 and with one outside (`1e+21`, `1.5e-7`); `-0` is
/// `"0"`.
pub(crate) fn push_js_number(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f == 0.0 {
        out.push('0');
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest round-trip digits as `d.ddde-7`; JavaScript lays the same
    // digits out by where the decimal point falls (`n` below, as in the specification).
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exponent.parse::<i32>().unwrap_or(0) + 1;
    let zeros = |out: &mut String, count: i32| out.extend((0..count).map(|_| '0'));
    if k <= n && n <= 21 {
        out.push_str(&digits);
        zeros(out, n - k);
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        zeros(out, -n);
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
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

/// JavaScript's `<` (or `<=`): lists and objects as their text; two strings compare by UTF-16
/// code units, anything else as numbers; a comparison with something that is not a number is
/// false.
pub(crate) fn less(a: &Value, b: &Value, or_equal: bool) -> bool {
    let a = to_primitive(a);
    let b = to_primitive(b);
    if let (Value::String(x), Value::String(y)) = (&*a, &*b) {
        let order = compare_utf16(x, y);
        return order.is_lt() || (or_equal && order.is_eq());
    }
    let (x, y) = (to_number(&a), to_number(&b));
    if or_equal {
        x <= y
    } else {
        x < y
    }
}

/// JavaScript's order of strings: by UTF-16 code units. It is the order of the bytes of UTF-8
/// (Rust's `str` order) except between a character above U+FFFF and one from U+E000 to U+FFFF,
/// so only two texts that both leave ASCII need the slow walk.
pub(crate) fn compare_utf16(x: &str, y: &str) -> std::cmp::Ordering {
    if x.is_ascii() || y.is_ascii() {
        x.cmp(y)
    } else {
        x.encode_utf16().cmp(y.encode_utf16())
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

    #[test]
    fn strings_become_numbers_as_javascript_number_reads_them() {
        for (text, want) in [
            ("", 0.0),
            (" \t\u{feff}\u{3000}", 0.0),
            ("0x1F", 31.0),
            ("0b101", 5.0),
            ("0o777", 511.0),
            ("-12.5e-1", -1.25),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("0.1", 0.1),
        ] {
            assert_eq!(string_to_number(text), want, "{text:?}");
        }
        for text in [
            "inf", "+0x1", "0x", "1e", "e1", "1..2", "--1", "\u{85}1", "1 2",
        ] {
            assert!(string_to_number(text).is_nan(), "{text:?}");
        }
        assert_eq!(parse_float(&json!("  -1.5e2abc")), -150.0);
        assert_eq!(parse_float(&json!("-Infinityx")), f64::NEG_INFINITY);
        assert!(parse_float(&json!(".e1")).is_nan());
        assert!(parse_float(&json!(null)).is_nan());
        assert_eq!(parse_float(&json!([" 7", 8])), 7.0);
    }

    #[test]
    fn numbers_become_text_as_javascript_writes_them() {
        let text = |f: f64| {
            let mut out = String::new();
            push_js_number(&mut out, f);
            out
        };
        assert_eq!(text(1e21), "1e+21");
        assert_eq!(text(-1e21), "-1e+21");
        assert_eq!(text(9.99e20), "999000000000000000000");
        assert_eq!(text(1e-6), "0.000001");
        assert_eq!(text(1.5e-7), "1.5e-7");
        assert_eq!(text(-0.0), "0");
        assert_eq!(text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(text(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(text(f64::NAN), "NaN");
        assert_eq!(text(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn strings_order_by_utf16_code_units() {
        assert!(compare_utf16("\u{1f600}", "\u{e000}").is_lt());
        assert!(compare_utf16("a\u{1f600}", "a\u{ffff}").is_lt());
        assert!(compare_utf16("a", "\u{1f600}").is_lt());
        assert!(compare_utf16("é", "é").is_eq());
    }
}
