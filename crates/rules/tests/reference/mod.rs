//! References the rules crate's tests judge it by, written from the JSONLogic specification and
//! not from the crate's own code.

use serde_json::Value;

/// json-logic-js's `truthy`: JavaScript's `!!v`, except that an empty array is falsy. So `false`,
/// `null`, `0`, `""` and `[]` are falsy; `"0"`, `[0]`, `{}` and every other number or string are
/// truthy.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(_) => true,
    }
}

#[test]
fn the_reference_is_right_where_engines_disagree() {
    use serde_json::json;
    for falsy in [
        json!(false),
        json!(null),
        json!(0),
        json!(0.0),
        json!(""),
        json!([]),
    ] {
        assert!(!truthy(&falsy), "{falsy} is falsy in json-logic-js");
    }
    for truthy_value in [
        json!("0"),
        json!([0]),
        json!({}),
        json!(-1),
        json!("false"),
        json!([[]]),
    ] {
        assert!(
            truthy(&truthy_value),
            "{truthy_value} is truthy in json-logic-js"
        );
    }
}
