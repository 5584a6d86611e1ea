//! `<out>/metrics.jsonl` (one JSON object per step and per evaluation) and the loss
//! curve `<out>/loss.svg`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use crate::{GptError, Result};

pub struct MetricsLog {
    path: PathBuf,
    file: BufWriter<File>,
    train: Vec<(f64, f64)>,
    eval: Vec<(f64, f64)>,
}

impl MetricsLog {
    /// Appends to `<dir>/metrics.jsonl` (a resumed run continues the same file).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| GptError::io(dir, "create directory", e))?;
        let path = dir.join("metrics.jsonl");
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| GptError::io(&path, "open", e))?;
        Ok(MetricsLog {
            path,
            file: BufWriter::new(file),
            train: Vec::new(),
            eval: Vec::new(),
        })
    }

    pub fn record_train(&mut self, step: usize, loss: f64, line: &Value) -> Result<()> {
        self.train.push((step as f64, loss));
        self.write_line(line)
    }

    pub fn record_eval(&mut self, step: usize, loss: f64, line: &Value) -> Result<()> {
        self.eval.push((step as f64, loss));
        self.write_line(line)
    }

    fn write_line(&mut self, line: &Value) -> Result<()> {
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(|e| GptError::io(&self.path, "write", e))
    }

    /// Draws training and held-out loss against the step into `path`.
    pub fn plot(&self, path: &Path) -> Result<()> {
        if self.train.is_empty() {
            return Ok(());
        }
        let plot_err = |e: String| GptError::bad_file(path, format!("plotting failed: {e}"));
        let all = self.train.iter().chain(&self.eval);
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, l)| {
            (lo.min(l), hi.max(l))
        });
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        };
        let last_step = self.train.last().map_or(1.0, |p| p.0).max(1.0);
        let tmp = path.with_extension("svg.tmp");
        {
            let root = SVGBackend::new(&tmp, (800, 480)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plot_err(e.to_string()))?;
            let mut chart = ChartBuilder::on(&root)
                .caption("loss", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0f64..last_step, lo..hi)
                .map_err(|e| plot_err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc("cross-entropy")
                .draw()
                .map_err(|e| plot_err(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(self.train.iter().copied(), &BLUE))
                .map_err(|e| plot_err(e.to_string()))?
                .label("train")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
            if !self.eval.is_empty() {
                chart
                    .draw_series(LineSeries::new(
                        self.eval.iter().copied(),
                        RED.stroke_width(2),
                    ))
                    .map_err(|e| plot_err(e.to_string()))?
                    .label("held-out")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()
                .map_err(|e| plot_err(e.to_string()))?;
            root.present().map_err(|e| plot_err(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| GptError::io(path, "rename plot into place", e))
    }
}
