//! Awaiting a pending socket operation (`await op` in `ferroloop/sock.py`): the iterator of
//! the operation's future, wrapped so that the operation stops watching its fd the moment its
//! waiter gives up — cancelled, closed, or failed — as `try: await op.future` / `except
//! BaseException: op.abandon()` would, without a second coroutine per operation.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{ffi, intern, PyTraverseError, PyVisit};

use crate::sock::SockOp;

#[pyclass(module = "ferroloop._ferroloop", name = "SockOperationWait")]
pub struct SockWait {
    op: Py<SockOp>,
    /// `op.future.__await__()`.
    inner: Py<PyAny>,
}

impl SockWait {
    pub(crate) fn new(op: &Bound<'_, SockOp>, future: &Bound<'_, PyAny>) -> PyResult<SockWait> {
        Ok(SockWait {
            op: op.clone().unbind(),
            inner: future.call_method0(intern!(op.py(), "__await__"))?.unbind(),
        })
    }

    /// What the future's iterator did, passed on; the operation is abandoned when it raised
    /// anything but its result.
    fn pass_on(&self, py: Python<'_>, sent: *mut ffi::PyObject) -> PyResult<Py<PyAny>> {
        let mut result: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: inner and sent are live objects; PyIter_Send stores a new reference (or
        // NULL with an exception set) in result.
        let status = unsafe { ffi::PyIter_Send(self.inner.as_ptr(), sent, &mut result) };
        match status {
            ffi::PySendResult::PYGEN_NEXT => {
                // SAFETY: a new reference to what the future yields (itself).
                Ok(unsafe { Bound::from_owned_ptr(py, result) }.unbind())
            }
            ffi::PySendResult::PYGEN_RETURN => {
                // SAFETY: a new reference to the result. The coroutine takes it from the
                // StopIteration, a 1-tuple so a tuple result is not taken for its arguments.
                let value = unsafe { Bound::from_owned_ptr(py, result) };
                Err(PyStopIteration::new_err((value.unbind(),)))
            }
            ffi::PySendResult::PYGEN_ERROR => self.abandoned(py, PyErr::fetch(py)),
        }
    }

    fn abandoned<T>(&self, py: Python<'_>, err: PyErr) -> PyResult<T> {
        SockOp::abandon(self.op.bind(py))?;
        Err(err)
    }
}

#[pymethods]
impl SockWait {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.pass_on(py, py.None().as_ptr())
    }

    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.pass_on(py, value.as_ptr())
    }

    /// An exception thrown in at the `await` (a task cancelled outside its future): the
    /// operation is abandoned, then the future's iterator raises it.
    #[pyo3(signature = (*args))]
    fn throw(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        SockOp::abandon(self.op.bind(py))?;
        Ok(self
            .inner
            .bind(py)
            .call_method1(intern!(py, "throw"), args)?
            .unbind())
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        SockOp::abandon(self.op.bind(py))?;
        self.inner.bind(py).call_method0(intern!(py, "close"))?;
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.op)?;
        visit.call(&self.inner)
    }
}
