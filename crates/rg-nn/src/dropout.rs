use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_autograd::Var;
use rg_core::{Error, Result, Tensor};

/// The random stream dropout masks come from. Its position can be saved and restored,
/// so a resumed run draws the same masks as an uninterrupted one.
#[derive(Clone, Debug)]
pub struct DropoutRng(ChaCha8Rng);

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        DropoutRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// `(seed, word position)`: everything needed to resume the stream.
    pub fn state(&self) -> ([u8; 32], u128) {
        (self.0.get_seed(), self.0.get_word_pos())
    }

    pub fn from_state(seed: [u8; 32], word_pos: u128) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_word_pos(word_pos);
        DropoutRng(rng)
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
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.0.random::<f64>() < self.p {
                    0.0
                } else {
                    keep as f32
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.dims().to_vec(), &x.device())?.to_dtype(x.dtype())?;
        x.mul(&Var::constant(mask))
    }
}
