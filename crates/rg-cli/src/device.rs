use anyhow::{Context, Result};
use rusty_gradients::Device;

/// Parses `--device` and checks that this build and machine can use it.
pub fn parse(spec: &str) -> Result<Device> {
    let device: Device = spec.parse().context("--device")?;
    check(device)
}

/// Checks that this build and machine can use `device`.
pub fn check(device: Device) -> Result<Device> {
    if let Device::Cuda(n) = device {
        Device::cuda(n).context("--device")?;
    }
    Ok(device)
}

/// `--device` of a data-parallel run, before the world is known: `cuda` without an
/// index means the GPU numbered by the process's local rank (GPU 0 outside a
/// launcher), so `mpirun -n 8 rgrad train --device cuda` puts one rank on each GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    /// `cuda:N` gives `Some(N)`, `cuda` gives `None`.
    Cuda(Option<usize>),
}

impl DeviceSpec {
    /// Parses the syntax only; [`check`] probes the hardware once the index is known.
    pub fn parse(spec: &str) -> Result<Self> {
        let device: Device = spec.parse().context("--device")?;
        Ok(match device {
            Device::Cpu => DeviceSpec::Cpu,
            Device::Cuda(_) if spec == "cuda" => DeviceSpec::Cuda(None),
            Device::Cuda(n) => DeviceSpec::Cuda(Some(n)),
        })
    }

    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }

    /// The device of the rank whose local rank is `local_rank`.
    pub fn resolve(self, local_rank: usize) -> Device {
        match self {
            DeviceSpec::Cpu => Device::Cpu,
            DeviceSpec::Cuda(n) => Device::Cuda(n.unwrap_or(local_rank)),
        }
    }
}

pub fn list() -> Result<()> {
    println!("cpu");
    match Device::cuda(0) {
        Ok(d) => println!("{d}"),
        Err(e) => println!("cuda: unavailable ({e})"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_cuda_follows_the_local_rank_and_an_index_is_kept() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap().resolve(3), Device::Cpu);
        let bare = DeviceSpec::parse("cuda").unwrap();
        assert_eq!(bare, DeviceSpec::Cuda(None));
        assert_eq!(bare.resolve(0), Device::Cuda(0));
        assert_eq!(bare.resolve(3), Device::Cuda(3));
        let explicit = DeviceSpec::parse("cuda:0").unwrap();
        assert_eq!(explicit, DeviceSpec::Cuda(Some(0)));
        assert_eq!(explicit.resolve(3), Device::Cuda(0));
        assert_eq!(
            DeviceSpec::parse("cuda:2").unwrap().resolve(0),
            Device::Cuda(2)
        );
    }

    #[test]
    fn a_bad_device_names_the_flag() {
        let msg = format!("{:#}", DeviceSpec::parse("gpu").unwrap_err());
        assert!(msg.starts_with("--device"), "{msg}");
        assert!(msg.contains("gpu"), "{msg}");
    }
}
