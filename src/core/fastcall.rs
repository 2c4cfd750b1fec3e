//! Loop methods installed by hand with CPython's fastcall convention, for the calls every task
//! makes: `call_soon(step, context=ctx)` on each step, `create_task(coro)` under `gather`.
//!
//! PyO3 gives a method that takes `**kwargs` the tuple-and-dict convention (an argument tuple
//! built for every call), and parses keywords of any other method by comparing names one by
//! one. A method here reads its arguments straight from the vector CPython passes: a keyword
//! name is first compared by identity with the interned name, which is what a caller written
//! in C or Python passes.

use std::ffi::{CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};

use super::event_loop::LoopCore;

/// A method of `LoopCore` called through [`trampoline`].
pub trait FastcallMethod {
    /// Its name, and its docstring in the form CPython reads a text signature from:
    /// `"name($self, a, /, *args, k=None)\n--\n\nWhat it does."`.
    const NAME: &'static str;
    const DOC: &'static CStr;

    fn call<'py>(
        slf: &Bound<'py, LoopCore>,
        args: &Arguments<'_, 'py>,
    ) -> PyResult<Bound<'py, PyAny>>;
}

/// Puts `M` on the loop's native type, where the Python face's subclass finds it.
pub fn install<M: FastcallMethod>(loop_type: &Bound<'_, PyType>) -> PyResult<()> {
    loop_type.setattr(M::NAME, method_descriptor::<M>(loop_type)?)
}

/// A method descriptor of the loop's native type for `M`.
pub fn method_descriptor<'py, M: FastcallMethod>(
    loop_type: &Bound<'py, PyType>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_type.py();
    // CPython keeps a pointer to the definition for the descriptor's lifetime, which is the
    // type's: it lives as long as the process.
    let name = CString::new(M::NAME).expect("a method name has no NUL");
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: Box::leak(name.into_boxed_c_str()).as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: trampoline::<M>,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: M::DOC.as_ptr(),
    }));
    unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(loop_type.as_type_ptr(), def))
    }
}

/// `M` with CPython's METH_FASTCALL | METH_KEYWORDS signature.
///
/// # Safety
/// `slf` is a LoopCore; the rest is what CPython passes such a function.
pub unsafe extern "C" fn trampoline<M: FastcallMethod>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // CPython calls a method only from a thread attached to the interpreter.
    let py = unsafe { Python::assume_attached() };
    let call = AssertUnwindSafe(|| {
        // The descriptor has checked that `slf` is a LoopCore.
        let slf = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<LoopCore>() };
        let arguments = unsafe { Arguments::new(py, args, nargs, kwnames) };
        M::call(&slf, &arguments)
    });
    let result = catch_unwind(call).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic in the loop core".to_string());
        Err(PanicException::new_err(message))
    });
    match result {
        Ok(value) => value.into_ptr(),
        Err(err) => {
            err.restore(py);
            std::ptr::null_mut()
        }
    }
}

/// The arguments of one fastcall: `nargs` positional values, then one value per keyword name.
pub struct Arguments<'a, 'py> {
    py: Python<'py>,
    values: &'a [*mut ffi::PyObject],
    nargs: usize,
    kwnames: Option<Borrowed<'a, 'py, PyTuple>>,
}

impl<'a, 'py> Arguments<'a, 'py> {
    /// # Safety
    /// What CPython hands a METH_FASTCALL | METH_KEYWORDS function: `nargs` borrowed values,
    /// then one per name of `kwnames` (a tuple of str, or NULL).
    unsafe fn new(
        py: Python<'py>,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> Self {
        let kwnames = (!kwnames.is_null())
            .then(|| unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() });
        let total = nargs as usize + kwnames.as_ref().map_or(0, |names| names.len());
        let values = if total == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(args, total) }
        };
        Arguments {
            py,
            values,
            nargs: nargs as usize,
            kwnames,
        }
    }

    pub fn py(&self) -> Python<'py> {
        self.py
    }

    pub fn nargs(&self) -> usize {
        self.nargs
    }

    pub fn has_keywords(&self) -> bool {
        self.keyword_count() > 0
    }

    pub fn keyword_count(&self) -> usize {
        self.kwnames.as_ref().map_or(0, |names| names.len())
    }

    /// The `i`-th positional value (`i < nargs()`).
    pub fn positional(&self, i: usize) -> Borrowed<'a, 'py, PyAny> {
        assert!(i < self.nargs);
        unsafe { Borrowed::from_ptr(self.py, self.values[i]) }
    }

    /// The positional values from `start` on, as the tuple a `*args` parameter receives.
    pub fn rest(&self, start: usize) -> PyResult<Bound<'py, PyTuple>> {
        if start >= self.nargs {
            return Ok(PyTuple::empty(self.py));
        }
        let rest = &self.values[start..self.nargs];
        let tuple = unsafe { ffi::PyTuple_New(rest.len() as ffi::Py_ssize_t) };
        let tuple = unsafe { Bound::from_owned_ptr_or_err(self.py, tuple)? };
        for (i, &value) in rest.iter().enumerate() {
            unsafe {
                ffi::Py_INCREF(value);
                ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, value);
            }
        }
        Ok(unsafe { tuple.cast_into_unchecked() })
    }

    /// Each keyword's name and value, in the caller's order.
    pub fn keywords(
        &self,
    ) -> impl Iterator<Item = (Borrowed<'a, 'py, PyString>, Borrowed<'a, 'py, PyAny>)> + '_ {
        let names = self.kwnames.as_ref();
        (0..names.map_or(0, |n| n.len())).map(move |i| {
            let name = unsafe {
                let name = ffi::PyTuple_GET_ITEM(names.unwrap().as_ptr(), i as ffi::Py_ssize_t);
                Borrowed::from_ptr(self.py, name).cast_unchecked::<PyString>()
            };
            let value = unsafe { Borrowed::from_ptr(self.py, self.values[self.nargs + i]) };
            (name, value)
        })
    }
}

pub fn unexpected_keyword(method: &str, name: &Bound<'_, PyString>) -> PyErr {
    PyTypeError::new_err(format!(
        "{method}() got an unexpected keyword argument '{name}'"
    ))
}

pub fn missing_positional(method: &str, name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{method}() missing 1 required positional argument: '{name}'"
    ))
}
