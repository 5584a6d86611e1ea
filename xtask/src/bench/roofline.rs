//! The machine's limits, measured in the same run as the rows they judge: the best
//! GEMM rate per dtype among everything that ran (ours and every peer, at every matmul
//! size) and the memory read bandwidth of the bench's own probe (`memory_read`). Every
//! FLOP row is then a fraction of its dtype's best GEMM rate, every byte row (and every
//! decode row, through the weight bytes one token reads) a fraction of the bandwidth.

use serde_json::{json, Value};

use super::report::RowResult;

/// One measured limit and who reached it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// In the row's display unit (GFLOP/s, GB/s).
    pub rate: f64,
    pub unit: &'static str,
    pub by: String,
}

/// The limits of one run.
#[derive(Debug, Default)]
pub struct Roofline {
    /// `(dtype, best GEMM rate)`.
    pub gemm: Vec<(String, Limit)>,
    pub bandwidth: Option<Limit>,
}

/// What a row's rate is a fraction of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Gemm,
    Bandwidth,
}

impl Roofline {
    pub fn of(results: &[RowResult]) -> Roofline {
        let mut out = Roofline::default();
        for r in results.iter().filter(|r| r.row.backend.device() == "cpu") {
            if r.row.workload == "memory_read" {
                if let Some(rate) = r.rate() {
                    out.bandwidth = better(
                        out.bandwidth.take(),
                        Limit {
                            rate,
                            unit: r.row.rate_unit,
                            by: "memory_read probe (all threads)".into(),
                        },
                    );
                }
            }
            if r.row.workload != "matmul" || r.row.rate_unit != "GFLOP/s" {
                continue;
            }
            let mut candidates = Vec::new();
            if let Some(rate) = r.rate() {
                let engine = r.ours.matmul_path.as_deref().unwrap_or("ours");
                candidates.push((rate, format!("ours ({engine}) at {}", r.row.size)));
            }
            for p in &r.peers {
                if let Some(rate) = r.peer_rate(p) {
                    candidates.push((rate, format!("{} at {}", p.peer, r.row.size)));
                }
            }
            for (rate, by) in candidates {
                let slot = out.gemm.iter().position(|(d, _)| d == r.row.dtype);
                let limit = Limit {
                    rate,
                    unit: r.row.rate_unit,
                    by,
                };
                match slot {
                    Some(i) => {
                        let old = out.gemm[i].1.clone();
                        out.gemm[i].1 = better(Some(old), limit).expect("some");
                    }
                    None => out.gemm.push((r.row.dtype.to_string(), limit)),
                }
            }
        }
        out
    }

    fn gemm_of(&self, dtype: &str) -> Option<&Limit> {
        self.gemm.iter().find(|(d, _)| d == dtype).map(|(_, l)| l)
    }

    /// Our rate as a fraction of the limit that bounds the row, if the run measured it.
    pub fn fraction(&self, r: &RowResult) -> Option<(f64, Bound)> {
        let rate = r.rate()?;
        if r.row.backend.device() != "cpu" || r.row.workload == "memory_read" {
            return None;
        }
        match r.row.rate_unit {
            "GFLOP/s" => Some((rate / self.gemm_of(r.row.dtype)?.rate, Bound::Gemm)),
            "GB/s" => Some((rate / self.bandwidth.as_ref()?.rate, Bound::Bandwidth)),
            "tokens/s" => {
                let bytes_per_s = rate * r.row.rate_scale * r.ours.weight_bytes_per_token?;
                Some((
                    bytes_per_s / 1e9 / self.bandwidth.as_ref()?.rate,
                    Bound::Bandwidth,
                ))
            }
            _ => None,
        }
    }

    /// The table cell: `"0.93 GEMM"`, `"0.41 BW"`.
    pub fn cell(&self, r: &RowResult) -> String {
        match self.fraction(r) {
            Some((f, Bound::Gemm)) => format!("{f:.2} GEMM"),
            Some((f, Bound::Bandwidth)) => format!("{f:.2} BW"),
            None => String::new(),
        }
    }

