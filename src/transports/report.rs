//! How the transports report trouble, in asyncio's words: the report half of `_fatal_error`
//! (logged or handed to the exception handler; `base::fatal_error` then closes the
//! transport) and failing flow-control callbacks (`_maybe_pause_protocol` /
//! `_maybe_resume_protocol`).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::core::event_loop::LoopCore;
use crate::core::stdlib;
use crate::errors::is_fatal_signal;

/// The report half of asyncio's `_fatal_error`: an error that is the peer's or the system's
/// doing (`quiet`: an OSError, or EIO on a pty) is only logged in debug mode; anything else
/// goes to the loop's exception handler with the transport and protocol.
pub fn report_fatal_error(
    lp: &Bound<'_, LoopCore>,
    exc: &Bound<'_, PyAny>,
    message: &str,
    quiet: bool,
    transport: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
) -> PyResult<()> {
    let py = lp.py();
    if quiet {
        if lp.get().debug_enabled(py) {
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", exc)?;
            stdlib::asyncio_logger(py)?.call_method(
                "debug",
                ("%r: %s", transport, message),
                Some(&kwargs),
            )?;
        }
        return Ok(());
    }
    let context = PyDict::new(py);
    context.set_item("message", message)?;
    context.set_item("exception", exc)?;
    context.set_item("transport", transport)?;
    context.set_item("protocol", protocol)?;
    lp.call_method1("call_exception_handler", (context,))?;
    Ok(())
}

/// Calls `protocol.pause_writing()` or `protocol.resume_writing()`; an exception it raises
/// goes to the exception handler (`'protocol.pause_writing() failed'`), as in asyncio.
pub fn call_flow_control(
    lp: &Bound<'_, LoopCore>,
    protocol: &Bound<'_, PyAny>,
    method: &str,
    transport: Option<Py<PyAny>>,
) -> PyResult<()> {
    let py = lp.py();
    let Err(err) = protocol.call_method0(method) else {
        return Ok(());
    };
    if is_fatal_signal(py, &err) {
        return Err(err);
    }
    let context = PyDict::new(py);
    context.set_item("message", format!("protocol.{method}() failed"))?;
    context.set_item("exception", err.into_value(py))?;
    context.set_item("transport", transport)?;
    context.set_item("protocol", protocol)?;
    lp.call_method1("call_exception_handler", (context,))?;
    Ok(())
}

/// `logger.<level>(format, transport)` on the asyncio logger (debug-mode traces).
pub fn log_transport(
    py: Python<'_>,
    level: &str,
    format: &str,
    transport: Option<Py<PyAny>>,
) -> PyResult<()> {
    stdlib::asyncio_logger(py)?.call_method1(level, (format, transport))?;
    Ok(())
}
