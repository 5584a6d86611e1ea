use anyhow::{Context, Result};
use rusty_gradients::Device;

/// Parses `--device` and checks that this build and machine can use it.
pub fn parse(spec: &str) -> Result<Device> {
    let device: Device = spec.parse().context("--device")?;
    if let Device::Cuda(n) = device {
        Device::cuda(n).context("--device")?;
    }
    Ok(device)
}

pub fn list() -> Result<()> {
    println!("cpu");
    match Device::cuda(0) {
        Ok(d) => println!("{d}"),
        Err(e) => println!("cuda: unavailable ({e})"),
    }
    Ok(())
}
