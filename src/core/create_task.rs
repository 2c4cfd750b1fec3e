//! `loop.create_task(coro, **kwargs)`, the call under `gather`, `TaskGroup` and `ensure_future`.
//!
//! Not a `#[pymethods]` method: PyO3 gives any method that takes `**kwargs` CPython's
//! tuple-and-dict calling convention, so each `create_task(coro)` would build an argument
//! tuple first. Installed on `LoopCore` as a method descriptor of the fastcall convention
//! instead, the common call (one positional argument, no keywords) allocates nothing of its
//! own, and keywords are gathered into a dict only when there are some.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyAttributeError, PyDeprecationWarning, PyTypeError};
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use super::event_loop::LoopCore;
use super::stdlib;
use super::versions::{self, CreateTaskKeywords};

const DOC: &CStr = c"create_task($self, coro, **kwargs)\n--\n\n\
Wraps a coroutine in an asyncio.Task, or in what the task factory makes of it.";

/// Puts `create_task` on the loop's native type, where the Python face's subclass finds it.
pub fn install(loop_type: &Bound<'_, PyType>) -> PyResult<()> {
    let py = loop_type.py();
    // CPython keeps a pointer to the definition for the descriptor's lifetime: that is the
    // type's, so the definition lives as long as the process.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"create_task".as_ptr() as *const c_char,
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: create_task_fastcall,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: DOC.as_ptr(),
    }));
    let descriptor = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(loop_type.as_type_ptr(), def))?
    };
    loop_type.setattr(pyo3::intern!(py, "create_task"), descriptor)
}

unsafe extern "C" fn create_task_fastcall(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // CPython calls a method only while this thread is attached to the interpreter.
    let py = unsafe { Python::assume_attached() };
    let call = AssertUnwindSafe(|| unsafe { from_fastcall(py, slf, args, nargs, kwnames) });
    let result = match catch_unwind(call) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic in create_task".to_string());
            Err(PanicException::new_err(message))
        }
    };
    match result {
        Ok(task) => task.into_ptr(),
        Err(err) => {
            err.restore(py);
            std::ptr::null_mut()
        }
    }
}

/// Reads fastcall's arguments as asyncio's `create_task(self, coro, **kwargs)` would.
///
/// # Safety
/// The arguments CPython hands a METH_FASTCALL | METH_KEYWORDS function: `nargs` positional
/// values then one per name of `kwnames` (a tuple of str, or NULL), all borrowed.
unsafe fn from_fastcall<'py>(
    py: Python<'py>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Bound<'py, PyAny>> {
    // The descriptor has checked that `slf` is a LoopCore.
    let slf = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<LoopCore>() };
    let value = |i: usize| unsafe { Borrowed::from_ptr(py, *args.add(i)) };
    let nargs = nargs as usize;
    if kwnames.is_null() && nargs == 1 {
        return create_task(&slf, &value(0), None);
    }
    if nargs > 1 {
        return Err(PyTypeError::new_err(format!(
            "create_task() takes 2 positional arguments but {} were given",
            nargs + 1
        )));
    }
    let mut coro = (nargs == 1).then(|| value(0));
    let kwargs = PyDict::new(py);
    if !kwnames.is_null() {
        let names = unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() };
        for (i, name) in names.iter().enumerate() {
            let given = value(nargs + i);
            if name.eq(pyo3::intern!(py, "coro"))? {
                if coro.replace(given).is_some() {
                    return Err(PyTypeError::new_err(
                        "create_task() got multiple values for argument 'coro'",
                    ));
                }
            } else {
                kwargs.set_item(name, given)?;
            }
        }
    }
    let coro = coro.ok_or_else(|| {
        PyTypeError::new_err("create_task() missing 1 required positional argument: 'coro'")
    })?;
    create_task(&slf, &coro, Some(kwargs))
}

