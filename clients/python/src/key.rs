//! Cache keys: Python values in a form that hashes and compares without the GIL.
//!
//! The cache compares keys while it holds its own locks. If a comparison ran Python code (a
//! user-defined `__eq__`), the interpreter could hand the GIL to another thread in the middle of
//! it; that thread, entering the cache, would wait for the lock while holding the GIL, and the
//! first thread would wait for the GIL while holding the lock. So no key comparison runs Python:
//!
//! - `None`, `bool`, `int`, `float`, `str`, `bytes` and tuples of them (exact types only) are
//!   copied into Rust values, with Python's equality across numbers kept: `True`, `1` and `1.0`
//!   are one key, as they are one key of a `dict`.
//! - Any other hashable value (a frozen dataclass, an enum member, a `datetime`, a subclass of
//!   `str`) is looked up, with the GIL held and no cache lock taken, in a per-cache dictionary
//!   that maps each value to the first equal value seen (its *representative*). Equal keys share
//!   a representative, so the cache compares representatives by identity. The dictionary is
//!   swept when it grows: a representative that nothing but the dictionary refers to (no entry,
//!   no load in flight, no caller holding it) is dropped. Should a thread take up a
//!   representative while a sweep drops it (a key's own `__hash__` or `__eq__` can let the GIL
//!   go), later equal keys get a new representative: the old entry is no longer found and ages
//!   out. That costs a load, never a wrong or stale value.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};

/// The smallest size at which the representatives are swept.
const MIN_SWEEP: usize = 1_024;

/// A key the cache can hash and compare without the GIL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    None,
    /// An `int` that fits in 64 bits, a `bool`, or a `float` with an integral value that does.
    Int(i64),
    /// Any other `int` (or integral `float`), as its decimal digits.
    BigInt(Arc<str>),
    /// A `float` with a fractional part, an infinity or a NaN, by its bits.
    Float(u64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    Tuple(Arc<[Key]>),
    /// Any other hashable value, by its representative.
    Object(Representative),
    /// A call with keyword arguments: the positional arguments, then each keyword and its value.
    /// No Python value has this form, so it never collides with a plain key.
    Call {
        positional: usize,
        items: Arc<[Key]>,
    },
}

/// The representative of a class of equal Python values: compared by identity, hashed by the
/// value's own hash.
#[derive(Clone)]
pub(crate) struct Representative {
    hash: isize,
    object: Arc<Py<PyAny>>,
}

impl PartialEq for Representative {
    fn eq(&self, other: &Self) -> bool {
        self.object.as_ptr() == other.object.as_ptr()
    }
}

impl Eq for Representative {}

impl Hash for Representative {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash.hash(state);
    }
}

/// Turns Python values into [`Key`]s for one cache, keeping its representatives.
pub(crate) struct Keys {
    representatives: Py<PyDict>,
    /// The size of `representatives` at which the next sweep runs.
    next_sweep: AtomicUsize,
}

impl Keys {
    pub(crate) fn new(py: Python<'_>) -> Self {
        Self {
            representatives: PyDict::new(py).unbind(),
            next_sweep: AtomicUsize::new(MIN_SWEEP),
        }
    }

    /// The key for `value`.
    ///
    /// Errors: `TypeError` if `value` (or an element of a tuple) is not hashable; whatever its
    /// `__hash__` or `__eq__` raises.
    pub(crate) fn key(&self, value: &Bound<'_, PyAny>) -> PyResult<Key> {
        if value.is_none() {
            return Ok(Key::None);
        }
        if let Ok(text) = value.cast_exact::<PyString>() {
            // A string with a lone surrogate has no UTF-8 form: it is keyed as an object.
            if let Ok(text) = text.to_str() {
                return Ok(Key::Str(Arc::from(text)));
            }
            return self.representative(value);
        }
        if let Ok(int) = value.cast_exact::<PyInt>() {
            return Ok(match int.extract::<i64>() {
                Ok(small) => Key::Int(small),
                Err(_) => Key::BigInt(Arc::from(int.str()?.to_str()?)),
            });
        }
        if let Ok(flag) = value.cast_exact::<PyBool>() {
            return Ok(Key::Int(i64::from(flag.is_true())));
        }
        if let Ok(tuple) = value.cast_exact::<PyTuple>() {
            let keys = tuple
                .iter()
                .map(|item| self.key(&item))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(Key::Tuple(Arc::from(keys)));
        }
        if let Ok(float) = value.cast_exact::<PyFloat>() {
            return float_key(float);
        }
        if let Ok(bytes) = value.cast_exact::<PyBytes>() {
            return Ok(Key::Bytes(Arc::from(bytes.as_bytes())));
        }
        self.representative(value)
    }

