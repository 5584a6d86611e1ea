use std::fmt;

use crate::{Error, Result};

/// The dimensions of a tensor, outermost first.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }

    /// Element count, or an error naming the op when it overflows `usize` (a shape no
    /// memory could hold).
    pub fn checked_elem_count(&self, op: &'static str) -> Result<usize> {
        self.0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                Error::invalid(
                    op,
                    format!("shape {self} has more elements than memory can address"),
                )
            })
    }

    /// Row-major strides of a contiguous tensor of this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.rank()];
        let mut acc = 1;
        for (s, &d) in strides.iter_mut().zip(&self.0).rev() {
            *s = acc;
            acc *= d;
        }
        strides
    }

    /// Resolves a possibly negative axis (`-1` is the last) for op `op`.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let resolved = if axis < 0 { axis + rank } else { axis };
        if resolved < 0 || resolved >= rank {
            return Err(Error::AxisOutOfRange {
                op,
                axis,
                rank: self.rank(),
                shape: self.clone(),
            });
        }
        Ok(resolved as usize)
    }

    /// The shape both operands broadcast to, numpy rules (align trailing dims).
    pub fn broadcast_with(&self, op: &'static str, other: &Shape) -> Result<Shape> {
        let rank = self.rank().max(other.rank());
        let mut dims = vec![0; rank];
        for i in 0..rank {
            let a = dim_from_end(&self.0, rank - 1 - i);
            let b = dim_from_end(&other.0, rank - 1 - i);
            dims[i] = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(Error::BroadcastIncompatible {
                        op,
                        lhs: self.clone(),
                        rhs: other.clone(),
                    })
                }
            };
        }
        Ok(Shape(dims))
    }

    /// Splits the shape into (product of all but last, last); errors on a scalar.
    pub fn rows_cols(&self, op: &'static str) -> Result<(usize, usize)> {
        match self.0.split_last() {
            Some((&last, rest)) => Ok((rest.iter().product(), last)),
            None => Err(Error::RankMismatch {
                op,
                expected: "at least 1".into(),
                shape: self.clone(),
            }),
        }
    }
}

/// Dimension `k` counted from the end, 1 where the shape is shorter.
fn dim_from_end(dims: &[usize], k: usize) -> usize {
    if k < dims.len() {
        dims[dims.len() - 1 - k]
    } else {
        1
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<usize> for Shape {
    fn from(v: usize) -> Self {
        Shape(vec![v])
    }
}

impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape::scalar()
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
