//! Regressions: each test pins a way Rulebook's JSONLogic computed something other than what
//! json-logic-js 2.x computes (found by replaying other engines' bug reports and by
//! `jsonlogic_js_differential.rs`). The expected values are json-logic-js's, checked with node.
//! Every case runs through `Logic::evaluate` and, as a rule's condition, through the boolean path
//! a ruleset uses, which must match exactly when the value is truthy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference;

use chrono::{TimeZone, Utc};
use rulebook_rules::logic::Logic;
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Value};

/// `expr`'s value over `data`, after checking that the condition path agrees with its truthiness.
fn eval(expr: Value, data: Value) -> Value {
    let value = Logic::compile(&expr)
        .unwrap()
        .evaluate(&data, &Limits::default())
        .unwrap();
    let entry_point = EntryPoint::parse("regressions").unwrap();
    let mut rule = Rule::new("case");
    rule.entry_point = Some(entry_point.clone());
    rule.condition = expr.clone();
    let set = Ruleset::compile(entry_point, vec![rule]).unwrap();
    let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let evaluation = set.evaluate(&data, at, &Limits::default());
    assert!(evaluation.errors.is_empty(), "{:?}", evaluation.errors);
    assert_eq!(
        !evaluation.matched.is_empty(),
        reference::truthy(&value),
        "{expr} as a condition disagrees with its value {value}"
    );
    value
}

/// Regression: `{"var": ["user.age", 42]}` gave 42 when `user.age` was present and `null`.
#[test]
fn var_default_applies_only_to_a_missing_path() {
    let expr = json!({"var": ["user.age", 42]});
    assert_eq!(
        eval(expr.clone(), json!({"user": {"age": null}})),
        json!(null)
    );
    assert_eq!(eval(expr.clone(), json!({"user": {"age": 0}})), json!(0));
    assert_eq!(eval(expr.clone(), json!({"user": {}})), json!(42));
    // A path through `null` leads nowhere, so the default applies.
    assert_eq!(eval(expr.clone(), json!({"user": null})), json!(42));
    assert_eq!(eval(expr, json!({})), json!(42));
    // The same through a computed path.
    let dynamic = json!({"var": [{"cat": ["user", ".age"]}, 42]});
    assert_eq!(eval(dynamic, json!({"user": {"age": null}})), json!(null));
}

/// Regression: `"inf"` and `"INFINITY"` compared as +∞ (JavaScript's `Number("inf")` is NaN);
/// only `Infinity`, with an optional sign, is infinite.
#[test]
fn inf_strings_are_not_numbers() {
    for text in ["inf", "INFINITY", "infinity", "-inf", "NaN", "nan"] {
        assert_eq!(
            eval(json!({">": [{"var": "x"}, 1000]}), json!({"x": text})),
            json!(false),
            "{text}"
        );
        assert_eq!(
            eval(json!({"<": [{"var": "x"}, 1000]}), json!({"x": text})),
            json!(false),
            "{text}"
        );
        assert_eq!(
            eval(
                json!({"==": [{"var": "x"}, {"var": "x"}]}),
                json!({"x": text})
            ),
            json!(true)
        );
    }
    assert_eq!(
        eval(json!({">": ["Infinity", 1e300]}), json!({})),
        json!(true)
    );
    assert_eq!(
        eval(json!({"<": ["-Infinity", -1e300]}), json!({})),
        json!(true)
    );
    assert_eq!(
        eval(json!({">": ["+Infinity", 1e300]}), json!({})),
        json!(true)
    );
}