    /// The key of a call's arguments, as `functools.lru_cache` makes it: a lone `int` or `str`
    /// argument is its own key, other positional arguments their tuple, and keyword arguments
    /// (in the order given) are kept apart from positional ones.
    ///
    /// Errors: as [`Keys::key`], for any argument.
    pub(crate) fn call_key(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Key> {
        let kwargs = kwargs.filter(|kwargs| !kwargs.is_empty());
        let Some(kwargs) = kwargs else {
            if args.len() == 1 {
                let arg = args.get_item(0)?;
                if arg.is_exact_instance_of::<PyString>() || arg.is_exact_instance_of::<PyInt>() {
                    return self.key(&arg);
                }
            }
            return self.key(args.as_any());
        };
        let mut items = Vec::with_capacity(args.len() + 2 * kwargs.len());
        for arg in args.iter() {
            items.push(self.key(&arg)?);
        }
        for (name, value) in kwargs.iter() {
            items.push(self.key(&name)?);
            items.push(self.key(&value)?);
        }
        Ok(Key::Call {
            positional: args.len(),
            items: Arc::from(items),
        })
    }

    fn representative(&self, value: &Bound<'_, PyAny>) -> PyResult<Key> {
        let py = value.py();
        let hash = value.hash()?;
        let representatives = self.representatives.bind(py);
        if representatives.len() >= self.next_sweep.load(Ordering::Relaxed) {
            self.sweep(py)?;
        }
        // One call, so two threads with equal values cannot install two representatives.
        let object = representatives.call_method1("setdefault", (value, value))?;
        Ok(Key::Object(Representative {
            hash,
            object: Arc::new(object.unbind()),
        }))
    }

    /// Drops the representatives nothing else refers to. Runs with the GIL held: every key the
    /// cache holds is a reference to its representative, so a representative whose reference
    /// count is the dictionary's own is in no entry, no load in flight and no caller's hands.
    fn sweep(&self, py: Python<'_>) -> PyResult<()> {
        let representatives = self.representatives.bind(py);
        let getrefcount = py.import("sys")?.getattr("getrefcount")?;
        let count = |dict: &Bound<'_, PyDict>| -> PyResult<Vec<(Py<PyAny>, isize)>> {
            dict.keys()
                .iter()
                .map(|key| {
                    let refs = getrefcount.call1((&key,))?.extract::<isize>()?;
                    Ok((key.unbind(), refs))
                })
                .collect()
        };
        // What a representative referred to by the dictionary alone counts, measured the same
        // way on a fresh object, so the figure does not depend on the interpreter's version.
        let baseline = {
            let probe = PyDict::new(py);
            let object = py.eval(c"object()", None, None)?;
            probe.set_item(&object, &object)?;
            drop(object);
            count(&probe)?.first().map_or(0, |(_, refs)| *refs)
        };
        for (key, refs) in count(representatives)? {
            if refs <= baseline {
                representatives.del_item(key.bind(py))?;
            }
        }
        self.next_sweep.store(
            (2 * representatives.len()).max(MIN_SWEEP),
            Ordering::Relaxed,
        );
        Ok(())
    }
}

/// A float's key: integral values as integers, so `1.0` and `1` are one key as in a `dict`.
fn float_key(float: &Bound<'_, PyFloat>) -> PyResult<Key> {
    let value = float.value();
    if value.is_finite() && value.fract() == 0.0 {
        // Integral floats in [-2^63, 2^63) convert to i64 exactly.
        if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value) {
            #[allow(clippy::cast_possible_truncation)]
            return Ok(Key::Int(value as i64));
        }
        let int = float.py().get_type::<PyInt>().call1((float,))?;
        return Ok(Key::BigInt(Arc::from(int.str()?.to_str()?)));
    }
    Ok(Key::Float(value.to_bits()))
}
