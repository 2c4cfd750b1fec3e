//! `_ferroloop._spawn`: starts the child of a subprocess transport natively, as libuv does,
//! where `subprocess.Popen` would read its fork/exec error pipe from Python on the loop's
//! thread. The Python face has already read Popen's arguments as Popen does (the PATH search,
//! the stdio plan, user and group names); this turns them into C strings, starts the child
//! (`sys::spawn`), and raises what Popen raises when the child cannot exec.

use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;
use std::ptr;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{os_error, strerror};
use crate::sys::{self, ChildPlan, Stage};

fn c_string(bytes: &Bound<'_, PyBytes>) -> PyResult<CString> {
    CString::new(bytes.as_bytes()).map_err(|_| PyValueError::new_err("embedded null byte"))
}

fn c_strings(items: &[Bound<'_, PyBytes>]) -> PyResult<Vec<CString>> {
    items.iter().map(c_string).collect()
}

/// A NULL-terminated array of pointers into `strings`, as exec wants them.
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain([ptr::null()])
        .collect()
}

/// Starts a child and returns its pid. `executables` are the paths to try (Popen's PATH
/// search done); `env` None keeps this process's environment; `stdio` the fds to put on the
/// child's 0, 1, 2 (-1: inherit); `pass_fds` sorted. When the child cannot exec, raises
/// Popen's OSError: naming `cwd_name` for a failed chdir, `executable_name` for a failed
/// exec, no file for the steps between.
#[pyfunction]
#[pyo3(name = "_spawn")]
#[pyo3(signature = (executables, argv, env, cwd, stdio, pass_fds, close_fds, restore_signals,
                    start_new_session, process_group, extra_groups, gid, uid, umask,
                    executable_name, cwd_name))]
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    executables: Vec<Bound<'_, PyBytes>>,
    argv: Vec<Bound<'_, PyBytes>>,
    env: Option<Vec<Bound<'_, PyBytes>>>,
    cwd: Option<Bound<'_, PyBytes>>,
    stdio: [RawFd; 3],
    pass_fds: Vec<RawFd>,
    close_fds: bool,
    restore_signals: bool,
    start_new_session: bool,
    process_group: Option<libc::pid_t>,
    extra_groups: Option<Vec<libc::gid_t>>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
    umask: Option<libc::mode_t>,
    executable_name: Bound<'_, PyAny>,
    cwd_name: Bound<'_, PyAny>,
) -> PyResult<libc::pid_t> {
    let executables = c_strings(&executables)?;
    let executables: Vec<&CStr> = executables.iter().map(|s| s.as_c_str()).collect();
    let argv = c_strings(&argv)?;
    let env = env.as_deref().map(c_strings).transpose()?;
    let cwd = cwd.as_ref().map(c_string).transpose()?;
    let argv = pointers(&argv);
    let envp = env.as_deref().map(pointers);
    let plan = ChildPlan {
        executables: &executables,
        argv: &argv,
        envp: envp.as_deref(),
        cwd: cwd.as_deref(),
        stdio,
        close_fds,
        keep_fds: &pass_fds,
        restore_signals,
        new_session: start_new_session,
        process_group,
        groups: extra_groups.as_deref(),
        gid,
        uid,
        umask,
    };
    // The GIL stays held: the child may read this process's environment, which Python
    // threads would otherwise be free to change under it (os.environ writes through).
    match sys::spawn(&plan).map_err(os_error)? {
        Ok(pid) => Ok(pid),
        Err(failed) => {
            let message = strerror(failed.errno);
            Err(match failed.stage {
                Stage::Chdir => PyOSError::new_err((failed.errno, message, cwd_name.unbind())),
                Stage::Exec => {
                    PyOSError::new_err((failed.errno, message, executable_name.unbind()))
                }
                _ => PyOSError::new_err((failed.errno, message)),
            })
        }
    }
}
