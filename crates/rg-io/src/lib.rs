//! `rg-io`: safetensors reading (memory-mapped, validated) and atomic writing, checkpoints.
