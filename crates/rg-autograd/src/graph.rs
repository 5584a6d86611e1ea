use std::collections::{HashMap, HashSet};

use rg_core::{Error, Result, Tensor};

use crate::{Var, VarId};

/// The backward pass of one op: one struct per op in `rules/`.
pub trait BackwardRule: Send + Sync {
    fn name(&self) -> &'static str;

    /// Gradients w.r.t. each input given the gradient of the output (same order as the
    /// recorded inputs; `None` where an input needs no gradient).
    fn backward(
        &self,
        grad: &Tensor,
        inputs: &[Var],
        output: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;

    /// [`BackwardRule::backward`]'s gradients in the form the graph accumulates them;
    /// rules whose gradients are mostly zeros override it to hand them over unbuilt.
    fn input_grads(
        &self,
        grad: &Tensor,
        inputs: &[Var],
        output: &Tensor,
    ) -> Result<Vec<Option<InputGrad>>> {
        let grads = self.backward(grad, inputs, output)?;
        Ok(grads.into_iter().map(|g| g.map(InputGrad::Dense)).collect())
    }
}

/// A rule's gradient w.r.t. one input.
pub enum InputGrad {
    Dense(Tensor),
    /// [`Tensor::index_add`] of the input's shape (the adjoint of `index_select`), left
    /// unbuilt so that it is added straight into the input's dense gradient if it gets
    /// one: a tied embedding would otherwise build a vocabulary-sized table of zeros
    /// with a few rows set, only to add it to the output layer's gradient.
    IndexAdd {
        axis: usize,
        ids: Tensor,
        src: Tensor,
    },
    /// `src` placed at `narrow(axis, start, len)` of the input's shape, zeros elsewhere
    /// (the adjoint of `narrow`), left unbuilt so that the slices of one input, e.g. the
    /// queries, keys and values cut from a fused projection, fill one buffer instead
    /// of each padding its own with zeros to be added up.
    Slice {
        axis: usize,
        start: usize,
        src: Tensor,
    },
}

pub(crate) struct Node {
    pub(crate) rule: Box<dyn BackwardRule>,
    pub(crate) inputs: Vec<Var>,
}

/// Gradients of the leaves that required them, keyed by var.
#[derive(Default, Debug, Clone)]
pub struct Gradients(HashMap<VarId, Tensor>);

impl Gradients {
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.0.get(&var.id())
    }

    pub fn get_id(&self, id: VarId) -> Option<&Tensor> {
        self.0.get(&id)
    }

    pub fn remove(&mut self, var: &Var) -> Option<Tensor> {
        self.0.remove(&var.id())
    }