/// Regression: `"0x10" == 16` and `"\u{feff}12" == 12` were false (JavaScript: true): `Number`
/// reads `0x`, `0o` and `0b` prefixes and trims JavaScript's white space, the byte-order mark
/// among it, but not U+0085.
#[test]
fn hex_and_bom_strings_convert_like_javascript_number() {
    for (text, number) in [
        ("0x10", 16.0),
        ("0X1f", 31.0),
        ("0b11", 3.0),
        ("0o17", 15.0),
        ("\u{feff}12", 12.0),
        ("\u{a0}7\u{2028}", 7.0),
        (" 12 ", 12.0),
        ("", 0.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1.e3", 1000.0),
        ("+4", 4.0),
    ] {
        assert_eq!(
            eval(json!({"==": [text, number]}), json!({})),
            json!(true),
            "{text:?}"
        );
    }
    for text in [
        "-0x10", "0x", "0b12", "\u{85}3", "1_000", "12abc", "1e", ".",
    ] {
        assert_eq!(
            eval(json!({"==": [text, {"-": [text, 0]}]}), json!({})),
            json!(false),
            "{text:?}"
        );
        assert_eq!(
            eval(json!({"-": [text, 0]}), json!({})),
            json!(null),
            "{text:?} is NaN"
        );
    }
}

/// Regression: `+` and `*` read numbers with `Number`; json-logic-js uses `parseFloat`, which
/// takes the longest numeric prefix (`"12abc"` is 12) and reads `null` as NaN, while `-` and `/`
/// use `Number`.
#[test]
fn plus_and_times_read_numbers_with_parse_float() {
    assert_eq!(eval(json!({"+": ["12abc", 1]}), json!({})), json!(13));
    assert_eq!(eval(json!({"*": [" 1e3x", 2]}), json!({})), json!(2000));
    assert_eq!(eval(json!({"+": ["0x10", 0]}), json!({})), json!(0));
    assert_eq!(eval(json!({"+": ["Infinityx", 1]}), json!({})), json!(null));
    assert_eq!(eval(json!({"+": [null, 1]}), json!({})), json!(null));
    assert_eq!(eval(json!({"+": [[1, 2], 1]}), json!({})), json!(2));
    assert_eq!(eval(json!({"-": ["12abc", 1]}), json!({})), json!(null));
    assert_eq!(eval(json!({"-": [null, 1]}), json!({})), json!(-1));
    assert_eq!(eval(json!({"+": []}), json!({})), json!(0));
}

/// Regression: `{"*": [x]}` gave `Number(x)`; json-logic-js folds `*` without a starting value,
/// so its one argument comes back as it is.
#[test]
fn one_argument_times_returns_its_argument() {
    assert_eq!(eval(json!({"*": ["3"]}), json!({})), json!("3"));
    assert_eq!(
        eval(json!({"*": [{"var": "x"}]}), json!({"x": [1]})),
        json!([1])
    );
    assert_eq!(eval(json!({"*": "abc"}), json!({})), json!("abc"));
}

/// Regression: numbers became text in Rust's way in `cat`, `substr`, `in` and `var` paths
/// (`1e21`, `0.000001` as `1e-6`, `1e-7` as `0.0000001`); JavaScript writes `1e+21`,
/// `0.000001`, `1e-7`.
#[test]
fn numbers_become_text_as_javascript_writes_them() {
    for (number, text) in [
        (json!(1e21), "1e+21"),
        (json!(1.5e300), "1.5e+300"),
        (json!(123456789.125), "123456789.125"),
        (json!(1e20), "100000000000000000000"),
        (json!(0.000001), "0.000001"),
        (json!(1e-7), "1e-7"),
        (json!(1.25e-7), "1.25e-7"),
        (json!(5e-324), "5e-324"),
        (json!(-0.0), "0"),
        (json!(2.0), "2"),
        (json!(0.1), "0.1"),
    ] {
        assert_eq!(
            eval(json!({"cat": [number.clone()]}), json!({})),
            json!(text),
            "{number}"
        );
        assert_eq!(
            eval(
                json!({"in": [number.clone(), format!("<{text}>")]}),
                json!({})
            ),
            json!(true)
        );
        assert_eq!(eval(json!({"==": [number, text]}), json!({})), json!(true));
    }
    // A number as a `var` path is its text, split at dots.
    assert_eq!(
        eval(json!({"var": 1.5}), json!({"1": {"5": "x"}})),
        json!("x")
    );
}

/// Regression: a missing operand was read as `null`; json-logic-js passes `undefined`, which is
/// NaN as a number, strictly equal only to another missing operand, and `"undefined"` as text.
#[test]
fn a_missing_operand_is_undefined() {
    assert_eq!(eval(json!({">=": []}), json!({})), json!(false));
    assert_eq!(eval(json!({"<=": [-1]}), json!({})), json!(false));
    assert_eq!(eval(json!({">": [1]}), json!({})), json!(false));
    assert_eq!(eval(json!({"===": [null]}), json!({})), json!(false));
    assert_eq!(eval(json!({"!==": [null]}), json!({})), json!(true));
    assert_eq!(eval(json!({"===": []}), json!({})), json!(true));
    assert_eq!(eval(json!({"==": [null]}), json!({})), json!(true));
    assert_eq!(eval(json!({"-": []}), json!({})), json!(null));
    assert_eq!(eval(json!({"substr": []}), json!({})), json!("undefined"));
    assert_eq!(eval(json!({"reduce": [[1, 2]]}), json!({})), json!(null));
    assert_eq!(eval(json!({"reduce": [[], null, 7]}), json!({})), json!(7));
}

/// Regression: `var` could not read a list's or a string's `length` or a string's characters,
/// and read `"01"` and `"+1"` as list indexes (JavaScript reads only canonical ones).
#[test]
fn var_paths_index_lists_and_strings_as_javascript_does() {
    let data = json!({"items": ["a", "b"], "name": "x😀", "n": 5});
    assert_eq!(eval(json!({"var": "items.1"}), data.clone()), json!("b"));
    assert_eq!(eval(json!({"var": "items.length"}), data.clone()), json!(2));
    assert_eq!(
        eval(json!({"var": ["items.01", "none"]}), data.clone()),
        json!("none")
    );
    assert_eq!(
        eval(json!({"var": ["items.+1", "none"]}), data.clone()),
        json!("none")
    );
    // Strings count UTF-16 code units, as JavaScript does.
    assert_eq!(eval(json!({"var": "name.length"}), data.clone()), json!(3));
    assert_eq!(eval(json!({"var": "name.0"}), data.clone()), json!("x"));
    assert_eq!(
        eval(json!({"var": ["name.3", "none"]}), data.clone()),
        json!("none")
    );
    assert_eq!(
        eval(json!({"var": ["n.length", "none"]}), data.clone()),
        json!("none")
    );
    // Inside `map`, an element that is a string.
    assert_eq!(
        eval(json!({"map": [["ab", "c"], {"var": "length"}]}), data),
        json!([2, 1])
    );
}

/// Regression: `missing` and `missing_some` called the empty key (and `null`) missing; as `var`
/// reads it, it is the whole data, which is there.
#[test]
fn missing_reads_the_empty_key_as_the_whole_data() {
    assert_eq!(
        eval(json!({"missing": ["", "a"]}), json!({"b": 1})),
        json!(["a"])
    );
    assert_eq!(
        eval(json!({"missing_some": [1, ["", "a"]]}), json!({"b": 1})),
        json!([])
    );
    assert_eq!(eval(json!({"missing": [null]}), json!({"b": 1})), json!([]));
}

/// Regression: `{"in": ["", ""]}` was true; json-logic-js refuses an empty text before it
/// searches it.
#[test]
fn in_an_empty_string_finds_nothing() {
    assert_eq!(eval(json!({"in": ["", ""]}), json!({})), json!(false));
    assert_eq!(eval(json!({"in": ["", "a"]}), json!({})), json!(true));
    assert_eq!(
        eval(json!({"in": [null, "xnullx"]}), json!({})),
        json!(true)
    );
}

/// Regression: strings compared in Rust's order (code points); JavaScript compares UTF-16 code
/// units, so a character above U+FFFF sorts before U+E000..U+FFFF.
#[test]
fn strings_compare_by_utf16_code_units() {
    assert_eq!(
        eval(json!({"<": ["😀", "\u{e000}"]}), json!({})),
        json!(true)
    );
    assert_eq!(
        eval(json!({">": ["\u{ffff}", "😀"]}), json!({})),
        json!(true)
    );
    assert_eq!(eval(json!({"<": ["a", "b", "c"]}), json!({})), json!(true));
}

/// Regression: `substr` counted characters; JavaScript counts UTF-16 code units.
#[test]
fn substr_counts_utf16_code_units() {
    assert_eq!(eval(json!({"substr": ["😀xy", 2]}), json!({})), json!("xy"));
    assert_eq!(eval(json!({"substr": ["😀xy", -1]}), json!({})), json!("y"));
    assert_eq!(
        eval(json!({"substr": ["aé😀", 1, 1]}), json!({})),
        json!("é")
    );
    // A pair cut in half: JavaScript keeps a lone surrogate, Rulebook U+FFFD (README).
    assert_eq!(
        eval(json!({"substr": ["😀", 1]}), json!({})),
        json!("\u{fffd}")
    );
}

/// Regression: a negative `substr` length given as text (`"-1"`) cut the end off; json-logic-js
/// adds it to a number as text (`3 + "-1"` is `"3-1"`, NaN), which gives the empty string.
#[test]
fn substr_with_a_negative_length_that_is_not_a_number_is_empty() {
    assert_eq!(
        eval(json!({"substr": ["abcdef", 1, "-1"]}), json!({})),
        json!("")
    );
    assert_eq!(
        eval(json!({"substr": ["abcdef", 1, -1]}), json!({})),
        json!("bcde")
    );
    assert_eq!(
        eval(json!({"substr": ["abcdef", 1, "2"]}), json!({})),
        json!("bc")
    );
    assert_eq!(
        eval(json!({"substr": ["abcdef", -3, -1.5]}), json!({})),
        json!("d")
    );
}
