//! `LoopCore`'s methods for the watchdog and the metrics (the Python face is
//! `ferroloop.watchdog`).

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::event_loop::{monotonic, LoopCore};
use super::metrics::Metrics;
use super::watchdog::Watchdog;
use crate::errors::os_error;

impl LoopCore {
    /// Stops the watchdog's threads, if any, waiting for them with the GIL released.
    pub fn stop_watchdog(&self, py: Python<'_>) {
        let watchdog = self.watchdog.borrow_mut(py).take();
        if let Some(watchdog) = watchdog {
            py.detach(|| watchdog.stop());
        }
    }
}

#[pymethods]
impl LoopCore {
    /// Starts (or restarts) the watchdog: a callback running longer than `threshold` seconds
    /// is reported to `reporter._blocked(...)` while it runs, and to `reporter._ended(...)`
    /// when it returns.
    fn _watchdog_start(&self, py: Python<'_>, threshold: f64, reporter: Py<PyAny>) -> PyResult<()> {
        self.check_closed(py)?;
        let threshold = Duration::try_from_secs_f64(threshold)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "the watchdog threshold must be a positive number of seconds, not {threshold}"
                ))
            })?;
        self.stop_watchdog(py);
        let watchdog =
            Watchdog::start(self.progress.clone(), threshold, reporter).map_err(os_error)?;
        let previous = self.watchdog.borrow_mut(py).replace(watchdog);
        drop(previous);
        Ok(())
    }

    fn _watchdog_stop(&self, py: Python<'_>) {
        self.stop_watchdog(py);
    }

    /// The watchdog's threshold in seconds, None when it is off (or was on in the parent of
    /// this forked process: its threads are not here).
    #[getter]
    fn _watchdog_threshold(&self, py: Python<'_>) -> Option<f64> {
        self.watchdog
            .borrow(py)
            .as_ref()
            .filter(|w| w.is_alive())
            .map(|w| w.threshold().as_secs_f64())
    }

    /// Turns the timing metrics on (from zero) or off.
    fn _set_metrics_timing(&self, py: Python<'_>, enabled: bool) {
        *self.metrics.borrow_mut(py) = Metrics {
            timing_since: enabled.then(monotonic),
            ..Metrics::default()
        };
        self.timing.set(py, enabled);
    }

    /// The native half of `loop.metrics()`.
    fn _metrics_core<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("iterations", self.iterations.get(py))?;
        out.set_item("callbacks", self.progress.callbacks_run())?;
        {
            let st = self.state.borrow(py);
            out.set_item("ready", st.ready.len())?;
            out.set_item(
                "timers",
                st.timers.len() - st.cancelled_timers.min(st.timers.len()),
            )?;
            out.set_item("transports", st.transports.len())?;
            out.set_item("fds_watched", st.io.registered_count())?;
        }
        let m = self.metrics.borrow(py);
        if let Some(since) = m.timing_since {
            let wall = (monotonic() - since).max(0.0);
            out.set_item("wall_seconds", wall)?;
            out.set_item("poll_seconds", m.poll_seconds)?;
            out.set_item("busy_seconds", (wall - m.poll_seconds).max(0.0))?;
            out.set_item("lag_count", m.lag.count())?;
            out.set_item("lag_p50", m.lag.quantile_seconds(0.5))?;
            out.set_item("lag_p99", m.lag.quantile_seconds(0.99))?;
            out.set_item("lag_max", m.lag.max_seconds())?;
            out.set_item("lag_mean", m.lag.mean_seconds())?;
        }
        Ok(out)
    }
}
