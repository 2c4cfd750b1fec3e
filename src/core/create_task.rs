//! `loop.create_task(coro, **kwargs)`, the call under `gather`, `TaskGroup` and `ensure_future`:
//! a fastcall method (core::fastcall), so the common call, one positional argument and no
//! keywords, allocates nothing of its own, and keywords become a dict only when given.

use std::ffi::CStr;

use pyo3::exceptions::{PyAttributeError, PyDeprecationWarning, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use super::event_loop::LoopCore;
use super::fastcall::{missing_positional, Arguments, FastcallMethod};
use super::stdlib;
use super::versions::{self, CreateTaskKeywords};

/// `create_task(coro, **kwargs)`.
pub struct CreateTask;

impl FastcallMethod for CreateTask {
    const NAME: &'static str = "create_task";
    const DOC: &'static CStr = c"create_task($self, coro, **kwargs)\n--\n\n\
Wraps a coroutine in an asyncio.Task, or in what the task factory makes of it.";

    fn call<'py>(
        slf: &Bound<'py, LoopCore>,
        args: &Arguments<'_, 'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if args.nargs() == 1 && !args.has_keywords() {
            return create_task(slf, &args.positional(0), None);
        }
        if args.nargs() > 1 {
            return Err(PyTypeError::new_err(format!(
                "create_task() takes 2 positional arguments but {} were given",
                args.nargs() + 1
            )));
        }
        let mut coro = (args.nargs() == 1).then(|| args.positional(0));
        let kwargs = PyDict::new(py);
        for (name, value) in args.keywords() {
            if PyAnyMethods::eq(name.as_any(), pyo3::intern!(py, "coro"))? {
                if coro.replace(value).is_some() {
                    return Err(PyTypeError::new_err(
                        "create_task() got multiple values for argument 'coro'",
                    ));
                }
            } else {
                kwargs.set_item(name, value)?;
            }
        }
        let coro = coro.ok_or_else(|| missing_positional("create_task", "coro"))?;
        create_task(slf, &coro, Some(kwargs))
    }
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
