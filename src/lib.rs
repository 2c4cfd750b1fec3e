//! ferroloop's native core: an asyncio event loop for CPython.
//!
//! Layers, each depending only on those below it: `core` (the loop, what Python calls) over
//! `reactor` (OS readiness, no Python). The Python package `ferroloop` subclasses
//! `core::event_loop::LoopCore` and adds the rarely-hot API.

pub mod core;
pub mod dns;
pub mod errors;
pub mod reactor;
pub mod sendfile;
pub mod sock;
pub mod sock_wait;
pub mod spawn;
pub mod sys;
pub mod transports;
pub mod unix_socket_files;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
fn _ferroloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<core::event_loop::LoopCore>()?;
    core::scheduling::install(&m.py().get_type::<core::event_loop::LoopCore>())?;
    m.add_class::<core::handle::Handle>()?;
    m.add_class::<core::handle::TimerHandle>()?;
    m.add_class::<sock::SockOp>()?;
    m.add_class::<sock_wait::SockWait>()?;
    m.add_class::<transports::stream::StreamTransport>()?;
    m.add_class::<transports::pipe::ReadPipeTransport>()?;
    m.add_class::<transports::pipe::WritePipeTransport>()?;
    m.add_class::<transports::datagram::DatagramTransport>()?;
    m.add_function(wrap_pyfunction!(check_callback, m)?)?;
    m.add_function(wrap_pyfunction!(transports::base::run_in_context, m)?)?;
    m.add_function(wrap_pyfunction!(dns::numeric::numeric_addrinfo, m)?)?;
    m.add_function(wrap_pyfunction!(
        unix_socket_files::remove_stale_unix_socket,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(unix_socket_files::unix_socket_inode, m)?)?;
    m.add_function(wrap_pyfunction!(
        unix_socket_files::remove_unix_socket_file,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(spawn::spawn, m)?)?;
    Ok(())
}

/// `_check_callback(callback, method)`: the TypeError asyncio's debug mode raises for a
/// coroutine or a non-callable, for the Python face's own checks.
#[pyfunction]
#[pyo3(name = "_check_callback")]
fn check_callback(callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    core::scheduling::check_callback(callback.py(), callback, method, true)
}
