//! `docs/perf.svg`: one horizontal bar per (row, peer), our rate over the peer's on a
//! log axis centred on 1, so "faster" and "slower" read the same size. Without peers,
//! the bars are each row's median time (units differ between rows, so a rate axis
//! would mean nothing).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::report::{fmt_time, sig3, RowResult};

struct Bar {
    label: String,
    value: f64,
    text: String,
}

fn bars(results: &[RowResult], with_peers: bool) -> Vec<Bar> {
    let mut out = Vec::new();
    for r in results {
        let row = format!("{} {} {}", r.row.workload, r.row.size, r.row.backend.name());
        if !with_peers {
            if let Some(s) = r.ours.stats {
                out.push(Bar {
                    label: row,
                    value: s.median,
                    text: fmt_time(s.median),
                });
            }
            continue;
        }
        for p in &r.peers {
            if let Some(x) = r.ratio(p) {
                out.push(Bar {
                    label: format!("{row} vs {}", p.peer),
                    value: x,
                    text: format!("{}×", sig3(x)),
                });
            }
        }
    }
    out
}

pub fn draw(path: &Path, results: &[RowResult], with_peers: bool, title: &str) -> Result<()> {
    let bars = bars(results, with_peers);
    if bars.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    // The segmented axis counts upwards: reverse so the table's first row is on top.
    let bars: Vec<Bar> = bars.into_iter().rev().collect();
    let n = bars.len();
    let height = 90 + 24 * n as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    // Ratios: a symmetric log range around 1; times: from the smallest to the largest.
    let (lo, hi) = bars.iter().fold((f64::MAX, f64::MIN), |(lo, hi), b| {
        (lo.min(b.value), hi.max(b.value))
    });
    let (lo, hi, base) = if with_peers {
        let span = hi.max(1.0 / lo).max(2.0) * 1.6;
        (1.0 / span, span, 1.0)
    } else {
        (lo / 2.0, hi * 4.0, lo / 2.0)
    };
    let x_desc = if with_peers {
        "our rate / peer's rate (log scale; right of 1: we are faster)"
    } else {
        "median time per repetition, seconds (log scale)"
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.label.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .disable_y_mesh()
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let color = match (with_peers, b.value >= 1.0) {
                (false, _) => BLUE.mix(0.6),
                (true, true) => GREEN.mix(0.7),
                (true, false) => RED.mix(0.6),
            };
            Rectangle::new(
                [
                    (base, SegmentValue::Exact(i)),
                    (b.value, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            )
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                b.text.clone(),
                (b.value.max(base), SegmentValue::CenterOf(i)),
                ("sans-serif", 12),
            )
        }))
        .map_err(|e| err(&e))?;
    if with_peers {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))],
                BLACK,
            )))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
