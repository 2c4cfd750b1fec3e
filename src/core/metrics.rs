//! Loop metrics gathered on the loop thread: iterations, time blocked in the poller, and how
//! late timers fire. The timing parts cost a clock read or two per blocking poll and are
//! gathered only when asked for; the counts are always kept.

/// Timer lateness in microseconds, counted in buckets of a quarter of a power of two (so a
/// percentile read from them is within 19% of the true value) up to about 2^40 µs.
const SUB_BUCKETS: u32 = 4;
const BUCKETS: usize = 42 * SUB_BUCKETS as usize;

pub struct LagHistogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
    sum_us: u128,
}

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
            sum_us: 0,
        }
    }
}

/// The bucket of `us`: values below 4 have a bucket each, then four per power of two.
fn bucket_of(us: u64) -> usize {
    if us < u64::from(SUB_BUCKETS) {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // 2 or more
    let sub = (us >> (exp - 2)) & u64::from(SUB_BUCKETS - 1);
    (((exp - 1) * SUB_BUCKETS) as usize + sub as usize).min(BUCKETS - 1)
}

/// The largest value in bucket `index`.
fn bucket_top(index: usize) -> u64 {
    if index < SUB_BUCKETS as usize {
        return index as u64;
    }
    let exp = index as u32 / SUB_BUCKETS + 1;
    let sub = u64::from(index as u32 % SUB_BUCKETS);
    let width = 1u64 << (exp - 2);
    (1u64 << exp) + sub * width + width - 1
}

impl LagHistogram {
    pub fn record(&mut self, seconds: f64) {
        // A NaN deadline or a clock step gives no meaningful lateness.
        if seconds.is_nan() || seconds < 0.0 {
            return;
        }
        let us = (seconds * 1e6) as u64;
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max_seconds(&self) -> f64 {
        self.max_us as f64 * 1e-6
    }

    pub fn mean_seconds(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64 * 1e-6
        }
    }

    /// The `q`-quantile (0 < q <= 1) in seconds: the top of the bucket it falls in, never
    /// more than the largest value seen.
    pub fn quantile_seconds(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_top(index).min(self.max_us) as f64 * 1e-6;
            }
        }
        self.max_seconds()
    }
}

#[derive(Default)]
pub struct Metrics {
    pub iterations: u64,
    /// Whether the timing parts are gathered, and from when (the loop's clock).
    pub timing_since: Option<f64>,
    pub poll_seconds: f64,
    pub lag: LagHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_contain_their_values() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            9,
            15,
            16,
            100,
            1000,
            65_535,
            1 << 30,
        ] {
            let index = bucket_of(us);
            assert!(index >= last, "{us}");
            assert!(bucket_top(index) >= us, "{us} above its bucket's top");
            if index > 0 {
                assert!(
                    bucket_top(index - 1) < us,
                    "{us} belongs to an earlier bucket"
                );
            }
            last = index;
        }
    }

    #[test]
    fn quantiles_within_a_bucket_of_the_truth() {
        let mut h = LagHistogram::default();
        for us in 1..=1000u64 {
            h.record(us as f64 * 1e-6);
        }
        let p50 = h.quantile_seconds(0.5) * 1e6;
        let p99 = h.quantile_seconds(0.99) * 1e6;
        assert!((500.0..=500.0 * 1.19 + 1.0).contains(&p50), "{p50}");
        assert!((990.0..=1000.0).contains(&p99), "{p99}");
        assert_eq!(h.max_seconds(), 1000e-6);
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn nonsense_is_not_counted() {
        let mut h = LagHistogram::default();
        h.record(f64::NAN);
        h.record(-1.0);
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile_seconds(0.5), 0.0);
        h.record(1e9);
        assert_eq!(h.count(), 1);
    }
}
