//! Latencies of millions of deliveries, kept by each worker process and added up by the
//! coordinator: a log-linear histogram (64 buckets per power of two, so a quantile is within
//! about 1.6% of the true value) sent as its non-empty buckets, and the exact maximum.

use serde::{Deserialize, Serialize};

/// Buckets per power of two above 64 µs (values below 128 µs are exact).
const SUB_BUCKETS: u64 = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `(bucket, count)` for the non-empty buckets, ascending by bucket once
    /// [`Histogram::compact`] ran; see [`bucket_of`].
    pub buckets: Vec<(u32, u64)>,
    pub count: u64,
    /// The largest value recorded, exact (µs).
    pub max_us: u64,
    /// Counts by bucket while recording (not sent: `buckets` is).
    #[serde(skip)]
    dense: Vec<u64>,
}

/// The bucket of `value` (µs): exact below 128, then 64 per power of two.
pub fn bucket_of(value: u64) -> u32 {
    let bits = 64 - value.leading_zeros() as u64;
    if bits <= 7 {
        return value as u32;
    }
    let shift = bits - 7;
    (SUB_BUCKETS * shift + (value >> shift)) as u32
}

/// The middle of a bucket's range, µs.
pub fn value_of(bucket: u32) -> u64 {
    let bucket = u64::from(bucket);
    if bucket < 2 * SUB_BUCKETS {
        return bucket;
    }
    let shift = bucket / SUB_BUCKETS - 1;
    let low = (bucket - SUB_BUCKETS * shift) << shift;
    low + (1u64 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, value_us: u64) {
        let bucket = bucket_of(value_us) as usize;
        if bucket >= self.dense.len() {
            self.dense.resize(bucket + 1, 0);
        }
        self.dense[bucket] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(value_us);
    }

    /// Moves what was recorded into `buckets`, ready to send or read.
    pub fn compact(&mut self) {
        let dense = std::mem::take(&mut self.dense);
        for (bucket, count) in dense.into_iter().enumerate() {
            if count > 0 {
                self.add_bucket(bucket as u32, count);
            }
        }
    }

    fn add_bucket(&mut self, bucket: u32, count: u64) {
        match self.buckets.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(at) => self.buckets[at].1 += count,
            Err(at) => self.buckets.insert(at, (bucket, count)),
        }
    }

    /// Adds another histogram's compacted buckets to this one's.
    pub fn add(&mut self, other: &Histogram) {
        for (bucket, count) in &other.buckets {
            self.add_bucket(*bucket, *count);
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The value at `fraction` (0.5, 0.99) in ms, ranked as [`crate::scenario::Quantiles`]
    /// ranks (the `ceil(n·fraction)`-th smallest); the exact maximum at 1.0. `None` if empty.
    pub fn quantile_ms(&self, fraction: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        if fraction >= 1.0 {
            return Some(self.max_us as f64 / 1000.0);
        }
        let rank = ((self.count as f64 * fraction).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                // Never above the exact maximum (the top bucket's middle may be).
                return Some(value_of(*bucket).min(self.max_us) as f64 / 1000.0);
            }
        }
        Some(self.max_us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_whose_middle_is_within_two_percent() {
        let mut value = 1u64;
        while value < 1 << 40 {
            let middle = value_of(bucket_of(value));
            let error = middle.abs_diff(value) as f64 / value as f64;
            assert!(error <= 0.016, "{value} -> {middle}");
            assert!(bucket_of(value) <= bucket_of(value + 1));
            value = value * 9 / 8 + 1;
        }
        assert_eq!(value_of(bucket_of(100)), 100);
    }

    #[test]
    fn quantiles_of_merged_histograms_match_the_exact_ones() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for ms in 1..=1000u64 {
            if ms % 2 == 0 { &mut a } else { &mut b }.record(ms * 1000);
        }
        a.compact();
        b.compact();
        let mut total = Histogram::default();
        total.add(&a);
        total.add(&b);
        assert_eq!(total.count, 1000);
        let near = |got: Option<f64>, want: f64| {
            let got = got.expect("not empty");
            assert!((got - want).abs() / want < 0.02, "{got} vs {want}");
        };
        near(total.quantile_ms(0.5), 500.0);
        near(total.quantile_ms(0.99), 990.0);
        assert_eq!(total.quantile_ms(1.0), Some(1000.0));
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
        // What a worker sends is what the coordinator reads.
        let json = serde_json::to_string(&a).expect("serialize");
        let back: Histogram = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.quantile_ms(0.5), a.quantile_ms(0.5));
    }
}
