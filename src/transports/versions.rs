//! The facts of `ferroloop.versions` (what the running Python's asyncio does) that the native
//! transports follow, read once per process: the version differences stay decided in that
//! one Python module.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

pub struct Facts {
    /// A socket transport's write() of a non-buffer says "a bytes, bytearray, or memoryview
    /// object" (3.13 and later) rather than "a bytes-like object".
    pub write_error_names_types: bool,
    /// A socket transport queues any memoryview behind waiting data (3.12 and later: its
    /// buffer became a deque of views), so a strided one fails only when it is sent.
    pub write_queues_any_view: bool,
    /// A stream transport's `connection_made` runs in the connection's own context, as its
    /// other callbacks do (3.15 and later), rather than in a copy of it.
    pub connection_made_in_context: bool,
}

pub fn facts(py: Python<'_>) -> PyResult<&Facts> {
    static FACTS: PyOnceLock<Facts> = PyOnceLock::new();
    FACTS.get_or_try_init(py, || {
        let versions = py.import("ferroloop.versions")?;
        Ok::<_, PyErr>(Facts {
            write_error_names_types: versions
                .getattr("SOCKET_WRITE_ERROR_NAMES_TYPES")?
                .is_truthy()?,
            write_queues_any_view: versions
                .getattr("SOCKET_WRITE_QUEUES_ANY_VIEW")?
                .is_truthy()?,
            connection_made_in_context: versions
                .getattr("CONNECTION_MADE_IN_CONNECTION_CONTEXT")?
                .is_truthy()?,
        })
    })
}