/// Wraps a coroutine in an `asyncio.Task` (or what the task factory makes of it). The
/// keywords (`name=`, `context=`, 3.14's `eager_start=`, ...) reach the task or the
/// factory as the running version's asyncio passes them (`versions.CREATE_TASK_KEYWORDS`).
fn create_task<'py>(
    slf: &Bound<'py, LoopCore>,
    coro: &Bound<'py, PyAny>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    static KW_LOOP: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
    let py = slf.py();
    let this = slf.get();
    this.check_closed(py)?;
    let style = versions::create_task_keywords(py)?;
    let kwargs = kwargs.filter(|k| !k.is_empty());
    if let (CreateTaskKeywords::NameContext, Some(given)) = (style, &kwargs) {
        for key in given.keys() {
            let key = key.extract::<String>()?;
            if key != "name" && key != "context" {
                return Err(PyTypeError::new_err(format!(
                    "create_task() got an unexpected keyword argument '{key}'"
                )));
            }
        }
    }
    let factory = this
        .state
        .borrow(py)
        .task_factory
        .as_ref()
        .map(|f| f.clone_ref(py));
    let lp = slf.as_any();
    let Some(factory) = factory else {
        // Task(coro, loop=self, **kwargs), whatever the version.
        let task = stdlib::task_type(py)?;
        return match kwargs {
            None => stdlib::vectorcall(
                task,
                [coro, lp],
                Some(stdlib::kwnames(py, &KW_LOOP, &["loop"])?),
            ),
            Some(kwargs) => {
                if kwargs.contains("loop")? {
                    return Err(PyTypeError::new_err(
                        "create_task() got multiple values for keyword argument 'loop'",
                    ));
                }
                kwargs.set_item("loop", lp)?;
                task.call((coro,), Some(&kwargs))
            }
        };
    };
    let factory = factory.bind(py);
    match style {
        CreateTaskKeywords::PassThrough => factory.call((lp, coro), kwargs.as_ref()),
        CreateTaskKeywords::SetName => {
            let kwargs = kwargs.unwrap_or_else(|| PyDict::new(py));
            let name = kwargs.get_item("name")?;
            if name.is_some() {
                kwargs.del_item("name")?;
            }
            if kwargs.get_item("context")?.is_some_and(|c| c.is_none()) {
                kwargs.del_item("context")?;
            }
            let task = factory.call((lp, coro), Some(&kwargs))?;
            // As 3.13 does, even without a name: the task is then named 'None'.
            task.call_method1(
                pyo3::intern!(py, "set_name"),
                (name.unwrap_or(py.None().into_bound(py)),),
            )?;
            Ok(task)
        }
        CreateTaskKeywords::NameContext => {
            let get = |key: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
                Ok(match &kwargs {
                    Some(k) => k.get_item(key)?.filter(|v| !v.is_none()),
                    None => None,
                })
            };
            let (name, context) = (get("name")?, get("context")?);
            let task = match context {
                None => factory.call1((lp, coro))?,
                Some(c) => {
                    let only_context = PyDict::new(py);
                    only_context.set_item("context", c)?;
                    factory.call((lp, coro), Some(&only_context))?
                }
            };
            if let Some(n) = name {
                name_factory_task(&task, &n)?;
            }
            Ok(task)
        }
    }
}

/// 3.11 and 3.12: names a task the factory made, as their `create_task` does. A task type
/// without `set_name()` stays unnamed, with the DeprecationWarning asyncio gives it (3.13
/// makes the method mandatory).
fn name_factory_task(task: &Bound<'_, PyAny>, name: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = task.py();
    match task.getattr(pyo3::intern!(py, "set_name")) {
        Ok(set_name) => set_name.call1((name,)).map(drop),
        Err(err) if err.is_instance_of::<PyAttributeError>(py) => PyErr::warn(
            py,
            &py.get_type::<PyDeprecationWarning>(),
            c"the task factory made a task without set_name(), so it is left unnamed; \
              Python 3.13 makes set_name() mandatory for task implementations",
            // The frame of create_task's caller: a native method has none of its own.
            1,
        ),
        Err(err) => Err(err),
    }
}
