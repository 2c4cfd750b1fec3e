//! Write-buffer water marks and the paused flag, as asyncio's `_FlowControlMixin` keeps them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub const DEFAULT_HIGH_WATER: i64 = 64 * 1024;

/// `(high, low)` from the optional arguments of `set_write_buffer_limits`: high defaults to
/// 64 KiB (or 4 × low), low to high / 4; `high >= low >= 0` or ValueError.
///
/// Integers only, of any size: the transports' Python faces apply asyncio's rules to floats
/// and other numbers and pass the byte counts here. A mark beyond the address space is as
/// good as infinite, so it saturates.
pub fn water_marks(
    high: Option<&Bound<'_, PyAny>>,
    low: Option<&Bound<'_, PyAny>>,
) -> PyResult<(usize, usize)> {
    let given = |v: Option<&Bound<'_, PyAny>>| -> PyResult<Option<i128>> {
        match v {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let (high, low) = (given(high)?, given(low)?);
    let high = match (high, low) {
        (Some(h), _) => h,
        (None, Some(l)) => l.saturating_mul(4),
        (None, None) => i128::from(DEFAULT_HIGH_WATER),
    };
    let low = low.unwrap_or(high.div_euclid(4));
    if !(high >= low && low >= 0) {
        return Err(PyValueError::new_err(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    let saturate = |v: i128| usize::try_from(v).unwrap_or(usize::MAX);
    Ok((saturate(high), saturate(low)))
}

/// The water marks of a write buffer and whether the protocol was told to pause writing:
/// asyncio's `_FlowControlMixin` state.
pub struct FlowControl {
    high_water: usize,
    low_water: usize,
    /// pause_writing() was called on the protocol and resume_writing() not yet.
    paused: bool,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl {
            high_water: DEFAULT_HIGH_WATER as usize,
            low_water: DEFAULT_HIGH_WATER as usize / 4,
            paused: false,
        }
    }
}

impl FlowControl {
    pub fn set_limits(&mut self, high: usize, low: usize) {
        self.high_water = high;
        self.low_water = low;
    }

    /// `(low, high)`, as `get_write_buffer_limits()` returns them.
    pub fn limits(&self) -> (usize, usize) {
        (self.low_water, self.high_water)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// True (and now paused) when `size` bytes waiting should pause the protocol.
    #[inline]
    pub fn should_pause(&mut self, size: usize) -> bool {
        if size <= self.high_water || self.paused {
            return false;
        }
        self.paused = true;
        true
    }

    /// True (and no longer paused) when `size` bytes waiting should resume the protocol.
    #[inline]
    pub fn should_resume(&mut self, size: usize) -> bool {
        if !self.paused || size > self.low_water {
            return false;
        }
        self.paused = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_above_high_and_resumes_at_low() {
        let mut flow = FlowControl::default();
        flow.set_limits(100, 20);
        assert!(!flow.should_pause(100));
        assert!(flow.should_pause(101));
        assert!(flow.is_paused());
        assert!(!flow.should_pause(500), "told once");
        assert!(!flow.should_resume(21));
        assert!(flow.should_resume(20));
        assert!(!flow.should_resume(0), "told once");
    }

    #[test]
    fn resume_needs_a_pause_first() {
        let mut flow = FlowControl::default();
        assert!(!flow.should_resume(0));
        assert_eq!(flow.limits(), (16 * 1024, 64 * 1024));
    }
}