    pub fn insert(&mut self, var: &Var, grad: Tensor) -> Option<Tensor> {
        self.0.insert(var.id(), grad)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every gradient of `other` into this set (gradient accumulation over
    /// micro-batches).
    pub fn accumulate_all(&mut self, other: Gradients) -> Result<()> {
        for (id, g) in other.0 {
            self.accumulate(id, g)?;
        }
        Ok(())
    }

    /// Adds `grad` to what is stored for `id` (the accumulation of a var used twice, or
    /// of micro-batches).
    pub fn accumulate(&mut self, id: VarId, grad: Tensor) -> Result<()> {
        let sum = match self.0.remove(&id) {
            Some(previous) => previous.add_into(&grad)?,
            None => grad,
        };
        self.0.insert(id, sum);
        Ok(())
    }
}

/// Gradients of the vars that backward has yet to visit. Sparse gradients wait apart
/// until their var's turn, when every use of the var has contributed, so that they are
/// added into its dense gradient whichever of the two the graph reached first.
#[derive(Default)]
struct Pending {
    dense: Gradients,
    /// `(axis, ids, src)` of each [`InputGrad::IndexAdd`].
    index_adds: HashMap<VarId, Vec<(usize, Tensor, Tensor)>>,
    /// `(axis, start, src)` of each [`InputGrad::Slice`].
    slices: HashMap<VarId, Vec<(usize, usize, Tensor)>>,
}

impl Pending {
    /// Adds `op`'s gradient w.r.t. `input`.
    fn add(&mut self, op: &'static str, input: &Var, grad: InputGrad) -> Result<()> {
        match grad {
            InputGrad::Dense(g) => {
                if g.shape() != input.shape() {
                    return Err(Error::ShapeMismatch {
                        op,
                        lhs: input.shape().clone(),
                        rhs: g.shape().clone(),
                    });
                }
                self.dense.accumulate(input.id(), g)
            }
            InputGrad::IndexAdd { axis, ids, src } => {
                let adds = self.index_adds.entry(input.id()).or_default();
                adds.push((axis, ids, src));
                Ok(())
            }
            InputGrad::Slice { axis, start, src } => {
                let fits = axis < input.rank()
                    && src.rank() == input.rank()
                    && (0..input.rank()).all(|a| {
                        let len = src.dims()[a];
                        if a == axis {
                            start + len <= input.dims()[a]
                        } else {
                            len == input.dims()[a]
                        }
                    });
                if !fits {
                    return Err(Error::ShapeMismatch {
                        op,
                        lhs: input.shape().clone(),
                        rhs: src.shape().clone(),
                    });
                }
                let slices = self.slices.entry(input.id()).or_default();
                slices.push((axis, start, src));
                Ok(())
            }
        }
    }

    /// The slices of `var`'s gradient as one tensor of its shape: their concatenation
    /// when they tile it along one axis (the queries, keys and values of a fused
    /// projection), else zeros with each slice copied into its place, or added where it
    /// overlaps an earlier one.
    fn build_slices(var: &Var, slices: Vec<(usize, usize, Tensor)>) -> Result<Tensor> {
        if let Some(tiles) = Pending::tiling(var, &slices) {
            return Tensor::concat(&tiles, slices[0].0 as isize);
        }
        let first = &slices[0].2;
        let out = Tensor::zeros(var.shape().clone(), first.dtype(), &first.device())?;
        let mut placed: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        for (axis, start, src) in slices {
            let range = start..start + src.dims()[axis];
            let region = out.narrow(axis as isize, start, range.len())?;
            let overlaps = placed
                .iter()
                .any(|(a, r)| *a != axis || (r.start < range.end && range.start < r.end));
            if overlaps {
                region.copy_from(&region.add(&src)?)?;
            } else {
                region.copy_from(&src)?;
            }
            placed.push((axis, range));
        }
        Ok(out)
    }

    /// The slices in order along their axis, if they all cut the same axis and cover
    /// it exactly once.
    fn tiling(var: &Var, slices: &[(usize, usize, Tensor)]) -> Option<Vec<Tensor>> {
        let axis = slices[0].0;
        if slices.iter().any(|(a, _, _)| *a != axis) {
            return None;
        }
        let mut order: Vec<&(usize, usize, Tensor)> = slices.iter().collect();
        order.sort_by_key(|(_, start, _)| *start);
        let mut end = 0;
        for (_, start, src) in &order {
            if *start != end {
                return None;
            }
            end += src.dims()[axis];
        }
        (end == var.dims()[axis]).then(|| order.into_iter().map(|(_, _, t)| t.clone()).collect())
    }

    /// The whole gradient of `var`, or `None` if nothing contributed to it.
    fn take(&mut self, var: &Var) -> Result<Option<Tensor>> {
        let mut sum = self.dense.0.remove(&var.id());
        if let Some(slices) = self.slices.remove(&var.id()) {
            let built = Pending::build_slices(var, slices)?;
            sum = Some(match sum {
                Some(g) => g.add_into(&built)?,
                None => built,
            });
        }
        for (axis, ids, src) in self.index_adds.remove(&var.id()).unwrap_or_default() {
            let axis = axis as isize;
            sum = Some(match sum {
                Some(g) => g.index_add_into(axis, &ids, &src)?,
                None => Tensor::index_add(var.shape(), axis, &ids, &src)?,
            });
        }
        Ok(sum)
    }
}

impl Var {
    /// Reverse-mode gradients of this scalar w.r.t. every leaf that requires one.
    pub fn backward(&self) -> Result<Gradients> {
        if self.elem_count() != 1 {
            return Err(Error::RankMismatch {
                op: "backward",
                expected: "a single-element (scalar) output".into(),
                shape: self.shape().clone(),
            });
        }
        let seed = Tensor::ones(self.shape().clone(), self.dtype(), &self.device())?;
        self.backward_with(seed)
    }

    /// Backward from this var with an explicit output gradient of its shape.
    pub fn backward_with(&self, seed: Tensor) -> Result<Gradients> {
        let mut leaves = Gradients::default();
        self.backward_streaming(seed, &mut |leaf, grad| leaves.accumulate(leaf.id(), grad))?;
        Ok(leaves)
    }

    /// Backward that hands each leaf's gradient to `on_leaf` as soon as it is
    /// complete, while the rest of the graph is still to be walked: data-parallel
    /// training starts exchanging the last layers' gradients during the backward pass
    /// of the first. Every leaf that receives a gradient is handed over exactly once.
    /// The tensor may share storage with gradients the walk still uses (an add hands
    /// the same gradient to both inputs): copy it before writing to it in place while
    /// the walk goes on.
    pub fn backward_streaming(
        &self,
        seed: Tensor,
        on_leaf: &mut dyn FnMut(&Var, Tensor) -> Result<()>,
    ) -> Result<()> {
        rg_core::profile::phase("backward", || self.backward_impl(seed, on_leaf))
    }

    fn backward_impl(
        &self,
        seed: Tensor,
        on_leaf: &mut dyn FnMut(&Var, Tensor) -> Result<()>,
    ) -> Result<()> {
        if seed.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward",
                lhs: self.shape().clone(),
                rhs: seed.shape().clone(),
            });
        }
        if !self.requires_grad() {
            return Ok(());
        }
        let mut pending = Pending::default();
        pending.dense.accumulate(self.id(), seed)?;
        let order = self.reverse_topological_order();
        // Uses of each var by the walk's nodes. A leaf is handed over when its last
        // user is done, not at its own (valid but arbitrary) place in the order: the
        // depth-first order puts a layer's weights after everything below the layer,
        // which would hold every parameter back to the end of the walk.
        let mut users_left: HashMap<VarId, usize> = HashMap::new();
        for var in &order {
            for input in var.node().iter().flat_map(|n| &n.inputs) {
                if input.requires_grad() {
                    *users_left.entry(input.id()).or_default() += 1;
                }
            }
        }
        // Each var appears once, after every var that uses it: by its turn, its
        // gradient has received every contribution.
        for var in order {
            let Some(grad) = pending.take(&var)? else {
                continue;
            };
            let Some(node) = var.node() else {
                // A leaf not handed over yet: a user of it received no gradient.
                on_leaf(&var, grad)?;
                continue;
            };
            let input_grads = node.rule.input_grads(&grad, &node.inputs, var.tensor())?;
            // Rules may hand back views of `grad` (a transpose's gradient is one); let
            // go of it first so that a leaf's gradient taken below is the only handle
            // on its storage, and sparse contributions (the tied embedding's rows) are
            // added into it in place rather than into a dense copy.
            drop(grad);
            for (input, g) in node.inputs.iter().zip(input_grads) {
                if !input.requires_grad() {
                    continue;
                }
                if let Some(g) = g {
                    pending.add(node.rule.name(), input, g)?;
                }
                let left = users_left.get_mut(&input.id()).expect("counted above");
                *left -= 1;
                if *left == 0 && input.node().is_none() {
                    if let Some(grad) = pending.take(input)? {
                        on_leaf(input, grad)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Vars that require gradients, each after every var that uses it (outputs first).
    fn reverse_topological_order(&self) -> Vec<Var> {
        // Iterative post-order DFS: deep graphs (many layers) must not overflow the stack.
        let mut order = Vec::new();
        let mut visited = HashSet::new();
        let mut stack = vec![(self.clone(), false)];
        while let Some((var, expanded)) = stack.pop() {
            if expanded {
                order.push(var);
                continue;
            }
            if !var.requires_grad() || !visited.insert(var.id()) {
                continue;
            }
            stack.push((var.clone(), true));
            if let Some(node) = var.node() {
                for input in &node.inputs {
                    if input.requires_grad() && !visited.contains(&input.id()) {
                        stack.push((input.clone(), false));
                    }
                }
            }
        }
        order.reverse();
        order
    }
}
