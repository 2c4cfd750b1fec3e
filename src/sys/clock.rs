//! The monotonic clock, and the calling thread's id and name.

fn monotonic_call(call: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> i32) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a live timespec; CLOCK_MONOTONIC cannot fail on Linux.
    unsafe { call(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// `CLOCK_MONOTONIC` in seconds: the clock of `time.monotonic()`, so deadlines computed from
/// either agree.
pub fn monotonic() -> f64 {
    monotonic_call(libc::clock_gettime)
}

/// The resolution of [`monotonic`], in seconds.
pub fn monotonic_resolution() -> f64 {
    monotonic_call(libc::clock_getres)
}

/// `pthread_self()`: what `threading.get_ident()` returns for the same thread.
pub fn thread_id() -> u64 {
    // SAFETY: pthread_self cannot fail.
    unsafe { libc::pthread_self() as u64 }
}

/// Names the calling thread as `ps`, `top` and /proc show it (at most 15 bytes).
pub fn name_this_thread(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string; the kernel truncates it to 15 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}
