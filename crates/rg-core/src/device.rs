use std::fmt;

use crate::{backend, Result};

/// Where a tensor lives, chosen at run time. `Device::Cpu` is always constructible;
/// `Device::cuda(n)` checks that a CUDA backend is linked and that GPU `n` can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The CUDA device with this ordinal, or an error saying why it cannot be used
    /// (no CUDA backend linked, no driver, no such GPU).
    pub fn cuda(ordinal: usize) -> Result<Device> {
        let device = Device::Cuda(ordinal);
        backend::backend_for(device)?;
        Ok(device)
    }

    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// The device kind's name as used by registrations and the command line.
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::Error;

    /// Parses `cpu`, `cuda` (ordinal 0) and `cuda:N` without probing the hardware;
    /// probing happens when a backend is first asked for.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Device::Cuda(n)),
                _ => Err(crate::Error::invalid(
                    "parse device",
                    format!("unknown device {other:?}: expected cpu, cuda or cuda:N"),
                )),
            },
        }
    }
}
