//! JSON between Python and Rust: plain Python values (`dict` with `str` keys, `list`, `tuple`,
//! `str`, `int`, `float`, `bool`, `None`) to `serde_json::Value` and back, as `json.loads` and
//! `json.dumps` would make them (a tuple becomes a list; an object keeps its key order).
//!
//! An answer built in Rust (an evaluation, a score) goes the other way as JSON text: serialised
//! with the GIL released, then read by the standard library's `json.loads` ([`loads`]), which is
//! C, reuses the key strings it has already made, and builds the dicts several times faster than
//! inserting one item at a time from here. It is also exactly what an HTTP client reading the
//! server's answer gets.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
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
        return Ok(Value::String(text.to_str()?.to_owned()));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
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
        return Ok(Value::Object(map));
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

/// `value` as JSON text, for [`loads`]; called with the GIL released.
pub(crate) fn dumps(value: &impl serde::Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| e.to_string())
}

/// JSON text (from [`dumps`]) as plain Python values, by `json.loads`.
pub(crate) fn loads<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOADS
        .import(py, "json", "loads")?
        .call1((PyBytes::new(py, text),))
}

/// `value` as a plain Python value.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                int.into_pyobject(py)?.into_any()
            } else if let Some(int) = number.as_u64() {
                int.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, number.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}
