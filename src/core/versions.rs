//! The facts of `ferroloop.versions` (what the running CPython's asyncio does differently) that
//! the core needs, read once per process. The facts themselves live in that Python module
//! only: the core never looks at the interpreter's version.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// How `create_task` hands its keywords on (`versions.CREATE_TASK_KEYWORDS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateTaskKeywords {
    /// 3.11, 3.12: `name=` and `context=` only; a factory gets `context=` when given, and the
    /// name is set afterwards with `asyncio.tasks._set_task_name`.
    NameContext,
    /// 3.13: any keyword; a factory gets all but `name=` (`context=` only when not None), then
    /// `task.set_name(name)` is called.
    SetName,
    /// 3.14 on: any keyword, passed on unchanged.
    PassThrough,
}

fn fact<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("ferroloop.versions")?.getattr(name)
}

pub fn create_task_keywords(py: Python<'_>) -> PyResult<CreateTaskKeywords> {
    static CELL: PyOnceLock<CreateTaskKeywords> = PyOnceLock::new();
    CELL.get_or_try_init(py, || {
        let value: String = fact(py, "CREATE_TASK_KEYWORDS")?.extract()?;
        match value.as_str() {
            "name-context" => Ok(CreateTaskKeywords::NameContext),
            "set-name" => Ok(CreateTaskKeywords::SetName),
            "kwargs" => Ok(CreateTaskKeywords::PassThrough),
            other => Err(PyRuntimeError::new_err(format!(
                "ferroloop.versions.CREATE_TASK_KEYWORDS is {other:?}, which the core does not know"
            ))),
        }
    })
    .copied()
}

/// `versions.CALLBACK_ARGS_ONLY_IN_DEBUG`: whether asyncio's callback formatting takes
/// `debug=`, and shows the arguments only when it is true.
pub fn callback_args_only_in_debug(py: Python<'_>) -> PyResult<bool> {
    static CELL: PyOnceLock<bool> = PyOnceLock::new();
    CELL.get_or_try_init(py, || fact(py, "CALLBACK_ARGS_ONLY_IN_DEBUG")?.is_truthy())
        .copied()
}

/// `versions.THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN`: whether `call_soon_threadsafe`'s handles
/// make other threads' `cancel()`/`cancelled()` wait while they run.
pub fn threadsafe_handle_waits_for_its_run(py: Python<'_>) -> PyResult<bool> {
    static CELL: PyOnceLock<bool> = PyOnceLock::new();
    CELL.get_or_try_init(py, || {
        fact(py, "THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN")?.is_truthy()
    })
    .copied()
}

/// `versions.SENDFILE_ALWAYS_SEEKS`: whether sendfile sets the file position even when it sent
/// nothing.
pub fn sendfile_always_seeks(py: Python<'_>) -> PyResult<bool> {
    static CELL: PyOnceLock<bool> = PyOnceLock::new();
    CELL.get_or_try_init(py, || fact(py, "SENDFILE_ALWAYS_SEEKS")?.is_truthy())
        .copied()
}
