//! Write-buffer water marks, as asyncio's `_FlowControlMixin` computes them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub const DEFAULT_HIGH_WATER: i64 = 64 * 1024;

/// `(high, low)` from the optional arguments of `set_write_buffer_limits`: high defaults to
/// 64 KiB (or 4 × low), low to high / 4; `high >= low >= 0` or ValueError.
pub fn water_marks(
    py: Python<'_>,
    high: Option<&Bound<'_, PyAny>>,
    low: Option<&Bound<'_, PyAny>>,
) -> PyResult<(usize, usize)> {
    let _ = py;
    let given = |v: Option<&Bound<'_, PyAny>>| -> PyResult<Option<i64>> {
        match v {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let (high, low) = (given(high)?, given(low)?);
    let high = match (high, low) {
        (Some(h), _) => h,
        (None, Some(l)) => 4 * l,
        (None, None) => DEFAULT_HIGH_WATER,
    };
    let low = low.unwrap_or(high.div_euclid(4));
    if !(high >= low && low >= 0) {
        return Err(PyValueError::new_err(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high as usize, low as usize))
}