    /// One line for the section's header.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .gemm
            .iter()
            .map(|(d, l)| format!("best {d} GEMM {} {} ({})", sig3(l.rate), l.unit, l.by))
            .collect();
        match &self.bandwidth {
            Some(l) => parts.push(format!(
                "memory read {} {} ({})",
                sig3(l.rate),
                l.unit,
                l.by
            )),
            None => parts.push("memory read bandwidth not measured in this run".into()),
        }
        parts.join("; ")
    }

    pub fn to_json(&self) -> Value {
        let limit = |l: &Limit| json!({ "rate": l.rate, "unit": l.unit, "by": l.by });
        json!({
            "gemm": self.gemm.iter().map(|(d, l)| (d.clone(), limit(l))).collect::<serde_json::Map<_, _>>(),
            "memory_read": self.bandwidth.as_ref().map(limit),
        })
    }
}

fn better(old: Option<Limit>, new: Limit) -> Option<Limit> {
    match old {
        Some(o) if o.rate >= new.rate => Some(o),
        _ => Some(new),
    }
}

fn sig3(x: f64) -> String {
    super::report::sig3(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::matrix;
    use crate::bench::peers::PeerResult;
    use crate::bench::run::Ours;
    use crate::bench::stats::Stats;

    fn result(label: &str, median_s: f64, work: f64, peer: Option<(&str, f64)>) -> RowResult {
        let row = matrix::rows(true, false, Some(label))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no row {label}"));
        let mut ours = Ours::skipped(String::new());
        ours.skipped = None;
        ours.stats = Stats::of(&[median_s]);
        ours.work = work;
        ours.matmul_path = Some("rg-gemm-avx512".into());
        if row.workload.starts_with("gpt2_decode") {
            ours.weight_bytes_per_token = Some(500e6);
        }
        let peers = peer
            .map(|(name, s)| PeerResult {
                peer: name.into(),
                stats: Stats::of(&[s]),
                times_s: vec![s],
                work,
                peak_rss_bytes: None,
                skipped: None,
            })
            .into_iter()
            .collect();
        RowResult { row, ours, peers }
    }

    #[test]
    fn limits_are_the_best_rate_and_rows_are_fractions_of_them() {
        let results = vec![
            result("memory_read", 0.1, 2e9, None), // 20 GB/s
            result("matmul 1024 cpu f32", 0.01, 2e9, Some(("torch", 0.005))), // 200 vs 400
            result("matmul 2048 cpu f32", 0.05, 16e9, Some(("torch", 0.1))), // 320 vs 160
            result("matmul 1024 cpu bf16", 0.002, 2e9, Some(("torch", 0.001))), // 1000 vs 2000
            result("softmax", 0.001, 10e6, None),  // 10 GB/s
            result("gpt2_decode 64+16", 0.05, 1.0, None), // 20 tok/s x 0.5 GB
        ];
        let roof = Roofline::of(&results);
        let f32_limit = roof.gemm_of("f32").unwrap();
        assert!((f32_limit.rate - 400.0).abs() < 1e-9, "{f32_limit:?}");
        assert_eq!(f32_limit.by, "torch at 1024");
        assert!((roof.gemm_of("bf16").unwrap().rate - 2000.0).abs() < 1e-9);
        assert!((roof.bandwidth.as_ref().unwrap().rate - 20.0).abs() < 1e-9);
        let frac = |i: usize| roof.fraction(&results[i]).unwrap();
        assert_eq!(frac(1), (0.5, Bound::Gemm));
        assert_eq!(frac(2), (0.8, Bound::Gemm));
        assert_eq!(frac(3), (0.5, Bound::Gemm));
        assert_eq!(frac(4), (0.5, Bound::Bandwidth));
        assert_eq!(frac(5), (0.5, Bound::Bandwidth));
        assert!(roof.fraction(&results[0]).is_none());
        assert_eq!(roof.cell(&results[2]), "0.80 GEMM");
        assert!(roof
            .summary()
            .contains("best bf16 GEMM 2000 GFLOP/s (torch at 1024)"));
    }

    #[test]
    fn without_a_probe_byte_rows_have_no_fraction() {
        let results = vec![result("softmax", 0.001, 10e6, None)];
        let roof = Roofline::of(&results);
        assert!(roof.fraction(&results[0]).is_none());
        assert!(roof.summary().contains("not measured"));
    }
}
