//! Debug mode's reports about a misbehaving program.

use pyo3::prelude::*;

use super::io_table::Ready;
use super::stdlib;

/// How asyncio names a slow callback: a task's step is reported as the task itself.
fn describe(py: Python<'_>, item: &Ready) -> PyResult<String> {
    match item {
        Ready::Handle(handle) => {
            let handle = handle.bind(py);
            let callback = handle.getattr("_callback")?;
            if let Ok(owner) = callback.getattr("__self__") {
                if owner.is_instance(stdlib::task_type(py)?)? {
                    return owner.repr()?.extract();
                }
            }
            handle.str()?.extract()
        }
        Ready::Native(watcher) => watcher.target.bind(py).repr()?.extract(),
    }
}

/// Debug mode: a callback held the loop for `elapsed` seconds, at least
/// `slow_callback_duration`. Logged on the `asyncio` logger with asyncio's wording.
pub fn warn_slow_callback(py: Python<'_>, item: &Ready, elapsed: f64) -> PyResult<()> {
    let what = describe(py, item)?;
    stdlib::asyncio_logger(py)?
        .call_method1("warning", ("Executing %s took %.3f seconds", what, elapsed))?;
    Ok(())
}
