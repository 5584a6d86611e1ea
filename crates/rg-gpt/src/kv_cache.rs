//! A preallocated key/value cache for generation: one `[batch, heads, capacity, head_dim]`
//! tensor per layer for keys and one for values. New positions are written in place;
//! attention reads the filled prefix as a view, so nothing is concatenated per token.

use rg_core::{DType, Device, Error, Result, Tensor};

use crate::GptConfig;

pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Room for `capacity` positions (at most the model's context) of `batch` rows.
    pub fn new(config: &GptConfig, batch: usize, capacity: usize, device: &Device) -> Result<Self> {
        if capacity > config.block_size {
            return Err(Error::invalid(
                "kv cache",
                format!(
                    "capacity {capacity} exceeds the model's context of {}",
                    config.block_size
                ),
            ));
        }
        let dims = [batch, config.n_head, capacity, config.head_dim()];
        let alloc = || Tensor::zeros(dims, DType::F32, device);
        Ok(KvCache {
            keys: (0..config.n_layer)
                .map(|_| alloc())
                .collect::<Result<_>>()?,
            values: (0..config.n_layer)
                .map(|_| alloc())
                .collect::<Result<_>>()?,
            len: 0,
            capacity,
        })
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Writes layer `layer`'s new keys and values (`[b, h, t, d]`) after the filled
    /// prefix and returns views of everything filled, new positions included.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let t = k.dims()[2];
        if self.len + t > self.capacity {
            return Err(Error::invalid(
                "kv cache",
                format!(
                    "{} cached + {t} new positions exceed the capacity of {}",
                    self.len, self.capacity
                ),
            ));
        }
        self.keys[layer].narrow(2, self.len, t)?.copy_from(k)?;
        self.values[layer].narrow(2, self.len, t)?.copy_from(v)?;
        let filled = self.len + t;
        Ok((
            self.keys[layer].narrow(2, 0, filled)?,
            self.values[layer].narrow(2, 0, filled)?,
        ))
    }

    /// Marks `t` more positions as filled (after every layer has appended them).
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }
}
