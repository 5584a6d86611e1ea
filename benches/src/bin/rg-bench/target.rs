//! Where and in which precision a row runs: `--device cpu|cuda`, `--dtype
//! f32|tf32|bf16`, `--inner N`. CUDA rows go through the public API only
//! (`Device::cuda(0)`, the backend's `synchronize`), so they measure what users get.

use anyhow::{bail, Result};
use rusty_gradients::core::backend::backend_for;
use rusty_gradients::{DType, Device, Tensor};

pub struct Target {
    device_name: String,
    /// `Err(why)` when the device cannot be used here (no CUDA backend or device).
    device: std::result::Result<Device, String>,
    pub dtype: String,
    pub inner: usize,
}

impl Target {
    pub fn new(device: &str, dtype: &str, inner: usize) -> Result<Target> {
        let dev = match device {
            "cpu" => Ok(Device::Cpu),
            // Device::cuda says why it cannot: no CUDA backend in this build, no
            // driver, no device.
            "cuda" => Device::cuda(0).map_err(|e| format!("no CUDA device: {e}")),
            other => bail!("--device {other:?} is not one of: cpu, cuda"),
        };
        if !matches!(dtype, "f32" | "tf32" | "bf16") {
            bail!("--dtype {dtype:?} is not one of: f32, tf32, bf16");
        }
        if dtype == "tf32" && device != "cuda" {
            bail!("--dtype tf32 is a CUDA matmul mode");
        }
        Ok(Target {
            device_name: device.to_string(),
            device: dev,
            dtype: dtype.to_string(),
            inner: inner.max(1),
        })
    }

    pub fn is_cuda(&self) -> bool {
        self.device_name == "cuda"
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.device_name, self.dtype)
    }

    /// Why this row cannot run here, if it cannot.
    pub fn unsupported(&self, workload: &str) -> Option<String> {
        if let Err(why) = &self.device {
            return Some(why.clone());
        }
        let cpu_bf16 = matches!(
            workload,
            "matmul" | "gpt2_train_step" | "nanogpt_char_train_step" | "gpt2_decode_bf16"
        );
        if !self.is_cuda() && self.dtype != "f32" && !(self.dtype == "bf16" && cpu_bf16) {
            return Some(format!(
                "{workload}: no {} row on the CPU (bf16 rows: matmul, training steps, decode)",
                self.dtype
            ));
        }
        if self.dtype == "tf32" && std::env::var("RG_CUDA_TF32").as_deref() != Ok("1") {
            // rg-cuda reads the switch when the device is first used.
            return Some("tf32 rows need RG_CUDA_TF32=1 in the runner's environment".into());
        }
        None
    }

    pub fn device(&self) -> Device {
        self.device.clone().expect("checked by unsupported()")
    }

    /// The element type of the tensors (TF32 is f32 data through TF32 matmuls).
    pub fn tensor_dtype(&self) -> DType {
        match self.dtype.as_str() {
            "bf16" => DType::BF16,
            _ => DType::F32,
        }
    }

    /// `t` (f32, on the CPU) on this target's device and dtype.
    pub fn place(&self, t: Tensor) -> Result<Tensor> {
        Ok(t.to_dtype(self.tensor_dtype())?.to_device(&self.device())?)
    }

    /// Waits for the device's queued work.
    pub fn sync(&self) -> Result<()> {
        backend_for(self.device())?.synchronize()?;
        Ok(())
    }

    /// The matmul engine this row's products run on, as the backend names it.
    pub fn matmul_path(&self) -> &'static str {
        if self.is_cuda() {
            "cublas"
        } else {
            rusty_gradients::cpu::matmul_engine(self.tensor_dtype())
        }
    }
}

#[cfg(test)]
mod tests {
    //! The CUDA rows' code paths (placement, dtype, inner repetitions, synchronisation)
    //! run here on the CPU backend, which has the same public API; only the device
    //! differs on a GPU machine.
    use super::*;
    use crate::{model, ops, Reps};

    fn reps() -> Reps {
        Reps {
            warmup: 1,
            warmup_s: 0.0,
            min_reps: 2,
            max_reps: 2,
            budget_s: 0.0,
        }
    }

    fn cpu(dtype: &str, inner: usize) -> Target {
        Target::new("cpu", dtype, inner).unwrap()
    }

    #[test]
    fn matmul_rows_report_per_product_times() {
        let m = ops::matmul_on("64", &reps(), &cpu("f32", 3)).unwrap();
        assert_eq!(m.times_s.len(), 2);
        assert!(m.times_s.iter().all(|t| *t > 0.0));
        assert_eq!(m.work, 2.0 * 64f64.powi(3));
        // bf16 rows place bf16 operands and run the CPU's bf16 product.
        let t = cpu("bf16", 1)
            .place(ops::pattern(&[4, 4], 0).unwrap())
            .unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        let m = ops::matmul_on("48", &reps(), &cpu("bf16", 1)).unwrap();
        assert_eq!(m.work, 2.0 * 48f64.powi(3));
        assert!(!cpu("bf16", 1).matmul_path().is_empty());
    }

    #[test]
    fn training_and_decode_rows_run_through_the_target() {
        let m = model::train_step_on("nano", "B2xT16", &reps(), &cpu("f32", 1)).unwrap();
        assert_eq!((m.times_s.len(), m.work), (2, 32.0));
        let m = model::decode_on("4+3", &reps(), &cpu("f32", 1)).unwrap();
        assert!(m.times_s.iter().all(|t| *t > 0.0 && t.is_finite()));
    }

    #[test]
    fn unsupported_rows_say_why() {
        assert!(Target::new("cpu", "tf32", 1).is_err());
        assert!(Target::new("tpu", "f32", 1).is_err());
        assert!(cpu("bf16", 1).unsupported("softmax").is_some());
        assert!(cpu("bf16", 1).unsupported("matmul").is_none());
        assert!(cpu("f32", 1).unsupported("matmul").is_none());
        // Without a CUDA backend linked (or a GPU), the reason is Device::cuda's.
        if let Err(e) = Device::cuda(0) {
            let t = Target::new("cuda", "f32", 1).unwrap();
            let why = t.unsupported("matmul").unwrap();
            assert!(why.starts_with("no CUDA device: ") && why.contains(&e.to_string()));
        }
    }
}
