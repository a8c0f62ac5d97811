//! JSON between Python and Rust: plain Python values (`dict` with `str` keys, `list`, `tuple`,
//! `str`, `int`, `float`, `bool`, `None`) to `serde_json::Value` ([`to_json`], which refuses what
//! JSON cannot hold as `json.dumps` would), and Rust answers back to plain Python values as
//! `json.loads` would make them from the server's answer ([`to_python`]: a struct or a map becomes
//! a dict in the order it serialises, which is the HTTP answer's order).
//!
//! An answer goes straight from its `Serialize` to Python objects, with no JSON text between,
//! which costs a fraction of serialising it and reading the text back with `json.loads`. The
//! answer of an evaluation, the call made most, is built by hand from kept dicts instead (see
//! `answer.rs`), with [`value_to_python`] for the values it computes.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyNone, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// How deep a Python value may nest (what `json.dumps` would refuse with a `RecursionError`).
const MAX_DEPTH: usize = 128;

/// `value` as JSON.
///
/// Errors: `TypeError` for a value JSON cannot hold (a set, a date, a key that is not a string),
/// `ValueError` for a float that is not finite, an int outside 64 bits, or nesting deeper than
/// 128.
pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(value, 0)
}

fn to_json_at(value: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "the value nests deeper than {MAX_DEPTH} levels"
        )));
    }
    // The exact types first: a pointer comparison each, where the checks below that take
    // subclasses call into Python (a context is mostly plain strs, dicts and numbers).
    if let Ok(text) = value.cast_exact::<PyString>() {
        return string(text);
    }
    if let Ok(dict) = value.cast_exact::<PyDict>() {
        return object(dict, depth);
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    // `bool` before `int`: a bool is an int in Python.
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(int) = value.extract::<i64>() {
            return Ok(Value::from(int));
        }
        if let Ok(int) = value.extract::<u64>() {
            return Ok(Value::from(int));
        }
        return Err(PyValueError::new_err(format!(
            "the int {value} does not fit in 64 bits"
        )));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        let float = float.value();
        return Number::from_f64(float).map(Value::Number).ok_or_else(|| {
            PyValueError::new_err(format!("JSON has no {float}: only finite numbers"))
        });
    }
    if let Ok(text) = value.cast::<PyString>() {
        return string(text);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        return object(dict, depth);
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list
            .iter()
            .map(|item| to_json_at(&item, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|item| to_json_at(&item, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    Err(PyTypeError::new_err(format!(
        "`{}` is not JSON: use dict, list, str, int, float, bool or None",
        value.get_type().name()?
    )))
}

/// A `str` (or a subclass) as JSON.
fn string(text: &Bound<'_, PyString>) -> PyResult<Value> {
    Ok(Value::String(text.to_str()?.to_owned()))
}

/// A `dict` (or a subclass) at `depth` as a JSON object.
fn object(dict: &Bound<'_, PyDict>, depth: usize) -> PyResult<Value> {
    let mut map = Map::with_capacity(dict.len());
    for (key, item) in dict.iter() {
        let Ok(key) = key.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "JSON object keys are strings, not `{}`",
                key.get_type().name()?
            )));
        };
        map.insert(key.to_str()?.to_owned(), to_json_at(&item, depth + 1)?);
    }
    Ok(Value::Object(map))
}

/// `value` (an answer, a `serde_json::Value`) as plain Python values, built straight from its
/// `Serialize` by `pythonize`: structs and maps become dicts in field order, sequences lists.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(pythonize::pythonize(py, value)?)
}

/// `value` as plain Python values, as `json.loads` makes them: what [`to_python`] makes of it,
/// without going through `Serialize` (for the values an answer computes, one at a time).
pub(crate) fn value_to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => PyNone::get(py).to_owned().into_any(),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        // As `Number` serialises: an integer as one (u64 past i64), else a float.
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => int.into_pyobject(py)?.into_any(),
            (None, Some(int)) => int.into_pyobject(py)?.into_any(),
            _ => number
                .as_f64()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any(),
        },
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, value_to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}
