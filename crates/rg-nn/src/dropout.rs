use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_autograd::Var;
use rg_core::{Error, Result, Tensor};

/// The random stream dropout masks come from. Its position can be saved and restored,
/// so a resumed run draws the same masks as an uninterrupted one.
///
/// Under data parallelism ([`DropoutRng::sharded`]) each of `world` ranks holds the
/// `rank`-th slice of a global batch whose leading dimension is the batch: a mask is
/// drawn as if for the global tensor, and this rank keeps its slice. So a sample's
/// mask depends on its place in the global batch, not on which rank computes it, and
/// the stream position (what a checkpoint saves) is the same on every rank.
#[derive(Clone, Debug)]
pub struct DropoutRng {
    rng: ChaCha8Rng,
    rank: usize,
    world: usize,
}

/// ChaCha words one mask element consumes (an `f64` draw is one `u64`).
const WORDS_PER_ELEMENT: u128 = 2;

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        DropoutRng {
            rng: ChaCha8Rng::seed_from_u64(seed),
            rank: 0,
            world: 1,
        }
    }

    /// This stream as seen by `rank` of `world` (see the type's documentation).
    pub fn sharded(mut self, rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(Error::invalid(
                "dropout",
                format!("rank {rank} is not in a world of {world}"),
            ));
        }
        self.rank = rank;
        self.world = world;
        Ok(self)
    }

    /// Draws the mask of this rank's `n` elements: `scale` kept with probability
    /// `1 - p`, else 0.
    fn mask(&mut self, n: usize, p: f64, scale: f32) -> Vec<f32> {
        let start = self.rng.get_word_pos();
        if self.world > 1 {
            self.rng
                .set_word_pos(start + (self.rank * n) as u128 * WORDS_PER_ELEMENT);
        }
        let mask = (0..n)
            .map(|_| {
                if self.rng.random::<f64>() < p {
                    0.0
                } else {
                    scale
                }
            })
            .collect();
        if self.world > 1 {
            self.rng
                .set_word_pos(start + (self.world * n) as u128 * WORDS_PER_ELEMENT);
        }
        mask
    }

    /// `(seed, word position)`: everything needed to resume the stream.
    pub fn state(&self) -> ([u8; 32], u128) {
        (self.rng.get_seed(), self.rng.get_word_pos())
    }

    /// A stream at a saved position; shard it again with [`DropoutRng::sharded`].
    pub fn from_state(seed: [u8; 32], word_pos: u128) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_word_pos(word_pos);
        DropoutRng {
            rng,
            rank: 0,
            world: 1,
        }
    }
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by
/// `1 / (1 - p)`, so evaluation needs no rescaling.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    p: f64,
}

impl Dropout {
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout",
                format!("probability {p} is not in [0, 1)"),
            ));
        }
        Ok(Dropout { p })
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    /// Identity when `rng` is `None` (evaluation) or `p` is 0.
    pub fn forward(&self, x: &Var, rng: Option<&mut DropoutRng>) -> Result<Var> {
        let Some(rng) = rng.filter(|_| self.p > 0.0) else {
            return Ok(x.clone());
        };
        let keep = 1.0 / (1.0 - self.p);
        let mask = rng.mask(x.elem_count(), self.p, keep as f32);
        let mask = Tensor::from_vec(mask, x.dims().to_vec(), &x.device())?.to_dtype(x.dtype())?;
        x.mul(&Var::constant(mask))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_masks_are_slices_of_the_global_mask() {
        let mut whole = DropoutRng::new(7);
        let mut ranks: Vec<DropoutRng> = (0..3)
            .map(|r| DropoutRng::new(7).sharded(r, 3).unwrap())
            .collect();
        // Two draws in a row: the second must start where the global one would.
        for n in [5usize, 8] {
            let global = whole.mask(3 * n, 0.3, 2.0);
            let pieces: Vec<f32> = ranks.iter_mut().flat_map(|r| r.mask(n, 0.3, 2.0)).collect();
            assert_eq!(pieces, global);
            assert!(global.contains(&0.0) && global.contains(&2.0));
        }
        for r in &ranks {
            assert_eq!(r.state(), whole.state());
        }
    }

    #[test]
    fn a_rank_outside_the_world_is_refused() {
        let err = DropoutRng::new(1).sharded(2, 2).unwrap_err().to_string();
        assert!(err.contains("rank 2 is not in a world of 2"), "{err}");
    }
}
