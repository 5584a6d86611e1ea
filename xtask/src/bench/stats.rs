//! Summary statistics over repetition times: the median is the figure (robust to the
//! stragglers a shared machine produces), min/max and the interquartile range say how
//! noisy it was.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub q1: f64,
    pub q3: f64,
    pub n: usize,
}

/// The `p` quantile of sorted `xs` with linear interpolation (numpy's default).
fn quantile(xs: &[f64], p: f64) -> f64 {
    let pos = p * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
}

impl Stats {
    pub fn of(times: &[f64]) -> Option<Stats> {
        let mut xs: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        Some(Stats {
            median: quantile(&xs, 0.5),
            min: xs[0],
            max: xs[xs.len() - 1],
            q1: quantile(&xs, 0.25),
            q3: quantile(&xs, 0.75),
            n: xs.len(),
        })
    }

    pub fn to_json(self) -> Value {
        json!({
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "q1_s": self.q1,
            "q3_s": self.q3,
            "iqr_s": self.q3 - self.q1,
            "reps": self.n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate() {
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.min, s.max, s.median), (1.0, 4.0, 2.5));
        assert_eq!((s.q1, s.q3), (1.75, 3.25));
        assert!(Stats::of(&[]).is_none());
    }
}
