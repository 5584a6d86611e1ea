//! One backward-rule struct per op, next to the `Var` method that records it.

mod attention;
mod binary;
mod cast;
mod concat;
mod cross_entropy;
mod indexing;
mod layer_norm;
mod mask;
mod matmul;
mod reduce;
mod softmax;
mod unary;
mod view;
