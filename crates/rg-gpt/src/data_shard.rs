//! Data parallelism's view of a [`DataSource`]: rank r of N takes the r-th slice of
//! each global batch of N·b rows, so N ranks with `--batch-size b` see exactly the rows
//! one process with N·b sees, in the same order.

use rg_core::Device;
use serde_json::Value;

use crate::data::{Batch, DataSource};
use crate::{GptError, Result};

pub struct ShardedData {
    inner: Box<dyn DataSource>,
    rank: usize,
    world: usize,
}

impl ShardedData {
    pub fn new(inner: Box<dyn DataSource>, rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(GptError::setting(
                "world",
                format!("rank {rank} is not in a world of {world}"),
            ));
        }
        Ok(ShardedData { inner, rank, world })
    }

    /// Rows `rank*b .. (rank+1)*b` of a batch of `world*b` rows.
    fn slice(&self, global: Batch, b: usize) -> Result<Batch> {
        let rows = |t: &rg_core::Tensor| -> Result<rg_core::Tensor> {
            Ok(t.narrow(0, self.rank * b, b)?.contiguous()?)
        };
        Ok(Batch {
            ids: rows(&global.ids)?,
            targets: rows(&global.targets)?,
            ignore_index: global.ignore_index,
        })
    }
}

impl DataSource for ShardedData {
    fn next_train(&mut self, b: usize, t: usize, device: &Device) -> Result<Batch> {
        // Every rank draws the whole global batch (token ids only, cheap next to a
        // step), which keeps the samplers' states identical across ranks.
        let global = self.inner.next_train(self.world * b, t, device)?;
        self.slice(global, b)
    }

    fn eval_batch(&self, i: usize, b: usize, t: usize, device: &Device) -> Result<Option<Batch>> {
        match self.inner.eval_batch(i, self.world * b, t, device)? {
            Some(global) => self.slice(global, b).map(Some),
            None => Ok(None),
        }
    }

    fn state(&self) -> Value {
        self.inner.state()
    }

    fn restore(&mut self, state: &Value) -> Result<()> {
        self.inner.restore(state)
    }

    fn describe(&self) -> String {
        format!(
            "{} (rank {} of {} takes slice {} of each global batch)",
            self.inner.describe(),
            self.rank,
            self.world,
            self.rank
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SamplerKind, TextData};
    use rg_cpu as _;

    fn rows(d: &mut dyn DataSource, b: usize) -> Vec<u32> {
        d.next_train(b, 3, &Device::Cpu)
            .unwrap()
            .ids
            .to_vec::<u32>()
            .unwrap()
    }

    #[test]
    fn ranks_together_see_what_one_process_with_the_global_batch_sees() {
        for sampler in [SamplerKind::Sequential, SamplerKind::Random] {
            let tokens: Vec<u32> = (0..200).collect();
            let text = || TextData::new(tokens.clone(), 0.2, sampler, 9).unwrap();
            let mut one = text();
            let mut ranks: Vec<ShardedData> = (0..2)
                .map(|r| ShardedData::new(Box::new(text()), r, 2).unwrap())
                .collect();
            for _ in 0..3 {
                let global = rows(&mut one, 4);
                let mut pieces = rows(&mut ranks[0], 2);
                pieces.extend(rows(&mut ranks[1], 2));
                assert_eq!(pieces, global, "{sampler:?}");
            }
            let dev = Device::Cpu;
            let eval = one.eval_batch(1, 4, 3, &dev).unwrap().unwrap();
            let e1 = ranks[1].eval_batch(1, 2, 3, &dev).unwrap().unwrap();
            let want = eval.targets.to_vec::<u32>().unwrap();
            assert_eq!(e1.targets.to_vec::<u32>().unwrap(), want[6..].to_vec());
            assert_eq!(ranks[0].state(), one.state());
        }
    }

    #[test]
    fn rank_outside_the_world_is_refused() {
        let data = TextData::new((0..50).collect(), 0.0, SamplerKind::Random, 1).unwrap();
        let err = ShardedData::new(Box::new(data), 3, 2).err().unwrap();
        assert!(err.to_string().contains("rank 3 is not in a world of 2"));
    }
}
